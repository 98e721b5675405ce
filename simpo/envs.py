"""Environments: one constructor, `make_env`, for gymnasium ids, dm_control suite tasks and a built-in test bandit.

Every env returned by `make_env` has a flat float32 `Box` observation space and a `Box[-1, 1]^d` action space.

    env = make_env("HalfCheetah-v5", seed=0)             # any registered gymnasium id
    env = make_env("dmc:cheetah-run", seed=0, reward_transform="flat")   # dm_control suite DOMAIN-TASK
    env = make_env("simpo:contextual-bandit", seed=0)    # 1-step contextual bandit for fast agent tests

**Seeding.** `make_env(id, seed)` seeds the action space and, for dm_control, the task's RandomState (simpo.train
draws its warm-up actions from `default_rng([seed, step])` instead, so that a resumed run draws the same ones). The first `env.reset()` uses `seed` when called without one, so `make_env(id, s)` followed by resets
and steps is reproducible; `env.reset(seed=s)` works too. Later resets continue the env's RNG stream.

**Episode ends (SPEC §9).** `step` returns gymnasium's `(next_obs, reward, terminated, truncated, info)`. Store
`terminated` (never `terminated or truncated`) and the `next_obs` returned by `step`, which is the true final
observation; then reset for acting. `step_transition` does exactly this. dm_control episodes end by their time limit
as `truncated=True`; they report `terminated=True` only when the final step's discount is 0.

**Statistics.** At an episode's last step, `info["episode"]` holds `{"return", "raw_return", "length"}`; `return` sums
the (possibly transformed) training reward, `raw_return` the env's own reward (report this one in the Fig. 5 study).

**Side effects** of dm_control's import and MuJoCo's warnings: see `simpo.dmc`, which holds the dm_control adapter.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from simpo.dmc import DMControlEnv, dmc_env_ids, dmc_suite, quiet_mujoco_warnings
from simpo.transforms import get_reward_transform

BANDIT_ID = "simpo/ContextualBandit-v0"
_BANDIT_ALIASES = ("simpo:ContextualBandit-v0", "simpo:contextual-bandit", BANDIT_ID)


# ---------------------------------------------------------------------------------------------- contextual bandit


class ContextualBanditEnv(gym.Env):
    """A 1-step contextual bandit with a unique best action per context, for fast online-agent tests.

    Context s ~ U[-1, 1]^dim; action a ∈ [-1, 1]^dim; best action a*(s) = 0.5 s; reward
    r = 1 - ‖a - a*(s)‖² / (2.25 dim) ∈ [0, 1] (max 1 at a*). A uniformly random policy averages ≈ 0.815. Every
    episode terminates after one step; the returned `next_obs` is the (unused) same context.
    """

    metadata = {"render_modes": []}

    def __init__(self, dim: int = 2):
        self.dim = dim
        self.observation_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self._obs: np.ndarray | None = None

    @staticmethod
    def best_action(obs: np.ndarray) -> np.ndarray:
        """a*(s) = 0.5 s."""
        return 0.5 * np.asarray(obs, np.float32)

    def reward(self, obs: np.ndarray, action: np.ndarray) -> float:
        """r(s, a) = 1 - ‖a - 0.5 s‖² / (2.25 dim)."""
        diff = np.clip(np.asarray(action, np.float64), -1.0, 1.0) - self.best_action(obs)
        return float(1.0 - np.sum(diff**2) / (2.25 * self.dim))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._obs = self.np_random.uniform(-1.0, 1.0, self.dim).astype(np.float32)
        return self._obs.copy(), {}

    def step(self, action):
        if self._obs is None:
            raise RuntimeError("ContextualBanditEnv.step called before reset() or after the episode ended")
        obs, self._obs = self._obs, None
        return obs.copy(), self.reward(obs, action), True, False, {}


if BANDIT_ID not in gym.registry:
    gym.register(id=BANDIT_ID, entry_point=ContextualBanditEnv)


# ---------------------------------------------------------------------------------------------------- wrappers


class RewardTransformWrapper(gym.Wrapper):
    """Replace the reward by `transform(reward)`; the env's own reward is kept in `info["raw_reward"]`."""

    def __init__(self, env: gym.Env, name: str):
        super().__init__(env)
        self.name = name
        self.transform = get_reward_transform(name)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "raw_reward": float(reward)}
        return obs, float(self.transform(reward)), terminated, truncated, info


class EpisodeInfoWrapper(gym.Wrapper):
    """Seed the first reset with the `make_env` seed; add `info["episode"]` at each episode's last step."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._first_seed: int | None = seed
        self._ret = self._raw_ret = 0.0
        self._len = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None:
            seed = self._first_seed
        self._first_seed = None
        self._ret = self._raw_ret = 0.0
        self._len = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._ret += float(reward)
        self._raw_ret += float(info.get("raw_reward", reward))
        self._len += 1
        if terminated or truncated:
            info = {**info, "episode": {"return": self._ret, "raw_return": self._raw_ret, "length": self._len}}
        return obs, reward, terminated, truncated, info


# -------------------------------------------------------------------------------------------------- make_env


def _unknown_env_error(env_id: str) -> ValueError:
    candidates = [k for k in gym.registry if k != BANDIT_ID] + dmc_env_ids() + list(_BANDIT_ALIASES)
    close = difflib.get_close_matches(env_id, candidates, n=5, cutoff=0.6)
    hint = f"; did you mean: {', '.join(close)}?" if close else " (use a gymnasium id or dmc:DOMAIN-TASK)"
    return ValueError(f"unknown env {env_id!r}{hint}")


def _make_base_env(env_id: str, seed: int, env_kwargs: dict, max_episode_steps: int | None,
                   render_size: tuple[int, int] | None = None) -> gym.Env:
    """Construct the unwrapped-for-simpo env, or raise a one-line ValueError for an unknown id."""
    if env_id.startswith("dmc:"):
        domain, _, task = env_id[4:].partition("-")
        if (domain, task) not in dmc_suite().ALL_TASKS:
            raise _unknown_env_error(env_id)
        env: gym.Env = DMControlEnv(domain, task, seed=seed, task_kwargs=env_kwargs, render_size=render_size)
        if max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
        return env
    gym_id = BANDIT_ID if env_id in _BANDIT_ALIASES else env_id
    if ":" in gym_id or gym_id not in gym.registry:
        raise _unknown_env_error(env_id)
    if max_episode_steps is not None:
        env_kwargs = {**env_kwargs, "max_episode_steps": max_episode_steps}
    if render_size is not None:
        env_kwargs = {**env_kwargs, "render_mode": "rgb_array"}
        if str(gym.registry[gym_id].entry_point).startswith("gymnasium.envs.mujoco"):  # others take no frame size
            env_kwargs.update(height=render_size[0], width=render_size[1])
    try:
        with warnings.catch_warnings():  # old versions (HalfCheetah-v2/v3) warn before they fail: one line instead
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*not in the possible render_modes")  # the error below
            return gym.make(gym_id, **env_kwargs)
    except TypeError as err:
        if render_size is None:
            raise
        cause = str(err).splitlines()[0].split(" was raised from")[0]  # gymnasium appends the creator and kwargs
        raise ValueError(f"env {env_id} cannot render frames ({cause})") from None
    except (ImportError, gym.error.Error) as err:  # registered, but not makeable here (e.g. mujoco-py's v2/v3)
        newest = max((k for k in gym.registry if k.split("-v")[0] == gym_id.split("-v")[0]), default=gym_id)
        raise ValueError(f"env {env_id} cannot be made here ({str(err).splitlines()[0]}); try {newest}") from None


def _check_box(env_id: str, space: gym.Space, what: str) -> None:
    if not isinstance(space, spaces.Box):
        raise ValueError(f"env {env_id} has a {type(space).__name__} {what} space; simpo needs a continuous Box")
    if what == "action":
        if len(space.shape) != 1:
            raise ValueError(f"env {env_id} has an action Box of shape {space.shape}; simpo needs a 1-D Box")
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ValueError(f"env {env_id} has an unbounded action Box [{space.low}, {space.high}]; "
                             "simpo needs finite bounds")


def make_env(
    env_id: str,
    seed: int,
    reward_transform: str = "none",
    *,
    max_episode_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    render_size: tuple[int, int] | None = None,
) -> gym.Env:
    """Build `env_id` with actions in [-1, 1]^d, flat float32 observations and the named reward transform.

    Args:
        env_id: a gymnasium id (``"HalfCheetah-v5"``), ``"dmc:DOMAIN-TASK"`` (``"dmc:cheetah-run"``) or
            ``"simpo:contextual-bandit"``.
        seed: seeds the action space, the dm_control task and the first reset (see module docstring).
        reward_transform: a name in `simpo.transforms.REWARD_TRANSFORMS`; designed for rewards in [0, 1].
        max_episode_steps: optional time limit in env steps (ends episodes with ``truncated=True``).
        env_kwargs: extra kwargs for `gymnasium.make`, or dm_control ``task_kwargs`` (e.g. ``time_limit``).
        render_size: (height, width): `env.render()` returns such RGB frames (MuJoCo needs MUJOCO_GL=egl or osmesa;
            `simpo.video` sets egl when unset).

    Raises:
        ValueError: unknown env id (with close matches), non-Box or unbounded spaces, unknown reward transform.
    """
    get_reward_transform(reward_transform)  # validate the name before building anything
    quiet_mujoco_warnings()
    env = _make_base_env(env_id, seed, dict(env_kwargs or {}), max_episode_steps, render_size)
    _check_box(env_id, env.action_space, "action")
    _check_box(env_id, env.observation_space, "observation")
    with warnings.catch_warnings():  # gymnasium warns when these wrappers cast float64 bounds to float32
        warnings.filterwarnings("ignore", message=".*precision lowered by casting")
        act = env.action_space
        if not (np.all(act.low == -1.0) and np.all(act.high == 1.0)):
            env = gym.wrappers.RescaleAction(env, -1.0, 1.0)
        if len(env.observation_space.shape) != 1:
            env = gym.wrappers.FlattenObservation(env)
        if env.observation_space.dtype != np.float32:
            env = gym.wrappers.DtypeObservation(env, np.float32)
    if reward_transform != "none":
        if not (env_id.startswith("dmc:") or env_id in _BANDIT_ALIASES):
            warnings.warn(f"reward transform {reward_transform!r} is designed for dm_control rewards in [0, 1]; "
                          f"rewards of {env_id} are clipped to [0, 1] before it", stacklevel=2)
        env = RewardTransformWrapper(env, reward_transform)
    env = EpisodeInfoWrapper(env, seed)
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
    return env


def env_spec(env: gym.Env) -> tuple[int, int]:
    """(obs_dim, action_dim) of an env built by `make_env`."""
    return int(env.observation_space.shape[0]), int(env.action_space.shape[0])


# ------------------------------------------------------------------------------------------------ stepping


class Transition(NamedTuple):
    """One transition to store in the replay buffer (numpy; `terminated` as float32 0/1)."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.float32
    next_obs: np.ndarray  # the true next / final observation, never the reset observation
    terminated: np.float32


def step_transition(env: gym.Env, obs: np.ndarray, action: np.ndarray) -> tuple[Transition, np.ndarray, dict | None]:
    """Step `env` and reset it at an episode end.

    Returns `(transition, obs_for_acting, episode)`: `transition` stores `terminated` (not truncation) and the true
    final observation; `obs_for_acting` is the next observation, or the reset observation after an episode end;
    `episode` is `info["episode"]` (`{"return", "raw_return", "length"}`) at an episode end and None otherwise.
    """
    action = np.asarray(action, np.float32)
    next_obs, reward, terminated, truncated, info = env.step(action)
    transition = Transition(
        np.asarray(obs, np.float32), action, np.float32(reward), np.asarray(next_obs, np.float32),
        np.float32(terminated),
    )
    if terminated or truncated:
        obs_for_acting, _ = env.reset()
        return transition, obs_for_acting, info.get("episode")
    return transition, next_obs, None
