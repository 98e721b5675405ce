"""Exact resume: a run killed with SIGKILL after a checkpoint and resumed equals the uninterrupted run."""

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from simpo.envs import env_spec, make_env
from test_logger import read_tb_scalars
from simpo.evaluation import read_run_config, restore_run
from simpo.train import make_agent

TIMING_COLUMNS = {"wall_time_s", "train_sps"}


def flags(algo: str, run_dir: Path) -> list[str]:
    return ["--algo", algo, "--env", "Pendulum-v1", "--total-steps", "500", "--warmup-steps", "100",
            "--batch-size", "16", "--eval-interval", "150", "--eval-episodes", "2", "--max-episode-steps", "70",
            "--checkpoint-interval", "100", "--keep-checkpoints", "10", "--run-dir", str(run_dir), "--no-progress",
            *(["--sac.actor-hidden-dims", "32", "--sac.critic-hidden-dims", "32"] if algo == "sac" else
              ["--agent.num-candidates", "4", "--agent.temperature.kl-target", "1", "--agent.policy.steps", "2",
               "--agent.policy.hidden-dims", "32", "--agent.critic-hidden-dims", "32"])]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "simpo.cli", "train", *args]


def saved_steps(run_dir: Path) -> list[int]:
    ckpt = run_dir / "checkpoints"
    return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.is_dir() else []


def final(run_dir: Path):
    config = read_run_config(run_dir)
    obs_dim, action_dim = env_spec(make_env(config.env, config.seed))
    agent = make_agent(config, obs_dim, action_dim)
    state, buffer, meta = restore_run(run_dir, config, agent, obs_dim, action_dim)
    with open(run_dir / "metrics.csv") as f:
        rows = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]
    return state, buffer, meta["env_step"], rows


def same(a, b) -> bool:
    return jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b))


@pytest.mark.parametrize("algo", ["simpo", "sac"])
def test_sigkill_then_resume_is_bit_exact(tmp_path, algo):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run(cli(*flags(algo, straight)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    kill_after = random.Random(algo).choice([200, 300])
    proc = subprocess.Popen(cli(*flags(algo, killed)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not any(s >= kill_after for s in saved_steps(killed)) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(random.Random(algo).uniform(0.0, 0.3))  # somewhere after the checkpoint
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert max(saved_steps(killed)) < 500

    done = subprocess.run(cli("--resume", str(killed), "--no-progress"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and "nothing to resume" not in done.stdout, done.stderr
    before = {p: p.stat().st_mtime_ns for p in straight.rglob("*")}
    again = subprocess.run(cli("--resume", str(straight), "--no-progress"), capture_output=True, text=True,
                           timeout=600)  # a finished run: said so, and left as it was (compared below)
    assert again.returncode == 0 and "nothing to resume: the run was already complete (env step 500 of 500)" \
        in again.stdout, again.stderr
    assert {p: p.stat().st_mtime_ns for p in straight.rglob("*")} == before  # no provenance entry, no tb file
    s_state, s_buffer, s_step, s_rows = final(straight)
    k_state, k_buffer, k_step, k_rows = final(killed)
    assert s_step == k_step == 500
    assert same(s_state, k_state), "final agent state differs after resume"
    assert same(s_buffer, k_buffer), "replay buffer differs after resume"
    assert [r["env_step"] for r in k_rows] == ["150", "300", "450", "500"]
    assert s_rows == k_rows
    tensorboard = [{tag: points for tag, points in read_tb_scalars(d).items() if tag not in TIMING_COLUMNS}
                   for d in (straight, killed)]
    assert tensorboard[0] == tensorboard[1]  # as TensorBoard shows them: what the killed run logged is purged


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    args = flags("sac", run_dir)
    args[args.index("--total-steps") + 1] = "40"
    args[args.index("--warmup-steps") + 1] = "20"
    args[args.index("--checkpoint-interval") + 1] = "20"
    done = subprocess.run(cli(*args), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return run_dir


def broken_copy(run_dir: Path, tmp_path: Path, how: str) -> Path:
    import shutil

    copy = tmp_path / how
    shutil.copytree(run_dir, copy)
    if how == "corrupted-checkpoints":
        for f in (copy / "checkpoints").glob("*/state/**/*"):
            if f.is_file():
                f.write_bytes(b"garbage")
    elif how == "mismatched-config":
        import json

        config = json.loads((copy / "config.json").read_text())
        config["sac"]["critic_hidden_dims"] = [64]
        (copy / "config.json").write_text(json.dumps(config))
    elif how == "corrupted-config":
        (copy / "config.json").write_text("{ not json")
    return copy


@pytest.mark.parametrize("case,message", [
    ("other-flags", "other flags are not allowed"),
    ("missing", "does not exist"),
    ("corrupted-checkpoints", "no readable checkpoint"),
    ("mismatched-config", "no readable checkpoint"),
    ("corrupted-config", "corrupted config.json"),
])
def test_resume_bad_input_is_one_line(small_run, tmp_path, case, message):
    if case == "other-flags":
        args = ["--resume", str(small_run), "--seed", "3"]
    elif case == "missing":
        args = ["--resume", str(tmp_path / "missing")]
    else:
        args = ["--resume", str(broken_copy(small_run, tmp_path, case))]
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime) for p in tmp_path.rglob("*"))
    done = subprocess.run(cli(*args), capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime) for p in tmp_path.rglob("*")) == before
