"""Benchmark (not a test): the critic ensemble's layout, as landed in simpo/agents/critic.py (its input broadcast
along the ensemble axis, `nn.vmap(in_axes=0)`) against the layout before (`in_axes=None`), in the fused updates.

    python benchmarks/critic_layout.py [--rounds 4] [--out docs/benchmarks/critic_layout.md]

Both layouts are built in one process (the old one as a subclass here), for SAC and SiMPO `fast` / `paper` at
HalfCheetah-v5 dims, batch 256 (benchmarks/speed.py's `setup`), and timed in interleaved rounds; a round reports the
mean of its calls (benchmarks/speed.py's `timed`), the table the median over rounds. Also printed: the largest difference between the two updates' outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402
from speed import setup, timed, updates  # noqa: E402

import simpo.agents.sac as sac_module  # noqa: E402
import simpo.agents.simpo_agent as simpo_module  # noqa: E402
from simpo.agents.critic import DoubleCritic  # noqa: E402
from simpo.networks import MLP  # noqa: E402

REPEATS = {"sac": 50, "simpo fast": 20, "simpo paper": 5}


class InAxesNone(DoubleCritic):
    """The layout before: the ensemble vmapped with `in_axes=None` over the unbroadcast input."""

    @nn.compact
    def __call__(self, obs, action):
        lead = jnp.broadcast_shapes(obs.shape[:-1], action.shape[:-1])
        x = jnp.concatenate([jnp.broadcast_to(obs, (*lead, obs.shape[-1])),
                             jnp.broadcast_to(action, (*lead, action.shape[-1]))], axis=-1)
        ensemble = nn.vmap(MLP, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None, out_axes=0,
                           axis_size=self.num_qs)
        return ensemble(hidden_dims=tuple(self.hidden_dims), activation=self.activation, output_dim=1)(x)[..., 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/critic_layout.md"))
    args = parser.parse_args()
    source = provenance()
    built = {}
    for layout, cls in (("in_axes=None (before)", InAxesNone), ("broadcast (now)", DoubleCritic)):
        simpo_module.DoubleCritic = sac_module.DoubleCritic = cls  # the agents build their critic from this name
        for name in REPEATS:
            s = setup(name, "HalfCheetah-v5", count_flops=False)
            k, run = updates(s)
            jax.block_until_ready(run())  # compiled now, with this layout
            built[layout, name] = (k, run, s)
    simpo_module.DoubleCritic = sac_module.DoubleCritic = DoubleCritic
    before, now = "in_axes=None (before)", "broadcast (now)"
    lines = ["# Critic ensemble layout: broadcast input vs `in_axes=None`, fused updates (HalfCheetah-v5, batch 256)",
             "", source, "", "| update | max abs difference of the outputs | round | before ms | now ms | now / before |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in REPEATS:
        (_, _, a), (_, _, b) = built[before, name], built[now, name]
        out_a, out_b = (s["update"](s["state"], s["batch"], s["key"]) for s in (a, b))
        diff = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(out_a), jax.tree.leaves(out_b))
                   if jnp.issubdtype(x.dtype, jnp.floating))
        ratios = []
        for r in range(args.rounds):
            t = {side: timed(built[side, name][1], REPEATS[name]) / built[side, name][0] * 1e3  # ABBA: who goes first
                 for side in ((before, now) if r % 2 == 0 else (now, before))}
            ratios.append(t[now] / t[before])
            lines.append(f"| {name} | {diff:.2e} | {r + 1} | {t[before]:.2f} | {t[now]:.2f} | {ratios[-1]:.3f} |")
            print(lines[-1], file=sys.stderr, flush=True)
        lines.append(f"| {name} | | median | | | **{np.median(ratios):.3f}** |")
    lines += ["", f"{args.rounds} rounds per update, each the mean of {', '.join(f'{v} ({k})' for k, v in REPEATS.items())} "
              "timed calls per layout after one warm-up call; the two layouts alternate within a round."]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
