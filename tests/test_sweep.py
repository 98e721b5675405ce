"""`simpo sweep` on a local Ray instance: a tiny grid with a trial whose worker is killed and restored from its
checkpoint by Tune, search spaces, and bad input (one line, exit 2, nothing written)."""

import csv
import dataclasses
import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="simpo sweep needs the ray extra: pip install -c constraints.txt -e '.[ray]'")

from simpo.cli import main  # noqa: E402
from simpo.evaluation import read_run_config  # noqa: E402
from simpo.sweep import SweepConfig, plan  # noqa: E402
from simpo.sweep.run import KILL_ONCE_ENV  # noqa: E402
from simpo.train import train  # noqa: E402

TIMING_COLUMNS = {"wall_time_s", "train_sps"}
TINY = ["--env", "Pendulum-v1", "--warmup-steps", "100", "--batch-size", "16", "--eval-interval", "100",
        "--eval-episodes", "2", "--max-episode-steps", "50", "--checkpoint-interval", "200", "--num-cpus", "2",
        "--agent.num-candidates", "4", "--agent.temperature.kl-target", "1", "--agent.policy.steps", "2",
        "--agent.policy.hidden-dims", "32",
        "--agent.critic-hidden-dims", "32"]
SAC_TINY = ["--sac.actor-hidden-dims", "32", "--sac.critic-hidden-dims", "32"]  # where a trial trains SAC


def trials(out: Path) -> list[dict]:
    with open(out / "trials.csv") as f:
        return list(csv.DictReader(f))


def eval_rows(run_dir: Path) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def test_grid_of_two_trials_with_a_killed_worker_gives_two_complete_runs_and_resumes_as_done(tmp_path, capsys,
                                                                                               monkeypatch):
    """One local Ray sweep (its start-up is most of the time): a 2-trial grid, the first trial to checkpoint has its
    worker SIGKILLed once and Tune restores it from that checkpoint; it ends as an uninterrupted run of its config
    would, and `--resume` of the finished sweep runs nothing."""
    # the simpo trial trains with a weighting g of the user's own (MODULE:FUNCTION in the current directory):
    # Tune's worker processes must import it too
    (tmp_path / "mygs.py").write_text("import jax.numpy as jnp\n\ndef relu(x):\n    return jnp.maximum(x, 0.0)\n")
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))  # the first trial to checkpoint SIGKILLs its worker, once
    out = tmp_path / "sweep"
    assert main(["sweep", "--param", "algo=sac,simpo", "--out", str(out), "--total-steps", "300", *TINY, *SAC_TINY,
                 "--agent.weighting", "mygs:relu"]) == 0
    assert marker.exists() and not ray.is_initialized()  # the sweep started a local Ray, and shut it down
    rows = sorted(trials(out), key=lambda r: r["resumed_from"])
    assert sorted(r["algo"] for r in rows) == ["sac", "simpo"]
    assert [(r["status"], r["env_step"], r["resumed_from"], r["failures"]) for r in rows] == [
        ("done", "300", "0", "0"), ("done", "300", "200", "1")]
    for row in rows:
        assert [r["env_step"] for r in eval_rows(row["run_dir"])] == ["100", "200", "300"]
        assert (Path(row["run_dir"]) / "checkpoints" / "300").is_dir()
        assert Path(row["run_dir"]).parent == out / "runs"
        if row["algo"] == "simpo":
            assert json.loads((Path(row["run_dir"]) / "config.json").read_text())["agent"]["weighting"] == "mygs:relu"
    restored = Path(rows[1]["run_dir"])  # exact resume: the evaluations of the same config trained straight through
    straight = train(dataclasses.replace(read_run_config(restored), run_dir=tmp_path / "straight"))
    assert eval_rows(restored) == eval_rows(straight.run_dir)
    assert len(list((out / "tune").glob("trial-*/result.json"))) == 2  # Tune's own results
    assert (out / "study" / "results.json").is_file()  # the study aggregator read the trials' run dirs
    printed = capsys.readouterr().out
    assert "2 trials" in printed and printed.count(": done at env step 300") == 2
    before = (out / "trials.csv").read_text()
    assert main(["sweep", "--resume", "--out", str(out)]) == 0  # nothing left to run: the same trials
    assert (out / "trials.csv").read_text() == before and not ray.is_initialized()


def test_search_space_from_yaml_and_flags(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("agent.weighting: [exp, square]\nagent.actor_lr: {loguniform: [1.0e-4, 1.0e-3]}\n"
                     "agent.num_candidates: {choice: [8, 16]}\ntotal_steps: 300\n")
    config = SweepConfig(out=tmp_path / "s", base_args=("--env", "Pendulum-v1"), space=space,
                         params=("seed=0,1,2",), num_samples=2)
    builder, param_space, n = plan(config)
    assert n == 2 * 3 * 2
    assert param_space["agent.weighting"] == {"grid_search": ["exp", "square"]}
    assert param_space["total_steps"] == 300
    trial = builder.config({"agent.weighting": "square", "agent.actor_lr": 3e-4, "agent.num_candidates": 8,
                            "total_steps": 300, "seed": "2"}, "abc_00007")
    assert (trial.agent.weighting, trial.agent.actor_lr, trial.agent.num_candidates) == ("square", 3e-4, 8)
    assert (trial.seed, trial.total_steps, trial.env) == (2, 300, "Pendulum-v1")
    assert trial.run_dir == (tmp_path / "s").absolute() / "runs" / "00007-Pendulum-v1-simpo-square-s2"
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args", [
    ["--param", "algo=simpo,sac", "--sac.actor-lr", "1e-3", "--env", "Pendulum-v1"],  # the sac trial takes it
    ["--param", "env=playground:CheetahRun,Pendulum-v1", "--ondevice.num-envs", "4"],
    ["--param", "agent.weighting=exp,power", "--agent.power-p", "3", "--env", "Pendulum-v1"],
])
def test_a_shared_flag_that_some_trial_uses_is_accepted(tmp_path, args):
    from simpo.sweep.run import parse_args

    builder, _, n = plan(parse_args(["--out", str(tmp_path / "s"), *args]))
    assert n == 2 and not (tmp_path / "s").exists()


@pytest.mark.parametrize("args, expected", [
    (["--param", "agent.num_candidate=4,8"], "did you mean agent.num_candidates"),
    (["--param", "agent.weighting=exp,nope"], "agent.weighting=nope"),
    (["--param", "total_steps=100,-5"], "total_steps must be >= 0"),
    (["--param", "agent.num_candidates=4,8"],
     "trial with agent.num_candidates=4: Error parsing agent: temperature kl_target 2 is unreachable with 4 candidates"),
    (["--param", "run_dir=a,b"], "run_dir cannot be swept"),
    (["--param", "seed"], "expected NAME=V1,V2"),
    (["--study", "nope"], "unknown study 'nope'"),
    (["--budget", "100", "--param", "seed=0,1"], "--budget and --group-seeds belong to --study"),
    (["--study", "mujoco", "--algo", "sac"], "--algo and --env come from the study's cells"),
    (["--resume", "--param", "seed=0"], "--resume takes only --out DIR"),
    (["--resume"], "is not a started sweep"),
    ([], "nothing to sweep"),
    (["--param", "seed=0", "--num-samples", "x"], "argument --num-samples: invalid int value: 'x' (see simpo sweep"),
    (["--param", "seed=0", "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (["--param", "seed=0", "--address", "foo:bar"], "Unable to parse port number from bar"),  # OUT not written
    (["--space", "SPACE"], "agent.actor_lr: loguniform needs [low, high]"),
    (["--param", "seed=0", "--out", "FILE"], "is not an empty directory"),
    (["--param", "agent.weighting=exp,exp"], "agent.weighting: grid values exp and exp make the same trial"),
    (["--param", "agent.actor_lr=0.001,1e-3"], "agent.actor_lr: grid values 0.001 and 1e-3 make the same trial"),
    (["--param", "agent.weighting=exp,square", "--weighting", "linear"],
     "--weighting would be ignored: the same field is swept (agent.weighting)"),
    (["--param", "seed=0,1", "--seed", "3"], "--seed would be ignored: the same field is swept (seed)"),
    (["--param", "seed=0,1", "--no_progress"], "--no-progress would be ignored: the sweep sets each trial's"),
    (["--param", "algo=simpo,dpmd", "--sac.actor-lr", "1e-3"],
     "--sac.actor-lr would be ignored by every trial: --algo simpo does not use SAC's options"),
    (["--param", "agent.weighting=exp,linear", "--agent.power-p", "3"],
     "--agent.power-p would be ignored by every trial: weighting exp does not take it"),
    (["--param", "seed=0,1", "--seeds", "2", "3"], "the trials' seeds come from --seeds"),
    (["--param", "seed=0,1", "--asha-grace", "100"], "--asha-grace sets ASHA's grace period; add --asha"),
    (["--param", "seed=0,1", "--run-dir", "x"], "--run-dir would be ignored: the sweep sets each trial's run"),
    (["--param", "agent.actor_lr=1e-3", "--algo", "sac"],
     "--agent.actor-lr would be ignored by every trial: --algo sac does not use"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, expected):
    space, file = tmp_path / "space.yaml", tmp_path / "file"
    space.write_text("agent.actor_lr: {loguniform: [0, 1.0e-3]}\n")
    file.write_text("x")
    args = [str(space) if a == "SPACE" else str(file) if a == "FILE" else a for a in args]
    out = ["--out", str(tmp_path / "sweep")] if "--out" not in args else []
    env = [] if "--study" in args or "--resume" in args else ["--env", "Pendulum-v1"]
    if not env or any("total_steps" in a for a in args):
        short = []
    else:  # a check that regressed then runs a short trial and fails here, not a 1M-step one
        short = ["--total-steps", "200", "--warmup-steps", "100", "--eval-interval", "100"]
    assert main(["sweep", *out, *args, *env, *short]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simpo sweep: error:") and expected in err and "\n" not in err, err
    assert not (tmp_path / "sweep").exists() and not ray.is_initialized()


def test_space_refuses_a_float_range_on_an_int_field_and_reads_1e_4(tmp_path):
    """uniform/loguniform over an int field would fail every trial on a draw like 12.7: refused up front, pointing
    to randint. PyYAML reads 1e-4 (no dot) as a string: a bound float() reads is taken as that number."""
    space = tmp_path / "space.yaml"
    space.write_text("agent.num_candidates: {uniform: [8, 16]}\n")
    with pytest.raises(ValueError, match=r"^agent.num_candidates is an int: uniform would draw floats such as 12.7; "
                                         r"use \{randint: \[low, high\]\}"):
        plan(SweepConfig(out=tmp_path / "s", base_args=("--env", "Pendulum-v1"), space=space))
    space.write_text("agent.actor_lr: {loguniform: [1e-4, 1e-3]}\nagent.num_candidates: {randint: [8, 17]}\n")
    builder, param_space, n = plan(SweepConfig(out=tmp_path / "s", base_args=("--env", "Pendulum-v1"), space=space))
    lr = param_space["agent.actor_lr"]
    assert (lr.lower, lr.upper) == (1e-4, 1e-3) and 1e-4 <= lr.sample() <= 1e-3
    assert builder.config({"agent.actor_lr": lr.sample(), "agent.num_candidates": 12}).agent.num_candidates == 12
    assert not (tmp_path / "s").exists()
