"""Environments and reward transforms: spaces, episode ends, seeding, validation, transforms, the test bandit."""

import dm_env
import gymnasium as gym
import numpy as np
import pytest

from simpo.envs import ContextualBanditEnv, DMControlEnv, env_spec, make_env, step_transition
from simpo.transforms import REWARD_TRANSFORMS, get_reward_transform


def rollout(env, actions, seed=None):
    """Observations and rewards of a fixed action sequence (stops at the episode end)."""
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        observations.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return np.array(observations), np.array(rewards)


@pytest.mark.parametrize("env_id, dims", [("HalfCheetah-v5", (17, 6)), ("dmc:cheetah-run", (17, 6)),
                                          ("Pendulum-v1", (3, 1)), ("dmc:ball_in_cup-catch", (8, 2))])
def test_spaces_and_stepping(env_id, dims):
    env = make_env(env_id, seed=0)
    assert env_spec(env) == dims
    assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.dtype == np.float32
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    assert env.observation_space.dtype == np.float32 and env.observation_space.shape == (dims[0],)
    obs, _ = env.reset()
    assert obs.dtype == np.float32 and obs.shape == (dims[0],)
    for _ in range(50):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.dtype == np.float32 and obs.shape == (dims[0],) and np.all(np.isfinite(obs))
        assert isinstance(reward, float) and not terminated and not truncated


def test_no_mujoco_log_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_env("HalfCheetah-v5", 0)
    make_env("dmc:cheetah-run", 0)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_dmc_time_limit_truncates():
    # cheetah's control step is 0.01 s, so a 0.2 s time limit ends the episode after 20 steps
    env = make_env("dmc:cheetah-run", seed=0, env_kwargs={"time_limit": 0.2})
    env.reset()
    for t in range(1, 21):
        _, _, terminated, truncated, info = env.step(np.zeros(6))
        assert not terminated
        assert truncated == (t == 20)
    assert info["episode"]["length"] == 20
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(6))
    env = make_env("dmc:cheetah-run", seed=0, max_episode_steps=5)
    env.reset()
    ends = [env.step(np.zeros(6))[2:4] for _ in range(5)]
    assert ends == [(False, False)] * 4 + [(False, True)]


def test_dmc_zero_discount_terminates(monkeypatch):
    env = DMControlEnv("cheetah", "run", seed=0)
    obs, _ = env.reset()
    last_obs = env._env.step(np.zeros(6)).observation
    monkeypatch.setattr(env._env, "step", lambda a: dm_env.termination(reward=0.5, observation=last_obs))
    obs, reward, terminated, truncated, _ = env.step(np.zeros(6))
    assert (terminated, truncated, reward) == (True, False, 0.5)


def test_hopper_terminates_and_step_transition():
    env = make_env("Hopper-v5", seed=0)
    obs, _ = env.reset()
    action = np.array([1.0, -1.0, 1.0], np.float32)  # falls over quickly
    for _ in range(1000):
        transition, next_obs, episode = step_transition(env, obs, action)
        if episode is not None:
            break
        np.testing.assert_array_equal(transition.next_obs, next_obs)
        obs = next_obs
    assert transition.terminated == 1.0 and episode["length"] < 1000
    assert not np.array_equal(transition.next_obs, next_obs)  # true final obs stored, reset obs for acting
    assert transition.obs.dtype == np.float32 and transition.action.shape == (3,)
    assert np.isclose(episode["return"], episode["raw_return"])


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "dmc:cheetah-run", "simpo:contextual-bandit"])
def test_seeding_is_reproducible(env_id):
    actions = np.random.default_rng(0).uniform(-1, 1, (20, env_spec(make_env(env_id, 0))[1]))
    obs_a, rew_a = rollout(make_env(env_id, seed=3), actions)
    obs_b, rew_b = rollout(make_env(env_id, seed=3), actions, seed=3)
    obs_c, _ = rollout(make_env(env_id, seed=4), actions)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    assert not np.array_equal(obs_a[0], obs_c[0])
    env = make_env(env_id, seed=3)
    assert np.array_equal(env.action_space.sample(), make_env(env_id, seed=3).action_space.sample())


def test_eval_envs_take_the_largest_seed():  # dm_control's RandomState takes seeds < 2**32 only
    from simpo.evaluation import eval_envs
    from simpo.train_config import TrainConfig

    envs = eval_envs(TrainConfig(env="dmc:cartpole-balance", seed=2**32 - 1), 2)
    assert len(envs) == 2 and envs[0].reset(seed=0)[0].shape == envs[1].reset(seed=0)[0].shape


def test_unknown_env_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown env 'HalfCheetah-v9'; did you mean: HalfCheetah-v5"):
        make_env("HalfCheetah-v9", 0)
    with pytest.raises(ValueError, match=r"did you mean: .*dmc:cheetah-run"):
        make_env("dmc:cheetah-runn", 0)
    with pytest.raises(ValueError, match="unknown env"):
        make_env("nonsense", 0)


def test_discrete_and_unbounded_spaces_rejected():
    with pytest.raises(ValueError, match="CartPole-v1 has a Discrete action space; simpo needs a continuous Box"):
        make_env("CartPole-v1", 0)

    class DiscreteObs(ContextualBanditEnv):
        def __init__(self):
            super().__init__()
            self.observation_space = gym.spaces.Discrete(3)

    class Unbounded(ContextualBanditEnv):
        def __init__(self):
            super().__init__()
            self.action_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    for name, cls in [("simpo_test/DiscreteObs-v0", DiscreteObs), ("simpo_test/Unbounded-v0", Unbounded)]:
        if name not in gym.registry:
            gym.register(name, entry_point=cls, disable_env_checker=True)
    with pytest.raises(ValueError, match="DiscreteObs-v0 has a Discrete observation space"):
        make_env("simpo_test/DiscreteObs-v0", 0)
    with pytest.raises(ValueError, match="unbounded action Box"):
        make_env("simpo_test/Unbounded-v0", 0)


def test_pendulum_actions_rescaled():
    env = make_env("Pendulum-v1", 0)
    assert env.unwrapped.action_space.high[0] == 2.0
    env.reset()
    env.step(np.array([1.0]))
    assert env.unwrapped.last_u == pytest.approx(2.0)


def test_reward_transforms_monotone_and_named():
    r = np.linspace(0.0, 1.0, 201)
    for name, (fn, description) in REWARD_TRANSFORMS.items():
        values = fn(r)
        assert values.shape == r.shape and np.all(np.isfinite(values)), name
        assert np.all(np.diff(values) > 0), name
        assert description
    flat, steep = get_reward_transform("flat"), get_reward_transform("steep")
    mid = lambda f: f(0.5) - (f(0.0) + f(1.0)) / 2  # noqa: E731  > 0 concave, < 0 convex
    assert mid(flat) > 0 and mid(steep) < 0
    # the authors' AbsReward(5) family at speed 10 (r = 1), docs/paper_notes.md §3
    for name, at_one in [("abs_linear", 2.0), ("abs_sqrt", 1.0), ("abs_square", 4.56), ("abs_exp", 6.11)]:
        assert get_reward_transform(name)(1.0) == pytest.approx(at_one, abs=0.01)
        assert get_reward_transform(name)(0.0) == pytest.approx(0.0, abs=1e-6)
    assert get_reward_transform("square")(0.5) == pytest.approx(1.0)
    assert get_reward_transform("exp")(1.0) == pytest.approx(np.exp(2.3))
    with pytest.raises(ValueError, match="unknown reward transform 'flatt'; did you mean: flat"):
        get_reward_transform("flatt")
    with pytest.raises(ValueError, match="allowed: none, flat, steep"):
        make_env("dmc:cheetah-run", 0, reward_transform="nope")


def test_reward_transform_applied_in_env():
    actions = np.random.default_rng(1).uniform(-1, 1, (30, 6))
    env = make_env("dmc:cheetah-run", 0, reward_transform="square")
    obs, _ = env.reset()
    raw_env = make_env("dmc:cheetah-run", 0)
    _, raw = rollout(raw_env, actions)
    for a, r in zip(actions, raw):
        _, reward, _, _, info = env.step(a)
        assert info["raw_reward"] == pytest.approx(r)
        assert reward == pytest.approx((2 * r) ** 2)
    with pytest.warns(UserWarning, match="designed for dm_control rewards"):
        make_env("Pendulum-v1", 0, reward_transform="flat")


def test_contextual_bandit():
    env = make_env("simpo:contextual-bandit", seed=0)
    assert env_spec(env) == (2, 2)
    for alias in ["simpo:ContextualBandit-v0", "simpo/ContextualBandit-v0"]:
        assert env_spec(make_env(alias, 0)) == (2, 2)
    bandit = ContextualBanditEnv()
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs, _ = env.reset()
        best = ContextualBanditEnv.best_action(obs)
        others = rng.uniform(-1, 1, (50, 2))
        best_reward = bandit.reward(obs, best)
        assert best_reward == pytest.approx(1.0)
        assert all(bandit.reward(obs, a) < best_reward for a in others)
        assert all(0.0 <= bandit.reward(obs, a) <= 1.0 for a in others)
        next_obs, reward, terminated, truncated, info = env.step(best)
        assert reward == pytest.approx(1.0) and terminated and not truncated
        assert info["episode"]["length"] == 1
    contexts = np.array([env.reset()[0] for _ in range(200)])
    assert contexts.min() >= -1 and contexts.max() <= 1 and contexts.std() > 0.4
