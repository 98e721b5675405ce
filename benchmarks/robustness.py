"""Robustness run (not a test): many seeds × short runs of every algo on two envs, each in its own process.

    python benchmarks/robustness.py [--seeds 20] [--resume-every 5] [--out docs/benchmarks/robustness.md]

Every run is a real `simpo train` subprocess on a tiny config. It counts as a crash if it exits non-zero
for any reason other than the NaN guard, and as a NaN if the guard stopped it. For every
`--resume-every`-th seed the same run is also killed with SIGKILL after its first checkpoint and
resumed; its final agent state and replay buffer must equal the uninterrupted run's, bit for bit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402

from simpo.envs import env_spec, make_env  # noqa: E402
from simpo.evaluation import read_run_config, restore_run  # noqa: E402
from simpo.train import make_agent  # noqa: E402

TINY = ["--total-steps", "300", "--warmup-steps", "100", "--batch-size", "32", "--eval-interval", "150",
        "--eval-episodes", "1", "--max-episode-steps", "100", "--checkpoint-interval", "100",
        "--keep-checkpoints", "5", "--no-progress", "--agent.num-candidates", "4", "--agent.policy.steps", "2",
        "--agent.policy.hidden-dims", "32", "32", "--agent.critic-hidden-dims", "32", "32",
        "--sac.actor-hidden-dims", "32", "32", "--sac.critic-hidden-dims", "32", "32"]


def train_cmd(env: str, algo: str, seed: int, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "simpo.cli", "train", "--env", env, "--algo", algo, "--seed", str(seed),
            "--run-dir", str(run_dir), "--overwrite", *TINY]


def outcome(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode == 0:
        return "ok"
    return "nan" if "non-finite" in proc.stderr else "crash"


def final_state(run_dir: Path):
    config = read_run_config(run_dir)
    obs_dim, action_dim = env_spec(make_env(config.env, config.seed))
    state, buffer, meta = restore_run(run_dir, config, make_agent(config, obs_dim, action_dim), obs_dim, action_dim)
    return state, buffer, meta["env_step"]


def killed_and_resumed(cmd: list[str], run_dir: Path) -> bool:
    """Kill `cmd` with SIGKILL once a checkpoint exists, resume it; True if it then finished."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run_dir / "checkpoints"
    while proc.poll() is None and not (ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())):
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run([sys.executable, "-m", "simpo.cli", "train", "--resume", str(run_dir), "--no-progress"],
                             capture_output=True, text=True)
    return resumed.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--algos", nargs="+", default=["simpo", "dpmd", "qvpo", "sac"])
    parser.add_argument("--envs", nargs="+", default=["HalfCheetah-v5", "dmc:cheetah-run"])
    parser.add_argument("--resume-every", type=int, default=5, help="check kill-and-resume on every k-th seed")
    parser.add_argument("--root", type=Path, default=Path("runs/benchmarks/robustness"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/robustness.md"))
    args = parser.parse_args()
    source = provenance()

    rows, problems = [], []
    for env in args.envs:
        for algo in args.algos:
            counts = {"ok": 0, "nan": 0, "crash": 0, "resume checked": 0, "resume mismatch": 0}
            for seed in range(args.seeds):
                run_dir = args.root / env.replace(":", "-") / f"{algo}-s{seed}"
                proc = subprocess.run(train_cmd(env, algo, seed, run_dir), capture_output=True, text=True)
                counts[outcome(proc)] += 1
                if proc.returncode != 0:
                    problems.append(f"{env} {algo} seed {seed}: {proc.stderr.strip().splitlines()[-1:]}")
                elif seed % args.resume_every == 0:
                    killed = run_dir.with_name(run_dir.name + "-killed")
                    counts["resume checked"] += 1
                    ok = killed_and_resumed(train_cmd(env, algo, seed, killed), killed)
                    if not ok or not all(jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), x, y))
                                         for x, y in zip(final_state(run_dir), final_state(killed))):
                        counts["resume mismatch"] += 1
                        problems.append(f"{env} {algo} seed {seed}: resumed run differs")
                print(f"{env} {algo} seed {seed}: {outcome(proc)}", flush=True)
            rows.append((env, algo, counts))

    lines = [f"# Robustness run: {args.seeds} seeds × {len(args.algos)} algos × {len(args.envs)} envs", "", source,
             "", "Each run: `simpo train` in its own process, 300 env steps, tiny networks, a checkpoint every 100 "
             f"steps; every {args.resume_every}th seed also killed with SIGKILL after its first checkpoint, "
             "resumed, and compared bit for bit with the uninterrupted run.", "",
             "| env | algo | runs | ok | NaN stops | crashes | resume checked | resume mismatches |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for env, algo, c in rows:
        lines.append(f"| {env} | {algo} | {args.seeds} | {c['ok']} | {c['nan']} | {c['crash']} | "
                     f"{c['resume checked']} | {c['resume mismatch']} |")
    lines += ["", "Problems: " + ("none." if not problems else "")] + [f"- {p}" for p in problems]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
