"""The fully on-device loop on MuJoCo Playground (simpo.ondevice), tiny and on CPU.

MJX compiles slowly on a CPU: each training test spends most of its time compiling one chunk and two evaluations.
They train on CartpoleBalance, whose model compiles in half the time of CheetahRun's (32 s against 69 s for the
SiMPO test, 2-core Xeon, 2026-12-04); the loop is the same for every Playground env.

The loop's bookkeeping (update count, warm-up rounding, buffer order after wrapping, per-env resets, the reward
transform, the NaN guards, interval checks) is tested without MJX, on `CountingEnv`, a few-line mock of the
Playground env interface whose observations count the steps: a few seconds a test, SAC only.
"""

import csv
import dataclasses
import importlib.util
import math
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simpo import ondevice
from simpo.cli import main
from simpo.guard import NonFiniteError
from simpo.ondevice import build_loop, train_on_device
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
    with pytest.raises(ValueError, match=r"eval_interval \(100\) must be a multiple of ondevice.num_envs \(3\) or at "
                                         r"least total_steps \(300\); change --eval-interval or --ondevice.num-envs"):
        train_on_device(tiny("sac", tmp_path / "run", total_steps=300, ondevice=OnDeviceConfig(num_envs=3)))
    with pytest.raises(ValueError, match=r"total_steps \(200\) must be a multiple of ondevice.num_envs \(3\); "
                                         r"change --total-steps or --ondevice.num-envs"):
        train_on_device(tiny("sac", tmp_path / "run", eval_interval=300, checkpoint_interval=300,
                             ondevice=OnDeviceConfig(num_envs=3)))
    assert not (tmp_path / "run").exists()


def test_missing_playground_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mujoco_playground", None)  # import fails as if not installed
    code = main(["train", "--env", "playground:CheetahRun", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install -c constraints.txt -e ".[playground]"' in err
    assert not (tmp_path / "run").exists()


# ---- the loop's bookkeeping on a mock env (no MJX) ----

class MockState(NamedTuple):
    obs: jax.Array  # (2,)
    reward: jax.Array
    done: jax.Array  # float32, as Playground's
    t: jax.Array  # steps since the reset


class CountingEnv:
    """The Playground env interface the loop uses, in a few lines: the reset observation is (an integer drawn from
    the key, 0) and each step adds 1 to both, so the second entry counts the steps since the reset; the reward is
    `reward`, the episode terminates after `terminate_at` steps (0: never), the observation is NaN at step `nan_at`
    after a reset (0: never)."""

    observation_size, action_size = 2, 1

    def __init__(self, reward=0.25, terminate_at=0, nan_at=0):
        self.reward, self.terminate_at, self.nan_at = reward, terminate_at, nan_at

    def reset(self, key):
        obs = jnp.stack([jax.random.randint(key, (), 0, 1_000_000).astype(jnp.float32), jnp.zeros(())])
        return MockState(obs, jnp.zeros(()), jnp.zeros(()), jnp.zeros((), jnp.int32))

    def step(self, state, action):
        t = state.t + 1
        obs = jnp.where(t == self.nan_at, jnp.nan, state.obs + 1.0)
        done = jnp.asarray((t == self.terminate_at) & (self.terminate_at > 0), jnp.float32)
        return MockState(obs, jnp.full((), self.reward, jnp.float32), done, t)


def mock(run_dir, **loop):
    """`tiny` SAC (SiMPO's loop is the same), with the intervals at the end unless given."""
    total = loop.get("total_steps", 40)
    return tiny("sac", run_dir, **{"eval_interval": total, "checkpoint_interval": total, **loop})


def run_chunk(config, env):
    """The initial carry's observations and the carry after one chunk of the whole run (no evaluation)."""
    loop = build_loop(config, env)
    first_obs = np.array(loop.carry.envs.state.obs)  # a copy: `chunk` donates the carry
    carry = loop.chunk(loop.carry, jnp.asarray(0, jnp.int32), config.total_steps // config.ondevice.num_envs)
    return first_obs, carry


@pytest.mark.parametrize("e, warmup, batch, per_step, per_iteration, expected", [
    (1, 10, 8, 2, 0, (24 - max(10, 8 - 1)) * 2),  # E = 1: the host loop's count, at UTD 2
    (4, 10, 8, 1, 0, (24 - 12) * 1),  # warm-up 10 ends at the next multiple of E = 4: 12
    (4, 0, 10, 1, 3, (6 - 2) * 3),  # a batch of 10 is there after iteration 2 (12 rows); 3 updates an iteration
])
def test_update_count_follows_the_warmup_rounding(tmp_path, e, warmup, batch, per_step, per_iteration, expected):
    config = mock(tmp_path / "run", total_steps=24, warmup_steps=warmup, batch_size=batch, updates_per_step=per_step,
                  ondevice=OnDeviceConfig(num_envs=e, updates_per_iteration=per_iteration))
    _, carry = run_chunk(config, CountingEnv())
    assert int(carry.updates) == int(carry.state.step) == expected
    first = 24 // e - expected // (per_iteration or e * per_step)  # the first iteration that updates
    assert config.first_update_step == (first + 1) * e - 1  # what `simpo train`'s no-update warning reads


def test_buffer_stays_in_order_after_wrapping_and_envs_reset_apart(tmp_path):
    e, total, capacity = 4, 52, 10  # 52 rows into 10: the last iteration's 4 rows wrap, to 8, 9, 0, 1
    config = mock(tmp_path / "run", total_steps=total, warmup_steps=total, batch_size=8, buffer_size=capacity,
                  ondevice=OnDeviceConfig(num_envs=e))
    first_obs, carry = run_chunk(config, CountingEnv(terminate_at=3))
    assert len({tuple(o) for o in first_obs}) == e  # each env reset with its own key
    buf = carry.buffer
    assert int(buf.size) == capacity and int(buf.ptr) == total % capacity
    obs, next_obs, terminated = (np.roll(np.asarray(x), -int(buf.ptr), axis=0)  # oldest row first
                                 for x in (buf.obs, buf.next_obs, buf.terminated))
    k = np.arange(total - capacity, total)  # the rows kept: env k % E at iteration k // E
    assert np.array_equal(next_obs, obs + 1)
    assert np.array_equal(obs[:, 1], (k // e) % 3)  # episodes terminate every 3 iterations: steps since the reset
    ended = (k // e + 1) % 3 == 0
    assert np.array_equal(terminated, ended.astype(np.float32))
    same_env_next = np.all(obs[e:] == next_obs[:-e], axis=-1)  # row j + E is env k % E one iteration later
    assert np.array_equal(same_env_next, ~ended[:-e])
    fresh = obs[k // e == 12]  # iteration 11 ended: 12's rows start new episodes, each env reset with its own key
    assert len(fresh) == e and len({tuple(o) for o in fresh}) == e


def test_buffer_holds_transformed_rewards_and_evaluation_raw_returns(tmp_path):
    config = mock(tmp_path / "run", total_steps=8, warmup_steps=8, batch_size=4, reward_transform="pow0.5",
                  eval_episodes=2, max_episode_steps=6)
    result = train_on_device(config, env=CountingEnv(reward=0.25, terminate_at=4))
    assert np.allclose(np.asarray(result.buffer.reward), 0.25 ** 0.5, atol=1e-6)
    with open(result.run_dir / "metrics.csv") as f:
        (row,) = csv.DictReader(f)
    # 4 steps of the env's own 0.25 (the episode terminates at 4 of 6); transformed it would be 2.0
    assert float(row["eval_return_mean"]) == float(row["eval_return_single_mean"]) == 1.0


def test_intervals_past_the_end_need_not_be_multiples_of_num_envs(tmp_path):
    config = tiny("sac", tmp_path / "run", total_steps=9, warmup_steps=9, batch_size=4, eval_episodes=1,
                  max_episode_steps=5, ondevice=OnDeviceConfig(num_envs=3))
    assert config.eval_interval % 3 and config.checkpoint_interval % 3  # the defaults: 10,000 and 100,000
    result = train_on_device(config, env=CountingEnv())
    with open(result.run_dir / "metrics.csv") as f:
        assert [int(r["env_step"]) for r in csv.DictReader(f)] == [9]  # evaluated at the end only
    assert [p.name for p in (result.run_dir / "checkpoints").iterdir()] == ["9"]


def test_cli_warns_when_the_rounded_warmup_leaves_no_update(tmp_path, monkeypatch, capsys):
    """Warm-up 7 with E = 3 ends at 9 = total_steps: no update, though the host rule's first update (step 7) is
    inside the run."""
    real, runs = ondevice.train_on_device, []

    def on_mock(config):
        runs.append(real(config, CountingEnv()))
        return runs[-1]

    monkeypatch.setattr(ondevice, "train_on_device", on_mock)  # what `simpo train` calls for playground:NAME
    code = main(["train", "--env", ENV, "--algo", "sac", "--run-dir", str(tmp_path / "run"), "--no-progress",
                 "--total-steps", "9", "--warmup-steps", "7", "--batch-size", "4", "--ondevice.num-envs", "3",
                 "--eval-interval", "9", "--checkpoint-interval", "9", "--eval-episodes", "1",
                 "--max-episode-steps", "5", "--sac.actor-hidden-dims", "32", "32", "--sac.critic-hidden-dims", "32",
                 "32"])
    assert code == 0 and runs[0].updates == 0
    assert ("simpo train: warning: no update ran: updates start after warmup_steps=7 and a first batch of "
            "batch_size=4, but total_steps=9; the evaluations are of the initial policy") in capsys.readouterr().err


class PoisonedUpdates:
    """The agent, except that each update leaves NaN weights and metrics, as an update that overflowed would."""

    def __init__(self, agent):
        self.agent = agent

    def __getattr__(self, name):
        return getattr(self.agent, name)

    def update(self, state, batch, key):
        nan = lambda x: x * jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else x  # noqa: E731
        return jax.tree.map(nan, self.agent.update(state, batch, key))


def test_guard_names_the_update_that_went_non_finite_before_the_action(tmp_path, monkeypatch):
    """The first update runs after iteration 3 (env step 16); the next iteration's actions are NaN (env steps 17-20).
    The update is named, as the host loop names it before the action it made non-finite."""
    make_agent = ondevice.make_agent
    monkeypatch.setattr(ondevice, "make_agent", lambda *args: PoisonedUpdates(make_agent(*args)))
    config = mock(tmp_path / "run", total_steps=40, warmup_steps=10, batch_size=8, ondevice=OnDeviceConfig(num_envs=4))
    with pytest.raises(NonFiniteError, match=r"^non-finite actor_loss, [a-z_, ]+ in the update at env step 16;"):
        train_on_device(config, env=CountingEnv())


def test_guard_places_an_env_failure_in_its_iteration(tmp_path):
    """A NaN observation at every env's second step: iteration 1, env steps 5-8 with E = 4. Its updates (the first:
    the buffer holds a batch of 8 then) sample the NaN rows and go NaN too: the env is named, it came first."""
    config = mock(tmp_path / "run", total_steps=16, warmup_steps=0, batch_size=8, ondevice=OnDeviceConfig(num_envs=4))
    with pytest.raises(NonFiniteError, match=r"^non-finite observation from the env loop in env steps 5-8 \(one step "
                                             r"of the 4 envs\); stopped"):
        train_on_device(config, env=CountingEnv(nan_at=2))
