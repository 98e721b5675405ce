"""MuJoCo Playground (MJX) envs for the on-device loop: E envs reset and stepped in batch, inside `jax.jit`.

    env = load_env("playground:CheetahRun")                    # the DM Control suite envs of MuJoCo Playground
    envs = reset_envs(env, key, n=4)                           # EnvBatch: E Playground states + step counters
    envs, step = step_envs(env, envs, actions, key, 1000)      # StepResult: one transition per env, auto-reset

Only the DM Control suite envs are offered: they ship with Playground (no download at import or use); the
locomotion and manipulation envs would clone mujoco_menagerie from GitHub on first use.

**Episode ends (SPEC §9), as in simpo.envs.** Playground's `done` (set by the DM Control suite envs only when the
physics diverges) is stored as `terminated`; the time limit (`episode_length` steps, Playground's 1000 unless
`max_episode_steps` is set) is a truncation, and `next_obs` is always the true final observation. An env that ended
is reset in place; the reset (hundreds of physics steps for the stabilising warm-start of e.g. Cheetah) runs under a
`lax.cond`, so it costs nothing on the steps where no env ended.

`OnDeviceConfig` (the `--ondevice.*` flags of `simpo train`) lives here, not in simpo.ondevice, so that
simpo.train can import it without importing the training loop.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simpo.dmc import quiet_mujoco_warnings
from simpo.transforms import get_reward_transform

PREFIX = "playground:"
INSTALL_HINT = 'pip install -c constraints.txt -e ".[playground]"'


@dataclass(frozen=True)
class OnDeviceConfig:
    """The fully on-device loop (simpo.ondevice), used for `--env playground:NAME`."""

    num_envs: int = 1
    """E envs stepped in batch: one scan iteration is E env steps. 1 suits a CPU; use hundreds on a GPU. Must
    divide total_steps, and eval_interval and checkpoint_interval where they are below total_steps."""
    updates_per_iteration: int = 0
    """Agent updates per scan iteration; 0 means num_envs x updates_per_step (the host loop's ratio)."""
    impl: Literal["auto", "jax", "warp"] = "auto"
    """MJX backend: auto is Playground's default for the env (warp for the DM Control suite), or jax where
    warp-lang is not installed."""

    def __post_init__(self):
        if self.num_envs < 1:
            raise ValueError(f"ondevice.num_envs must be >= 1, got {self.num_envs}")
        if self.updates_per_iteration < 0:
            raise ValueError(f"ondevice.updates_per_iteration must be >= 0 (0 = num_envs), "
                             f"got {self.updates_per_iteration}")


def _has_warp() -> bool:
    try:
        import warp

        warp.config.quiet = True  # no "Warp initialized" banner on stdout
    except ImportError:
        return False
    return True


def _suite():
    """`mujoco_playground.dm_control_suite`, imported quietly; a one-line ValueError if Playground is missing."""
    _has_warp()
    try:
        with warnings.catch_warnings():  # brax imports jaxopt, which announces its end of maintenance
            warnings.filterwarnings("ignore", message="JAXopt is no longer maintained", category=DeprecationWarning)
            from mujoco_playground import dm_control_suite
    except ImportError:
        raise ValueError(f"playground: envs need MuJoCo Playground: {INSTALL_HINT}") from None
    quiet_mujoco_warnings()
    return dm_control_suite


def playground_env_ids() -> list[str]:
    """The supported ids, `playground:NAME` for each DM Control suite env of Playground."""
    return [PREFIX + name for name in _suite().ALL_ENVS]


def load_env(env_id: str, impl: str = "auto"):
    """The Playground env `playground:NAME`; a one-line ValueError with close matches for an unknown name."""
    suite = _suite()
    name = env_id.removeprefix(PREFIX)
    if not env_id.startswith(PREFIX) or name not in suite.ALL_ENVS:
        by_lower = {n.lower(): PREFIX + n for n in suite.ALL_ENVS}
        close = difflib.get_close_matches(name.lower(), by_lower, n=5, cutoff=0.6)
        hint = f"did you mean: {', '.join(by_lower[c] for c in close)}?" if close else \
            f"allowed: {', '.join(by_lower.values())}"
        raise ValueError(f"unknown Playground env {env_id!r}; {hint}")
    if impl == "auto" and not _has_warp():
        impl = "jax"  # Playground's default would fail without warp-lang (the GPU image lacks it)
    return suite.load(name, config_overrides={} if impl == "auto" else {"impl": impl})


def first_update_step(warmup_steps: int, batch_size: int, num_envs: int) -> int:
    """The on-device loop's first update as `TrainConfig.first_update_step` counts it: the last (0-based) env step
    of the first scan iteration i that updates, (i+1)·E − 1, so that its updates follow env step
    first_update_step + 1 as in the host loop. That iteration is the first whose E steps all come after the warm-up
    (i·E >= warmup_steps) and after which the buffer holds a batch ((i+1)·E >= batch_size); the buffer's capacity,
    min(buffer_size, total_steps), is below batch_size only where total_steps is, and then so is every iteration's
    end. With E = 1 this is the host loop's max(warmup_steps, batch_size − 1)."""
    e = num_envs
    first = max(-(-warmup_steps // e), -(-batch_size // e) - 1)  # ceil(warmup / E), ceil(batch / E) − 1
    return (first + 1) * e - 1


def default_episode_length(env_id: str) -> int:
    return int(_suite().get_default_config(env_id.removeprefix(PREFIX)).episode_length)


def jax_reward_transform(name: str, grid: int = 16385) -> Callable[[jax.Array], jax.Array]:
    """`simpo.transforms` (numpy) as a jittable function: exact for `none`, else linear interpolation on `grid`
    points t³ of [0, 1], t evenly spaced (every other transform first clips the reward to [0, 1]). The cubed grid is
    dense near 0, where `pow0.5`'s slope is unbounded: an even grid of 4,097 points was off by 3.9e-3 there. Error
    below 1e-6 of max(1, |r'|) for every transform (tests/test_ondevice.py)."""
    transform = get_reward_transform(name)
    if name == "none":
        return lambda r: r
    xs = np.linspace(0.0, 1.0, grid) ** 3
    ys = jnp.asarray(transform(xs), jnp.float32)
    xs = jnp.asarray(xs, jnp.float32)
    return lambda r: jnp.interp(jnp.clip(r, 0.0, 1.0), xs, ys)



class EnvBatch(NamedTuple):
    """E Playground env states (a batched `mjx_env.State`) and the steps each has taken since its reset."""

    state: Any
    t: jax.Array  # (E,) int32


class StepResult(NamedTuple):
    """One transition per env (SPEC §9: `terminated`, and the true final observation as `next_obs`)."""

    obs: jax.Array  # (E, obs_dim)
    reward: jax.Array  # (E,) the env's own reward
    next_obs: jax.Array  # (E, obs_dim)
    terminated: jax.Array  # (E,) float32
    ended: jax.Array  # (E,) bool: terminated or truncated (the env was reset)


def reset_envs(env, key: jax.Array, n: int) -> EnvBatch:
    return EnvBatch(jax.vmap(env.reset)(jax.random.split(key, n)), jnp.zeros(n, jnp.int32))


def step_envs(env, envs: EnvBatch, action: jax.Array, key: jax.Array, episode_length: int
              ) -> tuple[EnvBatch, StepResult]:
    """Step every env once; reset (with `key`) the ones whose episode ended."""
    nxt = jax.vmap(env.step)(envs.state, action)
    t = envs.t + 1
    terminated = nxt.done > 0
    ended = terminated | (t >= episode_length)

    def restart(state):
        n = ended.shape[0]
        fresh = jax.vmap(env.reset)(jax.random.split(key, n))
        one = jax.eval_shape(env.reset, key)  # a leaf is per-env iff its shape is (n, *one's shape)

        def pick(a, b, s):  # MJX-warp states also hold leaves that vmap leaves unbatched: keep those
            return jnp.where(ended.reshape(-1, *([1] * (a.ndim - 1))), a, b) if a.shape == (n, *s.shape) else b

        return jax.tree.map(pick, fresh, state, one)

    state = jax.lax.cond(ended.any(), restart, lambda s: s, nxt)
    result = StepResult(envs.state.obs, nxt.reward, nxt.obs, terminated.astype(jnp.float32), ended)
    return EnvBatch(state, jnp.where(ended, 0, t)), result


def episode_returns(env, policy: Callable[[jax.Array, jax.Array], jax.Array], reset_key: jax.Array,
                    act_key: jax.Array, n: int, episode_length: int) -> jax.Array:
    """Undiscounted returns (the env's own reward) of one episode in each of `n` envs, all on device: a scan
    of `episode_length` steps; an env's reward stops counting once it is done. `policy(obs, key) -> actions`."""
    state = jax.vmap(env.reset)(jax.random.split(reset_key, n))

    def body(carry, t):
        state, returns, alive = carry
        state = jax.vmap(env.step)(state, policy(state.obs, jax.random.fold_in(act_key, t)))
        returns = returns + jnp.where(alive, state.reward, 0.0)
        return (state, returns, alive & (state.done == 0)), None

    init = (state, jnp.zeros(n, jnp.float32), jnp.ones(n, bool))
    return jax.lax.scan(body, init, jnp.arange(episode_length))[0][1]
