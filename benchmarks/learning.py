"""Benchmark (not a test): SiMPO `fast` / `paper` against SAC on one env, side by side in one process.

    python benchmarks/learning.py --env HalfCheetah-v5 --steps 50000 --seeds 0 1 2 \
        [--timing-only paper] [--out docs/benchmarks/learning.md]

For each seed the configs run one after another (sac, fast, paper), so all share the machine's
conditions. It reports eval_return_mean (best-of-M by Q, the authors' protocol) and the single-sample
return at the budget, the wall-clock per env step (training loop only, evaluation excluded; warm-up
steps included), and both as ratios to SAC. Configs named in --timing-only (default: paper, which needs
days per seed on a CPU) are not trained: their jitted update is timed on random batches instead.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402

from simpo.agents.base import Batch  # noqa: E402
from simpo.envs import env_spec, make_env  # noqa: E402
from simpo.train import default_config, make_agent, train  # noqa: E402

CONFIGS = {"sac": ("sac", "fast"), "fast": ("simpo", "fast"), "paper": ("simpo", "paper")}


def run_one(name: str, env: str, seed: int, steps: int, warmup: int, root: Path, eval_interval: int) -> dict:
    algo, preset = CONFIGS[name]
    config = dataclasses.replace(
        default_config(algo, preset, env), seed=seed, total_steps=steps, warmup_steps=min(warmup, steps),
        eval_interval=min(eval_interval, steps), checkpoint_interval=steps, run_dir=root / f"{name}-s{seed}",
        overwrite=True, progress=False,
    )
    run_dir = train(config).run_dir
    with open(run_dir / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    return {"return": float(last["eval_return_mean"]), "single": float(last["eval_return_single_mean"]),
            "s_per_step": 1.0 / float(last["train_sps"])}


def time_update(name: str, env: str, seed: int, updates: int) -> float:
    """Seconds per jitted update (compiled first) on a batch of random transitions of `env`'s shape."""
    algo, preset = CONFIGS[name]
    config = default_config(algo, preset, env)
    obs_dim, action_dim = env_spec(make_env(env, seed))
    agent = make_agent(config, obs_dim, action_dim)
    k = jax.random.split(jax.random.PRNGKey(seed), 6)
    b = config.batch_size
    batch = Batch(jax.random.normal(k[0], (b, obs_dim)), jax.random.uniform(k[1], (b, action_dim), minval=-1.0),
                  jax.random.normal(k[2], (b,)), jax.random.normal(k[3], (b, obs_dim)), jnp.zeros(b))
    update = jax.jit(agent.update)
    state, _ = update(agent.init(k[4]), batch, k[5])
    jax.block_until_ready(state)
    start = time.perf_counter()
    for i in range(updates):
        state, _ = update(state, batch, jax.random.fold_in(k[5], i))
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=5000)
    parser.add_argument("--eval-interval", type=int, default=5000, help="env steps between evaluations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--timing-only", nargs="*", default=["paper"], choices=list(CONFIGS))
    parser.add_argument("--timing-steps", type=int, default=20, help="updates timed for --timing-only configs")
    parser.add_argument("--root", type=Path, default=Path("runs/benchmarks/learning"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/learning.md"))
    args = parser.parse_args()
    source = provenance()  # taken before the run: the code that is measured

    results: dict[str, list[dict]] = {name: [] for name in args.configs}
    for seed in args.seeds:
        for name in args.configs:
            if name in args.timing_only:
                r = {"return": float("nan"), "single": float("nan"),
                     "s_per_step": time_update(name, args.env, seed, args.timing_steps)}
            else:
                r = run_one(name, args.env, seed, args.steps, args.warmup, args.root / args.env, args.eval_interval)
            results[name].append(r)
            print(f"seed {seed} {name:>5}: return {r['return']:.1f}, single {r['single']:.1f}, "
                  f"{r['s_per_step'] * 1e3:.1f} ms/env step", flush=True)

    def mean(name, key):
        return float(np.mean([r[key] for r in results[name]]))

    base_ret, base_time = (mean("sac", "return"), mean("sac", "s_per_step")) if "sac" in results else (None, None)
    lines = [
        f"# Learning benchmark: {args.env}, {args.steps:,} env steps, seeds {args.seeds}", "", source, "",
        "| config | eval_return_mean (best-of-M) | single-sample return | ms per env step | return / SAC | time / SAC |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in results:
        rets = [r["return"] for r in results[name]]
        ret = "not run (timing only)" if name in args.timing_only else f"{np.mean(rets):.1f} ± {np.std(rets):.1f}"
        single = "" if name in args.timing_only else f"{mean(name, 'single'):.1f}"
        ratio_ret = "" if name in args.timing_only or not base_ret else f"{mean(name, 'return') / base_ret:.2f}"
        # a timing-only row is one update, not a loop's env step: no ratio to SAC's loop
        ratio_time = f"{mean(name, 's_per_step') / base_time:.1f}×" if base_time and name not in args.timing_only else ""
        lines.append(f"| {name} | {ret} | {single} | {mean(name, 's_per_step') * 1e3:.1f} | {ratio_ret} | {ratio_time} |")
    lines += ["", f"Timing-only configs: the time of one jitted update (mean of {args.timing_steps}, after "
              "compiling), i.e. the update's share of an env step at update-to-data ratio 1. The other rows are "
              "the training loop's wall-clock per env step (acting, env, update; evaluation excluded), averaged "
              "over the whole run, warm-up steps (random actions, no updates) and compilation included. ± is the "
              "standard deviation over seeds (ddof 0)."]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
