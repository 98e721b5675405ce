"""The fully on-device loop on MuJoCo Playground (simpo.ondevice), tiny and on CPU.

MJX compiles slowly on a CPU: each training test spends most of its time compiling one chunk and two evaluations.
They train on CartpoleBalance, whose model compiles in half the time of CheetahRun's (32 s against 69 s for the
SiMPO test, 2-core Xeon, 2026-12-04); the loop is the same for every Playground env.
"""

import csv
import dataclasses
import importlib.util
import math
import sys

import numpy as np
import pytest

from simpo.cli import main
from simpo.ondevice import train_on_device
from simpo.playground import OnDeviceConfig
from simpo.policies import PolicyConfig
from simpo.train import default_config

needs_playground = pytest.mark.skipif(importlib.util.find_spec("mujoco_playground") is None,
                                      reason='needs the extra: pip install -c constraints.txt -e ".[playground]"')

TINY_POLICY = PolicyConfig(kind="flow", steps=2, hidden_dims=(32, 32), time_dim=8, cond_dims=(16,))
EPISODE = 30  # steps per training and evaluation episode
ENV = "playground:CartpoleBalance"  # never terminates, as the truncation checks below expect


def tiny(algo, run_dir, **loop):
    config = default_config(algo, "fast", ENV)
    agent = dataclasses.replace(config.agent, policy=TINY_POLICY, num_candidates=4, critic_hidden_dims=(32, 32),
                                temperature=dataclasses.replace(config.agent.temperature, kl_target=1.0))  # < log 4
    sac = dataclasses.replace(config.sac, actor_hidden_dims=(32, 32), critic_hidden_dims=(32, 32))
    settings = dict(total_steps=200, warmup_steps=60, batch_size=32, eval_interval=100, eval_episodes=2,
                    max_episode_steps=EPISODE, checkpoint_interval=100, run_dir=run_dir, progress=False,
                    ondevice=OnDeviceConfig(num_envs=2))
    settings.update(loop)
    return dataclasses.replace(config, agent=agent, sac=sac, **settings)


@needs_playground
@pytest.mark.parametrize("algo", ["simpo", "sac"])
def test_on_device_training_writes_a_normal_run(tmp_path, capsys, algo):
    result = train_on_device(tiny(algo, tmp_path / "run"))
    with open(result.run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_step"]) for r in rows] == [100, 200]
    for row in rows:
        for column in ("eval_return_mean", "eval_return_single_mean", "critic_loss"):
            assert math.isfinite(float(row[column])), (column, row)
    assert sorted(p.name for p in (result.run_dir / "checkpoints").iterdir()) == ["100", "200"]
    # every chunk (2 of 50 iterations) is one call of one compiled scan
    assert result.chunk_traces == 1

    # the buffer holds 100 iterations x 2 envs, in order; episodes are truncated after EPISODE steps (SPEC §9):
    # nothing is stored as terminated, next_obs is the true final observation, and the env restarts from a reset
    buf = result.buffer
    assert int(buf.size) == 200 and float(np.asarray(buf.terminated).sum()) == 0.0
    obs, next_obs = np.asarray(buf.obs).reshape(100, 2, -1), np.asarray(buf.next_obs).reshape(100, 2, -1)
    continues = np.all(np.isclose(next_obs[:-1], obs[1:]), axis=-1)  # (99, 2): episode goes on after iteration i
    ends = (np.arange(1, 100) % EPISODE == 0)[:, None]
    assert np.array_equal(continues, np.broadcast_to(~ends, continues.shape))

    for verb, doing in (("train --resume", "resuming"), ("eval --run-dir", "evaluating")):  # not yet: one line
        capsys.readouterr()
        assert main([*verb.split(), str(result.run_dir)]) == 2
        assert f"{doing} a playground run is not supported yet" in capsys.readouterr().err


@needs_playground
def test_bad_env_name_is_one_line_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "--env", "playground:CheetaRun", "--run-dir", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "unknown Playground env 'playground:CheetaRun'; did you mean: playground:CheetahRun" in err
    assert not run_dir.exists()


def test_on_device_reward_transforms_match_the_host_ones():
    """The interpolated jnp transforms (simpo.playground) against simpo.transforms, near 0 too (pow0.5's steep end)."""
    from simpo.playground import jax_reward_transform
    from simpo.transforms import REWARD_TRANSFORMS, get_reward_transform

    r = np.concatenate([np.random.default_rng(0).uniform(-0.2, 1.2, 5000), np.geomspace(1e-9, 1e-2, 500)])
    for name in REWARD_TRANSFORMS:
        host = get_reward_transform(name)(r)
        device = np.asarray(jax_reward_transform(name)(r.astype(np.float32)), np.float64)
        assert np.max(np.abs(device - host) / np.maximum(1.0, np.abs(host))) < 1e-6, name


def test_num_envs_must_divide_the_intervals(tmp_path):
    with pytest.raises(ValueError, match=r"eval_interval \(100\) must be a multiple of ondevice.num_envs \(3\)"):
        train_on_device(tiny("sac", tmp_path / "run", total_steps=300, ondevice=OnDeviceConfig(num_envs=3)))
    assert not (tmp_path / "run").exists()


def test_missing_playground_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mujoco_playground", None)  # import fails as if not installed
    code = main(["train", "--env", "playground:CheetahRun", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install -c constraints.txt -e ".[playground]"' in err
    assert not (tmp_path / "run").exists()
