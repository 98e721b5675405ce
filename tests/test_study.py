"""The study runner (issue 6): registry and grid expansion, bad input, a tiny study end to end with resume,
and the rliable aggregation on synthetic runs with known scores."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest

import simpo.study.specs as specs
from simpo.cli import main
from simpo.agents.simpo_agent import SiMPOConfig
from simpo.policies import PolicyConfig
from simpo.study import STUDIES, Arm, Study, aggregate, cells, run_study
from simpo.train import default_config


def test_registry_and_cells():
    assert {"bandits", "reward-landscape", "mujoco", "negative-weights"} <= set(STUDIES)
    grid = cells("reward-landscape", budget=8000, seeds=[3, 4], preset="fast")
    assert [c.name for c in grid] == [f"cheetah-run/{t}/simpo-{s}" for t in ("flat", "steep")
                                      for s in ("exp", "linear", "square")]
    c = grid[-1]
    assert (c.config.env, c.config.reward_transform, c.config.agent.weighting) == ("dmc:cheetah-run", "steep", "square")
    assert c.seeds == (3, 4) and c.config.seed == 3 and c.config.run_dir is None and c.config.preset == "fast"
    assert c.config.total_steps == 8000 and c.config.warmup_steps == 800 and c.config.eval_interval == 1600
    full = cells("mujoco")
    assert len(full) == 6 * 5 and full[0].seeds == (0, 1, 2, 3, 4) and full[0].config.total_steps == 1_000_000
    assert {c.name.split("/")[1] for c in full} == {"simpo-linear", "simpo-square", "dpmd-exp", "qvpo-best_advantage", "sac"}
    neg = {c.name: c.config.agent for c in cells("negative-weights") if c.name.startswith("Hopper")}
    assert neg["Hopper-v5/simpo-signed_linear:floor=-0.02"].floor == -0.02
    with pytest.raises(ValueError, match="not a training grid"):
        cells("bandits")
    two = cells("mujoco", budget=1000, seeds=[0], envs=["Ant-v5", "Hopper-v5"])  # a subset, in the order given
    assert [c.name for c in two] == [c.name for e in ("Ant", "Hopper") for c in full if c.name.startswith(e + "-")]
    picked = cells("mujoco", budget=1000, seeds=[0], envs=["Hopper-v5"], arms=["sac", "simpo-square"])  # in this order
    assert [c.name for c in picked] == ["Hopper-v5/sac", "Hopper-v5/simpo-square"]
    by_name = {c.name: c.config for c in cells("mujoco", budget=1000, seeds=[0], envs=["Hopper-v5"])}
    assert all(c.config == by_name[c.name] for c in picked)  # the same configs as in the whole grid


@pytest.mark.parametrize("argv, message", [
    (["study", "nope"], "unknown study 'nope'; allowed: bandits, reward-landscape"),
    (["study", "reward-landscape", "--budget", "0"], "budget must be a positive int"),
    (["study", "bandits", "--seeds", "1", "1"], "seeds contain duplicates"),
    (["study", "mujoco", "--envs", "Hopper-v4"], "study 'mujoco' has no env 'Hopper-v4'; allowed: HalfCheetah-v5, "),
    (["study", "bandits", "--envs", "sharp", "sharp"], "envs contain duplicates"),
    (["study", "mujoco", "--arms", "td3"], "study 'mujoco' has no arm 'td3'; allowed: simpo-linear, simpo-square, "),
    (["study", "mujoco", "--arms", "sac", "sac"], "arms contain duplicates"),
    (["study", "bandits", "--arms", "exp"], "study 'bandits' is a bandit study: it has schemes, not arms"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simpo study: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def _tiny_defaults(algo, preset, env):
    config = default_config(algo, preset, env)
    agent = dataclasses.replace(config.agent, num_candidates=4, critic_hidden_dims=(32, 32),
                                temperature=dataclasses.replace(config.agent.temperature, kl_target=1.0),
                                policy=PolicyConfig(kind="flow", steps=2, hidden_dims=(32, 32), time_dim=8, cond_dims=(16,)))
    sac = dataclasses.replace(config.sac, actor_hidden_dims=(32, 32), critic_hidden_dims=(32, 32))
    return dataclasses.replace(config, agent=agent, sac=sac, batch_size=32, eval_episodes=2)


@pytest.fixture
def tiny_study(monkeypatch):
    study = Study(name="tiny", description="test", envs=("simpo:contextual-bandit",), preset="fast", budget=300,
                  arms=(Arm("simpo", "square"), Arm("sac")), seeds=(0, 1), eval_episodes=2)
    monkeypatch.setitem(STUDIES, "tiny", study)
    monkeypatch.setattr(specs, "default_config", _tiny_defaults)
    return study


def test_tiny_study_end_to_end_and_resume(tmp_path, tiny_study):
    results = run_study("tiny", tmp_path, progress=False, reps=20)
    root = tmp_path / "tiny"
    runs = {(c, k): root / c / f"seed{k}" for c in ("contextual-bandit/simpo-square", "contextual-bandit/sac") for k in (0, 1)}
    assert all((r / "metrics.csv").is_file() for r in runs.values())
    data = json.loads((results / "results.json").read_text())
    assert set(data["per_task"]["simpo:contextual-bandit"]) == {"simpo-square", "sac"}
    assert data["per_task"]["simpo:contextual-bandit"]["sac"]["steps"] == [300]
    assert all(np.isfinite(r["return"]) for r in data["runs"]) and len(data["runs"]) == 4
    for name in ("results.md", "aggregate.png", "curves_simpo_contextual_bandit.png"):
        assert (results / name).stat().st_size > 0
    assert "| simpo:contextual-bandit |" in (results / "results.md").read_text()

    # finished runs are skipped; a run cut after its first checkpoint resumes; a lost run restarts
    mtimes = {k: (r / "metrics.csv").stat().st_mtime_ns for k, r in runs.items()}
    cut, lost = runs["contextual-bandit/simpo-square", 1], runs["contextual-bandit/sac", 0]
    shutil.rmtree(cut / "checkpoints" / "300")
    rows = list(csv.reader((cut / "metrics.csv").open()))
    with (cut / "metrics.csv").open("w", newline="") as f:
        csv.writer(f).writerows([r for r in rows if r[0] == "env_step" or int(r[0]) <= 150])
    shutil.rmtree(lost)
    run_study("tiny", tmp_path, progress=False, reps=20)
    for k, r in runs.items():
        same = (r / "metrics.csv").stat().st_mtime_ns == mtimes[k]
        assert same == (r not in (cut, lost)), r
    assert (cut / "checkpoints" / "300").is_dir() and (lost / "metrics.csv").is_file()
    with pytest.raises(ValueError, match="another config \\(total_steps: 300 in the run, 200 wanted\\)"):  # no mixing
        run_study("tiny", tmp_path, budget=200, progress=False, reps=20)

    # more seeds into the same cells (trained together, as all are fresh) keep the seeds already there
    mtimes = {k: (r / "metrics.csv").stat().st_mtime_ns for k, r in runs.items()}
    results = run_study("tiny", tmp_path, seeds=(2, 3), progress=False, reps=20)
    assert all((r / "metrics.csv").stat().st_mtime_ns == mtimes[k] for k, r in runs.items())
    assert all((root / c / f"seed{k}" / "metrics.csv").is_file()
               for c in ("contextual-bandit/simpo-square", "contextual-bandit/sac") for k in (2, 3))


def _fake_run(path, env, algo, weighting, seed, final, transform="none"):
    path.mkdir(parents=True)
    config = {"env": env, "algo": algo, "seed": seed, "total_steps": 200, "reward_transform": transform,
              "agent": {"weighting": weighting, "floor": "-inf", "power_p": 2.0, "negative_mass": 1.0}}
    (path / "config.json").write_text(json.dumps(config))
    (path / "metrics.csv").write_text("env_step,eval_return_mean,eval_return_single_mean\n"
                                      f"100,0.0,0.0\n200,{final},{final / 2}\n")


def test_aggregate_known_scores(tmp_path):
    for seed, (a, b) in enumerate([(10, 50), (20, 60), (30, 70), (40, 80)]):
        _fake_run(tmp_path / "runs" / "x" / f"a{seed}", "Foo-v0", "simpo", "linear", seed, a)
        _fake_run(tmp_path / "runs" / "y" / f"b{seed}", "Foo-v0", "dpmd", "exp", seed, b)
        _fake_run(tmp_path / "runs" / "z" / f"c{seed}", "HalfCheetah-v5", "simpo", "linear", seed, 9500.0)
    out = aggregate(tmp_path / "runs", tmp_path / "res", reps=50)
    data = json.loads((out / "results.json").read_text())
    foo = data["per_task"]["Foo-v0"]
    assert foo["simpo-linear"]["mean"] == pytest.approx(25.0) and foo["dpmd-exp"]["single_mean"] == pytest.approx(32.5)
    assert foo["simpo-linear"]["iqm"]["point"] == pytest.approx(25.0)  # trim 25% each side of 10..40
    assert data["per_task"]["HalfCheetah-v5"]["simpo-linear"]["normalised"] == pytest.approx([1.0] * 4)  # ÷ SAC 9500
    # Foo-v0 is min-max normalised over its runs (10..80): simpo-linear -> 0, 1/7, 2/7, 3/7
    agg = data["aggregate"]["simpo-linear"]
    assert (agg["tasks"], agg["runs_per_task"]) == (2, 4)
    assert agg["mean"]["point"] == pytest.approx((1.5 / 7 + 1.0) / 2)
    assert agg["optimality_gap"]["point"] == pytest.approx((1 - 1.5 / 7) / 2)
    assert agg["iqm"]["low"] <= agg["iqm"]["point"] <= agg["iqm"]["high"]
    assert data["aggregate"]["dpmd-exp"]["iqm"]["point"] == pytest.approx(5.5 / 7)
    text = (out / "results.md").read_text()
    assert "min–max over these runs (10.0…80.0)" in text and "÷ SAC@1M (9500" in text
    assert main(["study", "aggregate", str(tmp_path / "runs"), "--out", str(tmp_path / "res2"), "--reps", "20"]) == 0
    assert (tmp_path / "res2" / "results.json").is_file()


def test_aggregate_flags_a_run_that_stopped_before_its_budget(tmp_path):
    for seed in range(2):
        _fake_run(tmp_path / "runs" / f"a{seed}", "Foo-v0", "simpo", "linear", seed, 10.0 + seed)
    metrics = tmp_path / "runs" / "a1" / "metrics.csv"  # seed 1 stopped after its first evaluation
    metrics.write_text(metrics.read_text().splitlines()[0] + "\n100,5.0,2.0\n")
    data = json.loads((aggregate(tmp_path / "runs", tmp_path / "res", reps=20) / "results.json").read_text())
    group = data["per_task"]["Foo-v0"]["simpo-linear"]
    assert group["stopped_early"] == [1] and group["steps"] == [100, 200] and group["returns"] == [10.0, 5.0]
    text = (tmp_path / "res" / "results.md").read_text()
    assert "| 100/200 (1 stopped early) |" in text
    assert "a1` stopped before its budget: scored at its last evaluation, env step 100 of 200" in text


def test_aggregate_keeps_runs_that_differ_in_a_setting_apart(tmp_path):
    """Sweep trials of one algo with other hyperparameters are different experiments, not seeds of one."""
    for seed in range(2):
        for lr, final in ((0.001, 10.0 + seed), (0.0003, 90.0 + seed)):
            path = tmp_path / "runs" / f"lr{lr}-s{seed}"
            _fake_run(path, "Foo-v0", "simpo", "exp", seed, final)
            config = json.loads((path / "config.json").read_text())
            config["agent"]["actor_lr"] = lr
            config["run_dir"] = str(path)  # bookkeeping: differs per run, splits nothing
            (path / "config.json").write_text(json.dumps(config))
    data = json.loads((aggregate(tmp_path / "runs", tmp_path / "res", reps=20) / "results.json").read_text())
    foo = data["per_task"]["Foo-v0"]
    assert sorted(foo) == ["simpo-exp[actor_lr=0.0003]", "simpo-exp[actor_lr=0.001]"]
    assert foo["simpo-exp[actor_lr=0.001]"]["returns"] == [10.0, 11.0]
    assert foo["simpo-exp[actor_lr=0.0003]"]["seeds"] == [0, 1]


def _set(path, **fields):
    config = json.loads((path / "config.json").read_text())
    agent = {k.removeprefix("agent_"): v for k, v in fields.items() if k.startswith("agent_")}
    config["agent"].update(agent)
    config.update({k: v for k, v in fields.items() if not k.startswith("agent_")})
    (path / "config.json").write_text(json.dumps(config))


def test_aggregate_names_one_configuration_per_label_in_every_task(tmp_path):
    """A setting that differs inside one task extends the label in every task, so the aggregate pools like with like
    (HalfCheetah's N = 8 runs with Hopper's N = 8, not with its N = 64); one that differs only between tasks splits
    nothing and is named in a note; a copied run is one seed, not two; checkpoint_interval is a setting (every
    checkpoint ends the training episode); seeds the aggregate leaves out are listed."""
    runs = tmp_path / "runs"
    for seed in range(2):
        for env, n in (("HalfCheetah-v5", 8), ("Hopper-v5", 8), ("Hopper-v5", 64), ("Foo-v0", 8), ("Bar-v0", 64)):
            _fake_run(path := runs / f"{env}-{n}-{seed}", env, "simpo" if "v5" in env else "dpmd", "exp", seed,
                      10.0 * seed + n)
            _set(path, agent_num_candidates=n)
    for seed in (2, 3):
        _fake_run(path := runs / f"Foo-v0-8-{seed}", "Foo-v0", "dpmd", "exp", seed, 1.0)
        _set(path, agent_num_candidates=8)
    shutil.copytree(runs / "Bar-v0-64-1", runs / "copy-of-Bar-v0-64-1")
    data = json.loads((aggregate(runs, tmp_path / "res", reps=20) / "results.json").read_text())
    per_task = data["per_task"]
    assert list(per_task["HalfCheetah-v5"]) == ["simpo-exp[num_candidates=8]"]
    assert sorted(per_task["Hopper-v5"]) == ["simpo-exp[num_candidates=64]", "simpo-exp[num_candidates=8]"]
    agg = data["aggregate"]
    assert (agg["simpo-exp[num_candidates=8]"]["tasks"], agg["simpo-exp[num_candidates=64]"]["tasks"]) == (2, 1)
    # dpmd: N = 8 on Foo, 64 on Bar, constant inside each: one label, pooled, and said so
    assert list(per_task["Foo-v0"]) == ["dpmd-exp"] and list(per_task["Bar-v0"]) == ["dpmd-exp"]
    assert data["cross_task_notes"] == ["dpmd-exp: agent.num_candidates 64 (Bar-v0), 8 (Foo-v0)"]
    assert per_task["Bar-v0"]["dpmd-exp"]["seeds"] == [0, 1]  # the copy is not a third seed
    assert data["repeats_left_out"] == [{"run_dir": str(runs / "copy-of-Bar-v0-64-1"), "repeats": str(runs / "Bar-v0-64-1")}]
    assert agg["dpmd-exp"]["runs_per_task"] == 2 and agg["dpmd-exp"]["seeds_left_out"] == {"Foo-v0": [2, 3]}
    text = (tmp_path / "res" / "results.md").read_text()
    assert "copy-of-Bar-v0-64-1` left out" in text and "dpmd-exp: seeds left out of the aggregate" in text
    assert "pooled across tasks although it differs between them: dpmd-exp: agent.num_candidates" in text
    _set(runs / "Foo-v0-8-3", checkpoint_interval=5000)
    per_task = json.loads((aggregate(runs, tmp_path / "res2", reps=20) / "results.json").read_text())["per_task"]
    assert sorted(per_task["Foo-v0"]) == ["dpmd-exp[checkpoint_interval=100000]", "dpmd-exp[checkpoint_interval=5000]"]


def test_aggregate_counts_a_field_an_older_run_lacks_as_its_default(tmp_path):
    """Runs written before a config field existed pool with runs at that field's default, not apart from them."""
    def run(seed, **agent):
        path = tmp_path / "runs" / f"s{seed}"
        _fake_run(path, "Foo-v0", "simpo", "exp", seed, 10.0 + seed)
        config = json.loads((path / "config.json").read_text())
        config["agent"].update(agent)
        (path / "config.json").write_text(json.dumps(config))

    for seed in (0, 1):
        run(seed)  # no target_candidates: written before the field existed
    for seed in (2, 3):
        run(seed, target_candidates=1)  # the default
    per_task = lambda: json.loads((aggregate(tmp_path / "runs", tmp_path / "res", reps=20)  # noqa: E731
                                   / "results.json").read_text())["per_task"]["Foo-v0"]
    assert list(per_task()) == ["simpo-exp"] and per_task()["simpo-exp"]["seeds"] == [0, 1, 2, 3]
    run(4, target_candidates=4)  # a different experiment: kept apart, and the older runs are shown at the default
    shutil.rmtree(tmp_path / "res")
    got = per_task()
    assert got["simpo-exp[target_candidates=1]"]["seeds"] == [0, 1, 2, 3]
    assert got["simpo-exp[target_candidates=4]"]["seeds"] == [4]


def test_run_state(tmp_path):
    from simpo.logger import to_jsonable
    from simpo.study.runner import config_difference, run_state
    from simpo.train import run_config_dict

    config = cells("reward-landscape", budget=100, seeds=[0], preset="fast")[0].config
    run = tmp_path / "run"
    assert run_state(run, config) == "fresh"
    saved = {**to_jsonable(run_config_dict(config)), "a_field_added_later": 1, "progress": False}
    run.mkdir()
    (run / "config.json").write_text(json.dumps(saved))
    assert run_state(run, config) == "fresh"  # same config, nothing evaluated or checkpointed yet
    (run / "metrics.csv").write_text("env_step,eval_return_mean\n50,1.0\n100,2.0\n")
    assert run_state(run, config) == "done"
    (run / "config.json").write_text(json.dumps({**saved, "total_steps": 200}))
    assert run_state(run, config) == "conflict"
    # a run made before a field existed behaved as its default: it matches where the config keeps that default ...
    older = {**saved, "agent": {k: v for k, v in saved["agent"].items() if k != "target_candidates"}}
    (run / "config.json").write_text(json.dumps(older))
    assert config.agent.target_candidates == 1 == SiMPOConfig().target_candidates and run_state(run, config) == "done"
    assert config_difference(run, config) is None
    # ... and not where a preset now sets it to something else; the difference is named
    changed = dataclasses.replace(config, agent=dataclasses.replace(config.agent, target_candidates=2))
    assert run_state(run, changed) == "conflict"
    assert config_difference(run, changed) == "agent.target_candidates: absent from the run's config (so it ran as 1), 2 wanted"
    assert config_difference(run, dataclasses.replace(config, total_steps=300)) == "total_steps: 100 in the run, 300 wanted"


def test_bandit_study_on_a_subset_of_landscapes(tmp_path, capsys):
    assert main(["study", "bandits", "--envs", "sharp", "--budget", "3", "--seeds", "0", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    root = tmp_path / "bandits"
    assert sorted(p.name for p in root.iterdir()) == ["results.json", "results.md", "sharp"]
    table = json.loads((root / "results.json").read_text())["final_regret_mean"]
    assert list(table) == ["sharp"] and len(table["sharp"]) == len(STUDIES["bandits"].schemes)
    assert main(["study", "bandits", "--envs", "broad", "--budget", "3", "--seeds", "0", "--out", str(tmp_path),
                 "--no-progress"]) == 0  # the report keeps the landscape run before
    assert list(json.loads((root / "results.json").read_text())["final_regret_mean"]) == ["broad", "sharp"]
    assert "after 3 epochs, mean ± std over seeds [0]" in (root / "results.md").read_text()  # one budget: said once
    assert main(["study", "bandits", "--envs", "broad", "--budget", "2", "--seeds", "1", "--out", str(tmp_path),
                 "--no-progress", "--overwrite"]) == 0
    text = (root / "results.md").read_text()  # broad rerun with another budget: said per landscape
    assert "they differ by landscape" in text and "| epochs; seeds | 2; [1] | 3; [0] |" in text


def test_aggregate_keeps_the_copy_of_a_seed_that_got_furthest(tmp_path):
    """Two copies of one seed: the finished one is kept, whichever path sorts first; the dropped one is named."""
    runs = tmp_path / "runs"
    _fake_run(runs / "A" / "seed0", "Foo-v0", "simpo", "linear", 0, 1.0)
    _fake_run(runs / "B" / "seed0", "Foo-v0", "simpo", "linear", 0, 9.0)
    (runs / "A" / "seed0" / "metrics.csv").write_text("env_step,eval_return_mean,eval_return_single_mean\n100,1.0,0.5\n")
    data = json.loads((aggregate(runs, tmp_path / "res", reps=20) / "results.json").read_text())
    assert [(r["run_dir"], r["steps"]) for r in data["runs"]] == [(str(runs / "B" / "seed0"), 200)]
    assert data["repeats_left_out"] == [{"run_dir": str(runs / "A" / "seed0"), "repeats": str(runs / "B" / "seed0")}]
    assert "A/seed0` left out: the same task, label and seed as" in (tmp_path / "res" / "results.md").read_text()


def test_aggregate_reports_runs_it_cannot_score_and_scores_runs_without_a_single_sample_column(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(3):
        _fake_run(runs / f"s{seed}", "Foo-v0", "simpo", "linear", seed, 10.0 + seed)
    old = runs / "s2" / "metrics.csv"  # an older run: no single-sample column
    old.write_text("env_step,eval_return_mean\n100,0.0\n200,12.0\n")
    _fake_run(runs / "s3", "Foo-v0", "simpo", "linear", 3, 1.0)
    (runs / "s3" / "metrics.csv").write_text("env_step,train_sps\n100,5.0\n")  # no evaluation column at all
    _fake_run(runs / "s4", "Foo-v0", "simpo", "linear", 4, 1.0)
    (runs / "s4" / "metrics.csv").write_text("env_step,eval_return_mean,eval_return_single_mean\n")  # none yet
    data = json.loads((aggregate(runs, tmp_path / "res", reps=20) / "results.json").read_text())
    group = data["per_task"]["Foo-v0"]["simpo-linear"]
    assert group["seeds"] == [0, 1, 2] and group["returns"] == [10.0, 11.0, 12.0]
    assert group["single_returns"] == [5.0, 5.5, None] and group["single_mean"] == pytest.approx(5.25)
    assert [(u["run_dir"], u["why"]) for u in data["unscored"]] == [
        (str(runs / "s3"), "metrics.csv has no column 'eval_return_mean'"),
        (str(runs / "s4"), "metrics.csv has no rows with numeric 'env_step' and 'eval_return_mean'")]
    text = (tmp_path / "res" / "results.md").read_text()
    assert "| 3 | 200 | 11.0 ± 1.0 | 5.2 (2 of 3 runs) |" in text
    assert "s3` not scored, so in no table: metrics.csv has no column 'eval_return_mean'" in text
    assert "s2` has no single-sample return at its last evaluation" in text


def test_aggregate_names_the_tasks_a_label_lacks_and_how_few_runs_its_cis_have(tmp_path):
    """A label without the hard task aggregates over the easy one only: said, so the rows are not read as like for
    like; the CIs are named percentile-bootstrap ones and, from 3 runs, said to cover less than 95%."""
    for seed in range(3):
        for env in ("Foo-v0", "Bar-v0"):
            _fake_run(tmp_path / "runs" / f"sac-{env}-{seed}", env, "sac", "exp", seed, 10.0 + seed)
        _fake_run(tmp_path / "runs" / f"dpmd-{seed}", "Foo-v0", "dpmd", "exp", seed, 20.0 + seed)
    data = json.loads((aggregate(tmp_path / "runs", tmp_path / "res", reps=20) / "results.json").read_text())
    assert data["aggregate"]["dpmd-exp"]["tasks_missing"] == ["Bar-v0"] and data["aggregate"]["sac"]["tasks_missing"] == []
    text = (tmp_path / "res" / "results.md").read_text()
    assert "- dpmd-exp lacks Bar-v0: its aggregate is over its other 1 task only, not like for like" in text
    assert "| IQM [95% percentile-bootstrap CI] |" in text and "| mean [95% percentile-bootstrap CI] |" in text
    assert "some come from only 3 runs: with fewer than 5 runs such a CI covers less than 95% (with 3 runs a " \
           "per-task CI is the min–max of the seeds)" in text


def test_labels_name_only_the_parameter_the_scheme_uses(tmp_path):
    """A floor means something to signed_linear only: an exp run given one is labelled, and pooled, as plain exp."""
    assert specs.run_label("simpo", "exp", {"floor": -0.02}) == "simpo-exp"
    assert specs.run_label("simpo", "power", {"floor": -0.02, "power_p": 3.0}) == "simpo-power:p=3"
    assert specs.run_label("simpo", "signed_linear", {"floor": -0.02, "negative_mass": 2.0}) == \
        "simpo-signed_linear:floor=-0.02"
    assert specs.run_label("simpo", "wd1", {"floor": -0.02, "negative_mass": 2.0}) == "simpo-wd1:negative_mass=2"
    assert [a.label for a in STUDIES["negative-weights"].arms] == [  # the labels docs/results.md shows
        "simpo-linear", "simpo-signed_linear:floor=-0.02", "simpo-exp", "simpo-wd1"]
    for seed, floor in ((0, "-inf"), (1, -0.02)):
        _fake_run(path := tmp_path / "runs" / f"s{seed}", "Foo-v0", "simpo", "exp", seed, 10.0)
        _set(path, agent_floor=floor)
    data = json.loads((aggregate(tmp_path / "runs", tmp_path / "res", reps=20) / "results.json").read_text())
    assert list(data["per_task"]["Foo-v0"]) == ["simpo-exp"] and data["per_task"]["Foo-v0"]["simpo-exp"]["seeds"] == [0, 1]


def test_a_diverged_run_is_marked_and_the_study_goes_on(tmp_path, tiny_study, monkeypatch, capsys):
    """NonFiniteError in one seed: that seed is marked diverged.txt (and not resumed), the others train on, the report
    lists it. Seeds trained together stop together: each is trained again alone, so only the diverging one is marked."""
    import simpo.study.runner as runner
    from simpo.guard import NonFiniteError

    calls = []

    def fake_train(config, resume=False):
        seeds = config.seeds or (config.seed,)
        calls.append((config.algo, seeds, resume))
        dirs = [config.run_dir / f"seed{k}" for k in seeds] if config.seeds else [config.run_dir]
        for k, d in zip(seeds, dirs):
            if not resume:
                _fake_run(d, "simpo:contextual-bandit", config.algo, "square", k, 5.0)
                (d / "config.json").write_text(json.dumps(to_jsonable(run_config_dict(
                    dataclasses.replace(config, seed=k, seeds=(), run_dir=d)))))
            (d / "checkpoints" / "150").mkdir(parents=True, exist_ok=True)
        if config.algo == "simpo" and 1 in seeds:
            with open(dirs[seeds.index(1)] / "metrics.csv", "w") as f:
                f.write("env_step,eval_return_mean,eval_return_single_mean\n100,1.0,0.5\n")
            raise NonFiniteError("critic_loss was NaN at env step 120 (seed 1); stopped. Last good checkpoint: step 100")
        for d in dirs:
            (d / "metrics.csv").write_text("env_step,eval_return_mean,eval_return_single_mean\n300,7.0,3.0\n")

    from simpo.logger import to_jsonable
    from simpo.train import run_config_dict

    monkeypatch.setattr(runner, "train", fake_train)
    results = run_study("tiny", tmp_path, progress=False, reps=20)
    assert calls == [("simpo", (0, 1), False), ("simpo", (0,), True), ("simpo", (1,), True), ("sac", (0, 1), False)]
    cell = tmp_path / "tiny" / "contextual-bandit" / "simpo-square"
    assert (cell / "seed1" / "diverged.txt").read_text().startswith("critic_loss was NaN at env step 120 (seed 1)")
    assert not (cell / "seed0" / "diverged.txt").exists()
    err = capsys.readouterr().err
    assert "seed1: diverged (critic_loss was NaN" in err and "1 run diverged: contextual-bandit/simpo-square/seed1" in err
    text = (results / "results.md").read_text()
    assert "seed1` diverged (critic_loss was NaN at env step 120 (seed 1); stopped." in text
    assert "the study does not resume it" in text and "seed1` stopped before its budget" not in text
    config = cells("tiny", seeds=[1])[0].config
    assert runner.run_state(cell / "seed1", dataclasses.replace(config, seed=1)) == "diverged"
    calls.clear()
    run_study("tiny", tmp_path, progress=False, reps=20)  # nothing left to run: the diverged seed is not resumed
    assert calls == []
