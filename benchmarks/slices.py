"""Benchmark (not a test): Stage 2 over slices of the batch (`SiMPOConfig.matching_slice_rows`,
simpo.matching.value_and_grad_in_slices) against the whole batch at once, in the fused update and in Stage 2 alone.

    python benchmarks/slices.py [--rounds 4] [--out docs/benchmarks/slices.md]

SiMPO `paper` and `fast` at HalfCheetah-v5 dims, batch 256 (benchmarks/speed.py's `setup`), each built once per
value of `matching_slice_rows` in one process and timed in interleaved rounds (a round: the mean of a few calls
after one warm-up call, for each value in turn). Also printed: the largest difference between the sliced and
the unsliced update's outputs, and Stage 2 alone (the matching loss, its gradient and the Adam step, as in
benchmarks/profile_update.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402
from profile_update import stages  # noqa: E402
from speed import setup, timed, updates  # noqa: E402

from simpo.matching import slice_count  # noqa: E402
from simpo.train import default_config  # noqa: E402

ROWS = {"paper": (0, 4096, 2048, 1024), "fast": (0, 1024)}
REPEATS = {"paper": 3, "fast": 20}
STAGE2 = "Stage 2: matching loss, grad, Adam"


def build(preset: str, rows: int) -> dict:
    config = default_config("simpo", preset, "HalfCheetah-v5")
    config = dataclasses.replace(config, agent=dataclasses.replace(config.agent, matching_slice_rows=rows))
    s = setup(preset, "HalfCheetah-v5", config, count_flops=False)
    k, run = updates(s)
    fn, fn_args = stages(s)[STAGE2]
    stage2 = jax.jit(fn)
    jax.block_until_ready((run(), stage2(*fn_args)))  # compiled now
    return {"s": s, "k": k, "run": run, "stage2": lambda: stage2(*fn_args), "config": config}


def max_difference(a: dict, b: dict) -> float:
    out_a, out_b = a["run"](), b["run"]()  # `fast`: from steps 0 and 1, so that one of them runs the actor side
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(out_a), jax.tree.leaves(out_b))
               if jnp.issubdtype(x.dtype, jnp.floating))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/slices.md"))
    args = parser.parse_args()
    source = provenance()
    lines = ["# Stage 2 over slices of the batch vs the whole batch (HalfCheetah-v5, batch 256)", "", source, ""]
    for preset, rows in ROWS.items():
        built = {r: build(preset, r) for r in rows}
        config = built[rows[0]]["config"]
        b, n = config.batch_size, config.agent.num_candidates
        slices = {r: slice_count(b, n, r) for r in rows}
        lines += [f"## `{preset}` (batch {b} × N = {n}: {b * n} candidate rows)", "",
                  "| `matching_slice_rows` | slices | max abs difference of the update's outputs vs 0 | "
                  "fused update ms per round | median ratio to 0 | Stage 2 alone ms per round | median ratio to 0 |",
                  "|---:|---:|---:|---|---:|---|---:|"]
        fused, alone = {r: [] for r in rows}, {r: [] for r in rows}
        for i in range(args.rounds):
            order = list(built.items())
            for r, b in order[i % len(order):] + order[:i % len(order)]:  # the first in a round rotates
                fused[r].append(timed(b["run"], REPEATS[preset]) / b["k"] * 1e3)
                alone[r].append(timed(b["stage2"], REPEATS[preset]) * 1e3)
            print(preset, {r: (round(fused[r][-1], 1), round(alone[r][-1], 1)) for r in rows}, file=sys.stderr, flush=True)
        for r in rows:
            diff = max_difference(built[rows[0]], built[r])
            ratio_f = np.median(np.array(fused[r]) / np.array(fused[rows[0]]))
            ratio_a = np.median(np.array(alone[r]) / np.array(alone[rows[0]]))
            lines.append(f"| {r} | {slices[r]} | {diff:.2e} | {', '.join(f'{t:.1f}' for t in fused[r])} | "
                         f"**{ratio_f:.3f}** | {', '.join(f'{t:.1f}' for t in alone[r])} | **{ratio_a:.3f}** |")
        lines.append("")
    lines += [f"{args.rounds} rounds; per round and value, one warm-up call, then the mean of "
              f"{', '.join(f'{v} ({k})' for k, v in REPEATS.items())} timed calls, each blocked on; the values "
              "alternate within a round. Ratios are per round (same round, same load), then the median. "
              "`fast` runs its actor side on every 2nd update, so its fused time is the mean of two updates."]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
