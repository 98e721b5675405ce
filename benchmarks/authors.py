"""Benchmark (not a test): the authors' GeMPO and SAC updates (typoverflow/flow-rl) timed side by side with ours.

    python benchmarks/authors.py [--authors-src /work/flowrl_src] [--authors-python /work/authors_venv/bin/python]
                                 [--rounds 3] [--repeats 5] [--sac-repeats 50] [--out docs/benchmarks/authors.md]

Issue 5: "At the `paper` preset, our update is to cost at most half the authors'". Each side runs in its own
subprocess under its own venv (ours: this repo's; theirs: jax 0.5.3 / flax 0.10.5 as their setup.py pins, on CPU),
builds its updates once (batch 256, HalfCheetah-v5 dims), then the two are timed in alternating rounds
(ours, theirs, ours, theirs, ...) so both see the same machine load; who goes first in a round rotates. A round reports the median seconds per
update (each call blocked on, after one warm-up call); the ratio ours/theirs is given per round and overall
(the median over rounds of our times divided by the median over rounds of theirs). The authors' update is their agent's `train_step` on their mujoco config
(`examples/online/config/mujoco/algo/gempo_exp.yaml`, `sac.yaml`, batch from `config.yaml`); ours is built by
benchmarks/speed.py's `setup` (`simpo paper`, `sac`). FLOPs are XLA's cost analysis of each compiled update with
every sampler step counted (their scan is `unroll=True`; speed.py unrolls ours).

This file runs under both venvs: at module level it imports only the standard library, numpy and jax.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import jax

USER_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")  # before anything imports simpo (which adds CPU_VECTOR_FLAG)
import numpy as np

HERE = Path(__file__).resolve().parent
PAIRS = (("sac", "sac", "sac"), ("SiMPO `paper` vs GeMPO `gempo_exp`", "simpo paper", "gempo_exp"))
"""(row label, our speed.py config, their algo yaml): the updates compared, ours first."""
TAG = "@@ "  # protocol lines on a worker's stdout start with this; anything else it prints is passed through


def per_call_seconds(step, repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of each of `repeats` calls of `step()` (blocked on), after `warmup` untimed calls."""
    for _ in range(warmup):
        jax.block_until_ready(step())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(step())
        times.append(time.perf_counter() - start)
    return times


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost).get("flops", float("nan")))


def _versions(*packages: str) -> str:
    return ", ".join(f"{p} {metadata.version(p)}" for p in packages)


# ---- ours (this repo's venv) ------------------------------------------------------------------------------------

def ours_setup(env_id: str) -> tuple[dict, dict]:
    sys.path.insert(0, str(HERE))
    from speed import setup  # noqa: PLC0415  (simpo is not installed in the authors' venv)

    steps, info = {}, {"versions": _versions("jax", "jaxlib", "flax", "optax"), "configs": {},
                       "xla_flags": os.environ.get("XLA_FLAGS", "")}
    for _, name, _ in PAIRS:
        s = setup(name, env_id)
        holder = [s["state"]]

        def step(s=s, holder=holder):
            holder[0], metrics = s["update"](holder[0], s["batch"], s["key"])
            return holder[0], metrics

        jax.block_until_ready(step())  # compile
        c = s["agent"].config
        if name == "sac":
            desc = f"SACConfig: actor {list(c.actor_hidden_dims)}, critic {list(c.critic_hidden_dims)} ×{c.num_qs}"
        else:
            p = c.policy
            desc = (f"{p.kind} policy, K={p.steps} steps, hidden {list(p.hidden_dims)}, time_dim {p.time_dim}, "
                    f"cond {list(p.cond_dims)}, {p.activation}; N={c.num_candidates} candidates, weighting "
                    f"{c.weighting}, jitter {c.candidate_noise}, critic {list(c.critic_hidden_dims)} ×2")
        info["configs"][name] = {"desc": desc, "flops": s["flops"], "batch": int(s["batch"].obs.shape[0])}
        info["dims"] = [s["obs_dim"], s["action_dim"]]
        steps[name] = step
    return steps, info


# ---- theirs (the authors' venv, flow-rl source on PYTHONPATH) ---------------------------------------------------

def theirs_setup(env_id: str, obs_dim: int, act_dim: int, src: Path) -> tuple[dict, dict]:
    import jax.numpy as jnp  # noqa: PLC0415
    from flowrl.agent.online.gempo import GeMPOAgent, jit_update_gempo  # noqa: PLC0415
    from flowrl.agent.online.sac import SACAgent, update_sac  # noqa: PLC0415
    from flowrl.types import Batch  # noqa: PLC0415
    from omegaconf import OmegaConf  # noqa: PLC0415

    config_dir = src / "examples/online/config/mujoco"
    b = int(OmegaConf.load(config_dir / "config.yaml").batch_size)
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    batch = Batch(obs=jax.random.normal(k[0], (b, obs_dim)),  # their buffer's shapes: reward, terminal (B, 1)
                  action=jax.random.uniform(k[1], (b, act_dim), minval=-1.0), reward=jax.random.normal(k[2], (b, 1)),
                  terminal=jnp.zeros((b, 1)), next_obs=jax.random.normal(k[3], (b, obs_dim)),
                  next_action=jnp.zeros((b, act_dim)))
    steps, info = {}, {"versions": _versions("jax", "jaxlib", "flax", "optax", "distrax"), "configs": {}}
    for _, _, name in PAIRS:
        root = OmegaConf.load(config_dir / "algo" / f"{name}.yaml")
        root.task = env_id  # resolves target_kl: ${oc.select:algo.target_kl_dict.${task},2.0}
        cfg = root.algo
        if name == "sac":
            agent = SACAgent(obs_dim, act_dim, cfg, seed=0)
            lowered = update_sac.lower(agent.rng, agent.actor, agent.critic, agent.critic_target, agent.log_alpha,
                                       batch, cfg.discount, cfg.ema, agent.target_entropy)
            desc = (f"sac.yaml: actor {list(cfg.actor_hidden_dims)}, critic {list(cfg.critic_hidden_dims)} "
                    f"×{cfg.critic_ensemble_size}")
        else:
            agent = GeMPOAgent(obs_dim, act_dim, cfg, seed=0)
            lowered = jit_update_gempo.lower(
                agent.rng, agent.actor, agent.actor_target, agent.critic, agent.critic_target, agent.temp, batch,
                discount=cfg.discount, reweight=cfg.reweight, num_particles=cfg.num_particles,
                target_kl=cfg.target_kl, ema=cfg.ema, additive_noise=cfg.additive_noise,
                negative_bound=cfg.negative_bound)
            d = cfg.diffusion
            desc = (f"{name}.yaml: DDPM (solver {agent.actor.solver}), K={d.steps} steps, hidden "
                    f"{list(d.hidden_dims)}, time_dim {d.time_dim}, cond [128, 128], {d.activation}; "
                    f"N={cfg.num_particles} particles, reweight {cfg.reweight}, jitter {cfg.additive_noise}, "
                    f"critic {list(cfg.critic_hidden_dims)} ×2, target_kl {cfg.target_kl}")

        def step(agent=agent, counter=[0]):
            metrics = agent.train_step(batch, step=counter[0])
            counter[0] += 1
            return metrics, agent.critic

        jax.block_until_ready(step())  # compile
        info["configs"][name] = {"desc": desc, "flops": _flops(lowered.compile()), "batch": b}
        steps[name] = step
    return steps, info


def worker(args: argparse.Namespace) -> None:
    """Build one side's updates, then answer `time NAME REPEATS` lines on stdin with per-call seconds."""
    if args.worker == "ours":
        steps, info = ours_setup(args.env)
    else:
        steps, info = theirs_setup(args.env, *args.dims, args.authors_src)
    print(TAG + json.dumps(info), flush=True)
    for line in sys.stdin:  # "time NAME REPEATS"; NAME may hold spaces
        name, repeats = line.removeprefix("time ").rsplit(" ", 1)
        print(TAG + json.dumps(per_call_seconds(steps[name], int(repeats))), flush=True)


class Side:
    """A worker subprocess: one venv, its updates built once, timed on request."""

    def __init__(self, python: str, side: str, args: argparse.Namespace, extra_env: dict | None = None,
                 extra_args: tuple[str, ...] = ()):
        cmd = [python, str(Path(__file__).resolve()), "--worker", side, "--env", args.env,
               "--authors-src", str(args.authors_src), *extra_args]
        env = {**os.environ, **(extra_env or {})}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG):])
            print(line, end="", file=sys.stderr)
        raise RuntimeError(f"worker {self.proc.args[:4]} exited with code {self.proc.wait()}")

    def time(self, name: str, repeats: int) -> float:
        self.proc.stdin.write(f"time {name} {repeats}\n")
        self.proc.stdin.flush()
        return float(np.median(self._read()))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


NOTES = """## What differs between the two updates

Both SiMPO/GeMPO updates do the same steps at the same sizes (one next action per state by K=20 DDPM steps of the
current actor for the TD target; the double critic's step; N=64 candidates per state by K=20 DDPM steps of π_old on
the cosine schedule, jittered by σ=0.2; mean-critic Q of each; exp weights with ν = λ·logsumexp(Q/λ); the ε-matching
loss clipped at 5 per element, scaled by N·w; one Adam step of actor, critic and log λ; Polyak targets). They differ in:

- **Where the embeddings are computed.** Theirs (`DDPMBackbone`) concatenates `[x, emb(t), emb(s)]` per candidate:
  the state and time embedding MLPs run on all B×N rows at every step, and the first layer is 198 wide. Ours
  (`simpo.networks.VectorField`) writes the first layer as a sum of three Dense maps (the same function) and, at
  each step, embeds each state once and the time once, before broadcasting over the N candidates. This is the gap
  in GFLOP per update above.
- **Loop form.** Their sampler is a `lax.scan(..., unroll=True)` (20 steps inlined); ours runs the scan rolled.
- **Small things.** Ours clips jittered candidates to [−1, 1] (theirs does not); ours refreshes π_old inside the jitted
  update (a select over the params every update), theirs copies it in Python every 1000 `train_step` calls (the first
  copy falls in the untimed compile call). SAC: both are the usual two 256×256 critics and a tanh-Gaussian actor.
- **JAX.** Each side runs its own pinned JAX (0.5.3 vs 0.10.2); the ratio includes any XLA CPU difference between them.

## Setting up the authors' side (CPU only, outside this repo; never their `jax[cuda12]`)

    git -C FLOW_RL_MIRROR archive HEAD | tar -x -C /work/flowrl_src   # or any checkout of typoverflow/flow-rl
    git -C FLOW_RL_MIRROR rev-parse HEAD > /work/flowrl_src/COMMIT
    python3.11 -m venv /work/authors_venv
    /work/authors_venv/bin/pip install jax==0.5.3 jaxlib==0.5.3 flax==0.10.5 orbax-checkpoint==0.11.23 \\
        distrax==0.1.5 tensorflow-probability==0.25.0 optax==0.2.4 hydra-core==1.3.8 omegaconf==2.3.1

Their source is put on `PYTHONPATH` (their `setup.py` is not run: it pins CUDA JAX and builds a C++ extension that
the update does not use)."""


def authors_commit(src: Path) -> str:
    """The flow-rl commit: the COMMIT file written when the source was exported, else `git rev-parse` in `src`."""
    if (src / "COMMIT").exists():
        return (src / "COMMIT").read_text().strip()
    if not (src / ".git").exists():  # do not let git find an enclosing repository
        return "unknown"
    return subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--authors-src", type=Path, default=Path("/work/flowrl_src"),
                        help="a checkout or export of typoverflow/flow-rl")
    parser.add_argument("--authors-python", default="/work/authors_venv/bin/python",
                        help="python of a venv with the authors' pins (jax/jaxlib 0.5.3 CPU, flax 0.10.5, ...)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (ours, theirs), >= 2")
    parser.add_argument("--repeats", type=int, default=5, help="timed SiMPO/GeMPO updates per side per round")
    parser.add_argument("--sac-repeats", type=int, default=50, help="timed SAC updates per side per round")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/authors.md"))
    parser.add_argument("--worker", choices=("ours", "theirs"), help=argparse.SUPPRESS)
    parser.add_argument("--dims", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.rounds < 2 or args.repeats < 1 or args.sac_repeats < 1:
        parser.error("--rounds must be >= 2 and --repeats, --sac-repeats >= 1")
    for path in (args.authors_src / "flowrl", Path(args.authors_python)):
        if not path.exists():
            parser.error(f"{path} does not exist; set up the authors' side as docs/benchmarks/authors.md says")
    sys.path.insert(0, str(HERE))
    from _provenance import provenance, write_report  # noqa: PLC0415

    source, load_start = provenance(), os.getloadavg()
    from simpo import CPU_VECTOR_FLAG  # noqa: PLC0415

    ours = Side(sys.executable, "ours", args)  # simpo's import adds CPU_VECTOR_FLAG in the worker
    dims = ("--dims", *map(str, ours.info["dims"]))
    theirs = [Side(args.authors_python, "theirs", args, {"PYTHONPATH": str(args.authors_src), "XLA_FLAGS": flags},
                   dims) for flags in (USER_XLA_FLAGS, f"{USER_XLA_FLAGS} {CPU_VECTOR_FLAG}".strip())]
    times: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _, _ in PAIRS}
    sides = (ours, *theirs)
    for r in range(args.rounds):
        for label, mine, their in PAIRS:
            repeats = args.sac_repeats if mine == "sac" else args.repeats
            order = [(i + r) % len(sides) for i in range(len(sides))]  # who goes first rotates with the round
            got = {i: sides[i].time(mine if i == 0 else their, repeats) for i in order}
            times[label].append(tuple(got[i] for i in range(len(sides))))
            print(f"round {r + 1}: {label}: ours {times[label][-1][0] * 1e3:.1f} ms, theirs "
                  f"{times[label][-1][1] * 1e3:.1f} ms (with {CPU_VECTOR_FLAG}: {times[label][-1][2] * 1e3:.1f})",
                  file=sys.stderr, flush=True)
    for side in (ours, *theirs):
        side.close()
    lines = report(args, source, load_start, os.getloadavg(), ours.info, theirs[0].info, times)
    write_report(lines, args.out)


def report(args, source, load_start, load_end, ours_info, theirs_info, times) -> list[str]:
    load = f"{load_start[0]:.1f} / {load_start[1]:.1f} at the start, {load_end[0]:.1f} / {load_end[1]:.1f} at the end"
    lines = [f"# Our update vs the authors' (typoverflow/flow-rl), {args.env} dims, batch 256", "", source,
             f"- authors' code: typoverflow/flow-rl `{authors_commit(args.authors_src)}`, run by "
             f"`{args.authors_python}` ({theirs_info['versions']}, CPU)",
             f"- ours: {ours_info['versions']}",
             f"- 1-min / 5-min load average: {load} (2 cores; other jobs share them, so only the ratio, measured "
             "in alternating rounds under the same load, is meant to carry over)", "",
             "| update | side | config | GFLOP per update |", "|---|---|---|---:|"]
    for label, mine, their in PAIRS:
        for side, info, name in (("ours", ours_info, mine), ("theirs", theirs_info, their)):
            c = info["configs"][name]
            lines.append(f"| {label} | {side} `{name}` | {c['desc']} (batch {c['batch']}) | {c['flops'] / 1e9:.2f} |")
    flag = ours_info["xla_flags"]
    lines += ["", f"Median ms per update in each round, under the same load: ours (XLA_FLAGS `{flag}`, which "
              f"`import simpo` sets), theirs as shipped (XLA_FLAGS `{USER_XLA_FLAGS}` as this script was started with), "
              "and theirs with the same XLA flag as ours:",
              "", "| update | round | ours ms | theirs ms | ours / theirs | theirs, same flag, ms | ours / that |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for label, rounds in times.items():
        for r, (mine, their, same) in enumerate(rounds, 1):
            lines.append(f"| {label} | {r} | {mine * 1e3:.1f} | {their * 1e3:.1f} | {mine / their:.3f} "
                         f"| {same * 1e3:.1f} | {mine / same:.3f} |")
    lines += ["", "Overall (each side's median over the rounds; ratio = median(ours) / median(theirs)):", "",
              "| update | ours ms | theirs ms | ours / theirs | theirs, same flag, ms | ours / that |",
              "|---|---:|---:|---:|---:|---:|"]
    for label, rounds in times.items():
        mine, their, same = (float(np.median(x)) for x in zip(*rounds))
        lines.append(f"| {label} | {mine * 1e3:.1f} | {their * 1e3:.1f} | **{mine / their:.3f}** | {same * 1e3:.1f} "
                     f"| **{mine / same:.3f}** |")
    lines += ["", f"{args.rounds} rounds; per round and side: one warm-up call, then {args.repeats} timed "
              f"SiMPO/GeMPO updates ({args.sac_repeats} for SAC), each blocked on; the median is kept.", "", NOTES]
    return lines


if __name__ == "__main__":
    main()
