"""Seeds in one process against separate processes (not a test): wall-clock and env steps/s per seed.

    python benchmarks/seeds.py [--env HalfCheetah-v5] [--algo simpo] [--seeds 5] [--steps 3000] [--warmup 1000]

Three ways to train S seeds for the same number of env steps, each a real `simpo train` subprocess (or S of them):
one process with `--seeds` (map batching, then vmap batching), S single-seed processes started together, and one
single-seed process alone (the per-seed reference). Reports the wall-clock (start-up and compile included)
and the training loop's env steps/s from metrics.csv (`train_sps`, per seed; × S for the total).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402


def cmd(args, run_dir: Path, seeds: list[int], batching: str = "map") -> list[str]:
    return [sys.executable, "-m", "simpo.cli", "train", "--env", args.env, "--algo", args.algo,
            "--total-steps", str(args.steps), "--warmup-steps", str(args.warmup), "--eval-interval", str(args.steps),
            "--eval-episodes", "1", "--checkpoint-interval", str(args.steps), "--no-progress", "--overwrite",
            "--run-dir", str(run_dir), "--seeds", *map(str, seeds), "--seed-batching", batching]


def train_sps(run_dir: Path) -> list[float]:
    """The final `train_sps` of every seed under run_dir."""
    out = []
    for metrics in sorted(run_dir.rglob("metrics.csv")):
        with open(metrics) as f:
            out.append(float(list(csv.DictReader(f))[-1]["train_sps"]))
    return out


def timed(commands: list[list[str]]) -> float:
    """Run the commands concurrently; wall-clock seconds until the last one ends."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"benchmark run failed: {err.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--algo", default="simpo")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--root", type=Path, default=Path("runs/benchmarks/seeds"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/seeds.md"))
    args = parser.parse_args()
    source, seeds, root = provenance(), list(range(args.seeds)), args.root
    ways = {
        "one process, --seeds (map)": [cmd(args, root / "map", seeds, "map")],
        "one process, --seeds (vmap)": [cmd(args, root / "vmap", seeds, "vmap")],
        f"{args.seeds} single-seed processes at once": [cmd(args, root / f"alone{s}", [s]) for s in seeds],
        "1 single-seed process (1 seed only)": [cmd(args, root / "single", [0])],
    }
    results = {}
    for name, commands in ways.items():
        wall = timed(commands)
        dirs = sorted({Path(c[c.index("--run-dir") + 1]) for c in commands})
        sps = [x for d in dirs for x in train_sps(d)]
        results[name] = (wall, sps)
        print(f"{name}: {wall:.1f} s wall, train_sps per seed {', '.join(f'{x:.0f}' for x in sps)}", flush=True)
    base = results[f"{args.seeds} single-seed processes at once"][0]
    lines = [f"# Seeds in one process: {args.algo} on {args.env}, {args.seeds} seeds × {args.steps} env steps", "",
             source, "", f"Warm-up {args.warmup} steps (no updates), then one update per env step; default preset.",
             "Wall-clock includes start-up and compilation, and so does the loop's rate (its first act and update "
             "compile inside it). The speed-up against separate processes is given for equal work (all seeds) only.",
             "", "| how | seeds | wall-clock (s) | vs separate processes | env steps/s per seed (loop) | "
             "total env steps/s (wall-clock) |", "|---|---:|---:|---:|---:|---:|"]
    for name, (wall, sps) in results.items():
        n = len(sps)
        ratio = f"{base / wall:.2f}×" if n == args.seeds else "—"
        lines.append(f"| {name} | {n} | {wall:.1f} | {ratio} | {sum(sps) / n:.0f} | {n * args.steps / wall:.0f} |")
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
