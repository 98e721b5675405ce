"""Robustness run (not a test): many seeds × short runs of every algo on two envs.

    python benchmarks/robustness.py [--seeds 20] [--out docs/benchmarks/robustness.md]

Each (env, algo) cell is one real `simpo train --seeds 0 … S-1 --seed-batching map` subprocess on a tiny config
(map batching is bit-identical to S single-seed runs). If the group fails, each seed is rerun in its own process
to find which: exit non-zero for any reason other than the NaN guard is a crash, a guard stop is a NaN. Then the
same group is killed with SIGKILL after its first checkpoint and resumed (`simpo train --resume GROUP`); every
seed's final agent state and replay buffer must equal the uninterrupted group's, bit for bit.
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
        "--keep-checkpoints", "5", "--no-progress"]
TINY_AGENT = {  # simpo train refuses the other algorithm's flags
    "simpo": ["--agent.num-candidates", "4", "--agent.temperature.kl-target", "1", "--agent.policy.steps", "2",
              "--agent.policy.hidden-dims", "32", "32", "--agent.critic-hidden-dims", "32", "32"],
    "sac": ["--sac.actor-hidden-dims", "32", "32", "--sac.critic-hidden-dims", "32", "32"],
}


def train_cmd(env: str, algo: str, seeds: list[int], run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "simpo.cli", "train", "--env", env, "--algo", algo, "--seeds", *map(str, seeds),
            "--seed-batching", "map", "--run-dir", str(run_dir), "--overwrite", *TINY,
            *TINY_AGENT["sac" if algo == "sac" else "simpo"]]


def outcome(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode == 0:
        return "ok"
    return "nan" if "non-finite" in proc.stderr else "crash"


def final_state(run_dir: Path):
    """(agent state, buffer, env step) of a single-seed run directory's newest checkpoint."""
    config = read_run_config(run_dir)
    obs_dim, action_dim = env_spec(make_env(config.env, config.seed))
    state, buffer, meta = restore_run(run_dir, config, make_agent(config, obs_dim, action_dim), obs_dim, action_dim)
    return state, buffer, meta["env_step"]


def killed_and_resumed(cmd: list[str], run_dir: Path) -> bool:
    """Kill the group `cmd` with SIGKILL once every seed has a checkpoint, resume it; True if it then finished."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = lambda: [d for d in run_dir.glob("seed*") if any(p.name.isdigit() for p in d.glob("checkpoints/*"))]  # noqa: E731
    while proc.poll() is None and not (saved() and len(saved()) == len(list(run_dir.glob("seed*")))):
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
    parser.add_argument("--root", type=Path, default=Path("runs/benchmarks/robustness"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/robustness.md"))
    args = parser.parse_args()
    source = provenance()

    rows, problems = [], []
    seeds = list(range(args.seeds))
    same = lambda x, y: jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), x, y))  # noqa: E731
    for env in args.envs:
        for algo in args.algos:
            counts = {"ok": 0, "nan": 0, "crash": 0, "resume checked": 0, "resume mismatch": 0}
            group = args.root / env.replace(":", "-") / algo
            proc = subprocess.run(train_cmd(env, algo, seeds, group), capture_output=True, text=True)
            if proc.returncode == 0:
                counts["ok"] = len(seeds)
            else:  # find the seeds that fail, one process each
                for seed in seeds:
                    single = subprocess.run(train_cmd(env, algo, [seed], group / f"alone{seed}"),
                                            capture_output=True, text=True)
                    counts[outcome(single)] += 1
                    if single.returncode != 0:
                        problems.append(f"{env} {algo} seed {seed}: {single.stderr.strip().splitlines()[-1:]}")
            killed = group.with_name(group.name + "-killed")
            resumed = killed_and_resumed(train_cmd(env, algo, seeds, killed), killed)
            for seed in seeds if proc.returncode == 0 else []:
                counts["resume checked"] += 1
                if not resumed or not same(final_state(group / f"seed{seed}"), final_state(killed / f"seed{seed}")):
                    counts["resume mismatch"] += 1
                    problems.append(f"{env} {algo} seed {seed}: resumed run differs")
            print(f"{env} {algo}: {counts}", flush=True)
            rows.append((env, algo, counts))

    lines = [f"# Robustness run: {args.seeds} seeds × {len(args.algos)} algos × {len(args.envs)} envs", "", source,
             "", "Each (env, algo): one `simpo train --seeds 0 … S-1 --seed-batching map` process (bit-identical to "
             "S single-seed runs), 300 env steps, tiny networks, a checkpoint every 100 steps (a failed group is "
             "rerun seed by seed to attribute the failure); then the same group killed with SIGKILL after its "
             "first checkpoint, resumed with `simpo train --resume`, and every seed compared bit for bit with the "
             "uninterrupted group.", "",
             "| env | algo | runs | ok | NaN stops | crashes | resume checked | resume mismatches |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for env, algo, c in rows:
        lines.append(f"| {env} | {algo} | {args.seeds} | {c['ok']} | {c['nan']} | {c['crash']} | "
                     f"{c['resume checked']} | {c['resume mismatch']} |")
    lines += ["", "Problems: " + ("none." if not problems else "")] + [f"- {p}" for p in problems]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
