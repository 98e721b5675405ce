"""Benchmark (not a test): SiMPO and SAC updates under XLA CPU flag sets, one process per set, timed in turns.

    python benchmarks/xla_flags.py [--configs "simpo paper" "simpo fast" sac] [--rounds 4]
        [--flags "--xla_cpu_prefer_vector_width=256" "--xla_cpu_prefer_vector_width=512" ...]
        [--out docs/benchmarks/xla_flags.md]

XLA reads XLA_FLAGS once per process, so each flag set gets its own worker process (the first set is the
baseline). Every worker builds benchmarks/speed.py's updates (batch 256, HalfCheetah-v5), then the workers are
asked in turn (who goes first rotates), round after round, for the median seconds per update of each config, so they all see the same
machine load; ratios are to the baseline of the same round. `import simpo` adds simpo.CPU_VECTOR_FLAG only where
XLA_FLAGS does not set the vector width, so a set without it is measured at 512 bits: name the width in every set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_FLAGS = ("--xla_cpu_prefer_vector_width=256", "--xla_cpu_prefer_vector_width=512")


def worker(configs: list[str], repeats: dict[str, int]) -> None:
    """Build each config's update, then answer each stdin line with {config: median seconds per update}."""
    sys.path.insert(0, str(HERE))
    import jax  # noqa: PLC0415
    from authors import per_call_seconds  # noqa: PLC0415
    from speed import setup, updates  # noqa: PLC0415

    runs = {}
    for name in configs:
        k, run = updates(setup(name, "HalfCheetah-v5", count_flops=False))
        jax.block_until_ready(run())  # compile
        runs[name] = (k, run)
    print(json.dumps({"xla_flags": os.environ.get("XLA_FLAGS", "")}), flush=True)
    for _ in sys.stdin:
        print(json.dumps({name: float(np.median(per_call_seconds(run, repeats[name], warmup=0))) / k
                          for name, (k, run) in runs.items()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["simpo paper", "simpo fast", "sac"])
    parser.add_argument("--flags", nargs="+", default=list(DEFAULT_FLAGS), help="XLA_FLAGS per worker; first: baseline")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=40, help="timed updates per config per round (paper: 3)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/xla_flags.md"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = {name: 3 if name == "simpo paper" else args.repeats for name in args.configs}
    if args.worker:
        return worker(args.configs, repeats)
    if args.rounds < 2 or len(args.flags) < 2:
        parser.error("--rounds must be >= 2 and --flags must name at least two sets (the first is the baseline)")
    sys.path.insert(0, str(HERE))
    from _provenance import provenance, write_report  # noqa: PLC0415

    source = provenance()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--configs", *args.configs,
           "--repeats", str(args.repeats)]
    workers = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "XLA_FLAGS": flags}) for flags in args.flags]
    seen = [json.loads(w.stdout.readline())["xla_flags"] for w in workers]
    times = []  # times[round][worker][config]
    for r in range(args.rounds):
        got = {}
        for i in [(i + r) % len(workers) for i in range(len(workers))]:  # who goes first rotates with the round
            workers[i].stdin.write("time\n")
            workers[i].stdin.flush()
            got[i] = json.loads(workers[i].stdout.readline())
        times.append([got[i] for i in range(len(workers))])
        base = times[-1][0]
        print(f"round {r + 1}: " + "; ".join(f"{name}: " + ", ".join(f"{t[name] / base[name]:.3f}" for t in times[-1])
                                             for name in args.configs), file=sys.stderr, flush=True)
    for w in workers:
        w.stdin.close()
        w.wait()

    lines = ["# XLA CPU flags: SiMPO and SAC updates, HalfCheetah-v5, batch 256", "", source,
             f"- flag sets (XLA_FLAGS as each worker saw it): " + "; ".join(f"`{f}`" for f in seen), "",
             f"Median ms per update in each of {args.rounds} rounds ({args.repeats} timed updates per config and "
             "round; `simpo paper`: 3), "
             "and the ratio to the baseline (the first set) in the same round:", "",
             "| config | round | " + " | ".join(f"`{f}`" for f in seen) + " |", "|---|---:|" + "---:|" * len(seen)]
    for name in args.configs:
        for r, row in enumerate(times, 1):
            cells = [f"{row[0][name] * 1e3:.1f}"] + [f"{t[name] * 1e3:.1f} ({t[name] / row[0][name]:.3f})" for t in row[1:]]
            lines.append(f"| {name} | {r} | " + " | ".join(cells) + " |")
    lines += ["", "Median over the rounds of the per-round ratio to the baseline:", "",
              "| config | " + " | ".join(f"`{f}`" for f in seen[1:]) + " |", "|---|" + "---:|" * (len(seen) - 1)]
    for name in args.configs:
        ratios = [np.median([row[i][name] / row[0][name] for row in times]) for i in range(1, len(seen))]
        lines.append(f"| {name} | " + " | ".join(f"**{x:.3f}**" for x in ratios) + " |")
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
