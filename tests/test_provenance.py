"""Each run records the code and machine it was trained on (simpo.provenance), once per start or resume."""

import dataclasses
import importlib.util
import shutil
import subprocess

import jax
import pytest

from simpo import provenance
from simpo.train import default_config, train


def test_a_run_records_its_code_and_a_resume_appends(tmp_path):
    config = default_config("sac", "fast", "Pendulum-v1")
    config = dataclasses.replace(
        config, total_steps=40, warmup_steps=20, batch_size=16, eval_interval=40, eval_episodes=1,
        checkpoint_interval=20, run_dir=tmp_path / "run", progress=False,
        sac=dataclasses.replace(config.sac, actor_hidden_dims=(32,), critic_hidden_dims=(32,)))
    train(config)
    (entry,) = provenance.read(tmp_path / "run")
    assert entry["env_step"] == 0 and entry["jax"] == jax.__version__ and entry["cores"] >= 1
    if shutil.which("git") and provenance.commit() is not None:  # a git checkout (CI's fresh clone is one)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=provenance._PACKAGE_DIR).stdout.strip()
        assert entry["commit"].split("+")[0] == head
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "40")  # as if killed after the checkpoint at 20
    train(config, resume=True)  # resumed at 20: the start is recorded
    first, resumed = provenance.read(tmp_path / "run")
    assert first == entry and resumed["env_step"] == 20
    train(config, resume=True)  # a finished run: nothing to train, and the run is left as it was
    assert provenance.read(tmp_path / "run") == [first, resumed]


def test_outside_a_checkout_the_commit_is_unknown_and_a_missing_file_reads_empty(tmp_path):
    assert provenance.commit(tmp_path) is None
    if shutil.which("git"):  # an installed copy inside another repository (e.g. a venv in a project) is no commit
        project = tmp_path / "project"
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        (project / "README").write_text("a project")
        subprocess.run(["git", "-C", str(project), "add", "README"], check=True)
        subprocess.run(["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
                       check=True)
        copy = tmp_path / "project" / "venv" / "simpo" / "provenance.py"
        copy.parent.mkdir(parents=True)
        shutil.copy(provenance.__file__, copy)
        spec = importlib.util.spec_from_file_location("provenance_copy", copy)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.commit() is None
        head = subprocess.run(["git", "-C", str(project), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        shutil.rmtree(project / "venv")
        (project / "pkg").mkdir()
        assert provenance.commit(project / "pkg") == head
        (project / "pkg" / "new_module.py").write_text("x = 1")  # untracked, not ignored: the code differs
        assert provenance.commit(project / "pkg") == head + "+uncommitted changes"
    assert provenance.read(tmp_path) == []
    (tmp_path / provenance.FILE).write_text("{not json")
    assert provenance.read(tmp_path) == []


@pytest.mark.parametrize("commits, expected", [(["abc1234", "abc1234"], "abc1234"),
                                               (["abc1234", "def5678"], "abc1234 → def5678")])
def test_the_aggregate_names_the_code_of_its_runs(tmp_path, commits, expected):
    from test_study import _fake_run

    from simpo.study import aggregate

    for seed in range(3):
        _fake_run(tmp_path / "runs" / f"s{seed}", "Foo-v0", "simpo", "exp", seed, 10.0 + seed)
    for seed in range(2):  # seed 2 is a run from before provenance.json
        for step, commit in enumerate(commits):
            provenance.record(tmp_path / "runs" / f"s{seed}", 100 * step, {"commit": commit})
    text = (aggregate(tmp_path / "runs", tmp_path / "res", reps=20) / "results.md").read_text()
    assert f"`{expected}` 2 runs; not recorded 1 run." in text
