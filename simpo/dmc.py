"""dm_control suite tasks behind the gymnasium API (`DMControlEnv`, made by `simpo.envs.make_env("dmc:DOMAIN-TASK")`),
and MuJoCo's warnings routed to a logger.

**Side effects.** dm_control is imported with `MUJOCO_GL=disable` unless MUJOCO_GL is already set (no rendering, no
GLFW/X11 warnings); set MUJOCO_GL=egl before the first dmc env if you need pixels. MuJoCo's deprecation warning for
the `settotalmass` attribute of the dm_control/gymnasium models is dropped; other MuJoCo warnings go to the
`simpo.mujoco` logger instead of MUJOCO_LOG.TXT.
"""

from __future__ import annotations

import logging
import os

import gymnasium as gym
import numpy as np
from gymnasium import spaces

_HARMLESS_MUJOCO_WARNINGS = ("compiler attribute 'settotalmass' is deprecated",)
_mujoco_logger = logging.getLogger("simpo.mujoco")


def _mujoco_warning(message: str) -> None:
    """MuJoCo warning callback: drop known-harmless messages, log the rest."""
    if not any(s in message for s in _HARMLESS_MUJOCO_WARNINGS):
        _mujoco_logger.warning("MuJoCo: %s", message)


def quiet_mujoco_warnings() -> None:
    """Install `_mujoco_warning` as MuJoCo's warning handler (also stops MUJOCO_LOG.TXT being written)."""
    try:
        import mujoco
    except ImportError:  # pragma: no cover - mujoco is a dependency of the gymnasium[mujoco] extra
        return
    mujoco.set_mju_user_warning(_mujoco_warning)


def dmc_suite():
    """Import `dm_control.suite` without requiring an OpenGL backend."""
    unset = "MUJOCO_GL" not in os.environ
    if unset:
        os.environ["MUJOCO_GL"] = "disable"
    try:
        from dm_control import suite
    finally:
        if unset:
            os.environ.pop("MUJOCO_GL", None)
    quiet_mujoco_warnings()  # after dm_control, which installs its own handler on import
    return suite


def dmc_env_ids() -> list[str]:
    """All dm_control suite tasks as `dmc:DOMAIN-TASK` ids."""
    return [f"dmc:{d}-{t}" for d, t in dmc_suite().ALL_TASKS]


class DMControlEnv(gym.Env):
    """A dm_control suite task behind the gymnasium API.

    Observations are the task's observation dict flattened and concatenated in the order of `observation_spec()`
    (fixed per task), as float32. Rewards are floats. The episode end (`timestep.last()`) is `terminated` when the
    final discount is 0 and `truncated` otherwise (the time limit).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, domain: str, task: str, seed: int | None = None, task_kwargs: dict | None = None,
                 render_size: tuple[int, int] | None = None):
        kwargs = {"random": seed, **(task_kwargs or {})}
        self._env = dmc_suite().load(domain, task, task_kwargs=kwargs)
        self.render_mode = render_size and "rgb_array"
        self._render_size = render_size
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self._env.control_timestep())}
        self._obs_keys = list(self._env.observation_spec())
        obs_dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self.observation_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        spec = self._env.action_spec()
        low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float32)
        high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float32)
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        self._action_dtype = spec.dtype
        self._needs_reset = True

    def _flatten(self, observation) -> np.ndarray:
        return np.concatenate([np.asarray(observation[k], np.float32).ravel() for k in self._obs_keys])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        self._needs_reset = False
        return self._flatten(self._env.reset().observation), {}

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("DMControlEnv.step called before reset() or after the episode ended")
        action = np.clip(np.asarray(action, self._action_dtype), self.action_space.low, self.action_space.high)
        ts = self._env.step(action)
        terminated = bool(ts.last() and ts.discount == 0.0)
        truncated = bool(ts.last() and not terminated)
        self._needs_reset = ts.last()
        return self._flatten(ts.observation), float(ts.reward or 0.0), terminated, truncated, {}

    def render(self) -> np.ndarray | None:
        """An (H, W, 3) uint8 frame from camera 0 when built with `render_size` (needs MUJOCO_GL=egl or osmesa
        set before dm_control's first import)."""
        if self._render_size is None:
            return None
        height, width = self._render_size
        return self._env.physics.render(height=height, width=width, camera_id=0)
