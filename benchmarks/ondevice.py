"""Benchmark (not a test): env steps/s and updates/s of the fully on-device loop (simpo.ondevice) on MuJoCo
Playground, for SAC and SiMPO fast / paper, and the projected wall-clock of 1M env steps x 5 seeds.

    python benchmarks/ondevice.py [--env playground:CheetahRun] [--num-envs 1] [--updates-per-iteration 0]
        [--iterations 100] [--repeats 3] [--eval-length 1000] [--impl auto] [--out docs/benchmarks/ondevice.md]

Per config: `build_loop`; a warm-up chunk fills the buffer with one batch (256 uniform-action env steps, no
updates); one untimed chunk of `iterations` scan iterations compiles; then `repeats` such chunks (E env steps and
U updates per iteration, all updating) are timed, median kept. "first chunks" is the wall-clock of the two
compiling calls (compile time, mostly). Training episodes are also `eval-length` steps long (the time limit).
One evaluation per mode (10 episodes of `eval-length` steps, one jitted scan) is timed after its compile.
Projection per seed: 1M / (env steps/s) + 100 evaluations (every 10k steps) x both modes x 1000 / eval-length;
seeds run one after another (x 5).

On a GPU try e.g. `--num-envs 256` (U defaults to E: update-to-data ratio 1, as the host loop).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402

from simpo.ondevice import build_loop  # noqa: E402
from simpo.playground import OnDeviceConfig  # noqa: E402
from simpo.train import default_config  # noqa: E402

CONFIGS = {"sac": ("sac", "fast"), "simpo fast": ("simpo", "fast"), "simpo paper": ("simpo", "paper")}
STEPS, SEEDS, EVAL_INTERVAL, BATCH = 1_000_000, 5, 10_000, 256


def measure(name: str, args) -> dict:
    algo, preset = CONFIGS[name]
    e = args.num_envs
    u = args.updates_per_iteration or e
    fill = -(-BATCH // e)  # warm-up iterations that fill the buffer with one batch (no updates)
    iterations = fill + args.iterations * (args.repeats + 1)
    config = dataclasses.replace(
        default_config(algo, preset, args.env), warmup_steps=fill * e, batch_size=BATCH, eval_episodes=10,
        max_episode_steps=args.eval_length, total_steps=e * iterations, eval_interval=e * iterations,
        checkpoint_interval=e * iterations, progress=False, matmul_precision=args.matmul_precision,
        ondevice=OnDeviceConfig(num_envs=e, updates_per_iteration=args.updates_per_iteration, impl=args.impl))
    loop = build_loop(config)
    tick = time.perf_counter()
    carry = loop.chunk(loop.carry, jnp.asarray(0, jnp.int32), fill)  # compiles the warm-up chunk
    carry = loop.chunk(carry, jnp.asarray(fill, jnp.int32), args.iterations)  # compiles the timed chunk
    jax.block_until_ready(carry)
    compile_s = time.perf_counter() - tick
    times = []
    for r in range(1, args.repeats + 1):
        tick = time.perf_counter()
        carry = loop.chunk(carry, jnp.asarray(fill + r * args.iterations, jnp.int32), args.iterations)
        jax.block_until_ready(carry)
        times.append(time.perf_counter() - tick)
    if not bool(carry.guard.healthy) or not bool(carry.env_guard.healthy):
        raise RuntimeError(f"{name}: a non-finite value during the benchmark")
    chunk_s = statistics.median(times)
    eval_s = {}
    for mode in ("best_of_n", "single"):
        key = jax.random.PRNGKey(1)
        jax.block_until_ready(loop.evaluate(carry.state, key, mode, key))  # compile
        tick = time.perf_counter()
        jax.block_until_ready(loop.evaluate(carry.state, key, mode, key))
        eval_s[mode] = time.perf_counter() - tick
    sps = e * args.iterations / chunk_s
    evals = STEPS / EVAL_INTERVAL * sum(eval_s.values()) * 1000 / args.eval_length
    return {"config": name, "E": e, "U": u, "compile_s": compile_s, "sps": sps, "ups": u * args.iterations / chunk_s,
            "eval_s": eval_s, "hours": SEEDS * (STEPS / sps + evals) / 3600}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="playground:CheetahRun")
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--updates-per-iteration", type=int, default=0, help="0 = num-envs")
    parser.add_argument("--iterations", type=int, default=100, help="scan iterations per timed chunk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-length", type=int, default=1000, help="steps per evaluation episode")
    parser.add_argument("--impl", default="auto", choices=["auto", "jax", "warp"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/ondevice.md"))
    parser.add_argument("--matmul-precision", choices=("float32", "tensorfloat32"), default="float32",
                        help="as simpo train's --matmul-precision")
    args = parser.parse_args()

    rows, prov = [], provenance()  # taken before the runs: their code and start time
    for name in args.configs:  # the report is rewritten after each config, so a cut-off run keeps what it measured
        with jax.default_matmul_precision(args.matmul_precision):  # as train_on_device runs it
            rows.append(measure(name, args))
        write_report(report(rows, args, prov), args.out)


def report(rows: list[dict], args, prov: str) -> list[str]:
    on_gpu = jax.default_backend() == "gpu"
    lines = [
        "# On-device loop (MuJoCo Playground / MJX): env steps/s, updates/s, projected wall-clock",
        "",
        prov,
        "",
        f"Env `{args.env}` (MJX impl `{args.impl}`, matmul precision `{args.matmul_precision}`), E = "
        f"{args.num_envs} envs per scan iteration, U updates per "
        f"iteration, batch 256; timed: median of {args.repeats} chunks of {args.iterations} iterations after the "
        f"compiling chunks; evaluation: 10 episodes of {args.eval_length} steps per mode. Projection: "
        f"{SEEDS} seeds × ({STEPS:,} env steps / env steps per s + {STEPS // EVAL_INTERVAL} evaluations in both "
        "modes, scaled to 1000-step episodes), seeds run one after another.",
        "",
    ]
    if not on_gpu:
        lines += ["**CPU run: this proves the script; the GPU numbers are not measured yet.** MJX physics on a CPU "
                  "is slow and the machine was shared, so these are not the numbers to plan with.", ""]
    lines += ["| config | E | U | first chunks (compile) s | env steps/s | updates/s | eval best-of-N s | "
              "eval single s | projected 1M × 5 seeds |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['E']} | {r['U']} | {r['compile_s']:.1f} | {r['sps']:,.1f} | "
                     f"{r['ups']:,.1f} | {r['eval_s']['best_of_n']:.2f} | {r['eval_s']['single']:.2f} | "
                     f"{r['hours']:,.1f} h |")
    missing = [c for c in args.configs if c not in {r["config"] for r in rows}]
    return lines + (["", f"Not measured yet in this run: {', '.join(missing)}."] if missing else [])


if __name__ == "__main__":
    main()
