"""A preallocated ring replay buffer as a JAX pytree, with pure, jittable add and sample functions.

    buf   = buffer_init(capacity=1_000_000, obs_dim=17, action_dim=6)
    buf   = buffer_add(buf, obs, action, reward, next_obs, terminated)   # jitted, donates `buf`: in-place update
    batch = buffer_sample(buf, key, batch_size=256)                      # -> simpo.agents.base.Batch
    many  = buffer_sample_many(buf, key, k=4, batch_size=256)            # Batch with a leading (k,) axis

`ReplayBuffer` is a NamedTuple of arrays, so it passes through `jax.jit` and orbax checkpointing as is. Rows
`[0, size)` are filled; `ptr` is the next row to write (it wraps to 0 at `capacity`, overwriting the oldest rows).
Store `terminated`, not `done`, and the true final observation as `next_obs` (SPEC §9).

`buffer_add` and `buffer_add_batch` are jitted with the buffer donated: after `buf2 = buffer_add(buf, ...)` the old
`buf` must not be used again. The sample functions are plain traceable functions (call them eagerly, or inside a jit
with a static `batch_size`/`k`); eagerly they check that the buffer is not empty.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from simpo.agents.base import Batch


class ReplayBuffer(NamedTuple):
    """Transitions in `capacity` preallocated rows, plus the write pointer and the filled size."""

    obs: jax.Array  # (capacity, obs_dim) float32
    action: jax.Array  # (capacity, action_dim) float32
    reward: jax.Array  # (capacity,) float32
    next_obs: jax.Array  # (capacity, obs_dim) float32
    terminated: jax.Array  # (capacity,) float32, 1.0 where the MDP terminated
    ptr: jax.Array  # () int32, next row to write
    size: jax.Array  # () int32, number of filled rows (≤ capacity)

    @property
    def capacity(self) -> int:
        """Number of rows (static; also for a stack of buffers, one per seed)."""
        return self.reward.shape[-1]


def buffer_init(capacity: int, obs_dim: int, action_dim: int) -> ReplayBuffer:
    """An empty buffer of `capacity` zero rows."""
    for name, value in (("capacity", capacity), ("obs_dim", obs_dim), ("action_dim", action_dim)):
        if int(value) < 1:
            raise ValueError(f"buffer_init: {name} must be >= 1, got {value}")
    capacity, obs_dim, action_dim = int(capacity), int(obs_dim), int(action_dim)
    return ReplayBuffer(
        obs=jnp.zeros((capacity, obs_dim), jnp.float32),
        action=jnp.zeros((capacity, action_dim), jnp.float32),
        reward=jnp.zeros((capacity,), jnp.float32),
        next_obs=jnp.zeros((capacity, obs_dim), jnp.float32),
        terminated=jnp.zeros((capacity,), jnp.float32),
        ptr=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def _as_rows(buf: ReplayBuffer, obs, action, reward, next_obs, terminated) -> tuple[jax.Array, ...]:
    """Cast a batch of transitions (leading axis n) to the buffer's dtypes and row shapes."""
    n = jnp.shape(reward)[0] if jnp.ndim(reward) else 1
    return (
        jnp.asarray(obs, jnp.float32).reshape(n, buf.obs.shape[1]),
        jnp.asarray(action, jnp.float32).reshape(n, buf.action.shape[1]),
        jnp.asarray(reward, jnp.float32).reshape(n),
        jnp.asarray(next_obs, jnp.float32).reshape(n, buf.next_obs.shape[1]),
        jnp.asarray(terminated, jnp.float32).reshape(n),
    )


def _write(buf: ReplayBuffer, rows: tuple[jax.Array, ...]) -> ReplayBuffer:
    """Write n rows at ptr, ptr+1, ... (mod capacity); only the last `capacity` rows are kept if n > capacity."""
    capacity = buf.capacity
    n = rows[2].shape[0]
    if n > capacity:  # static: later transitions overwrite earlier ones, so drop the overwritten ones up front
        rows = tuple(r[n - capacity :] for r in rows)
        skipped, n = n - capacity, capacity
    else:
        skipped = 0
    idx = (buf.ptr + skipped + jnp.arange(n, dtype=jnp.int32)) % capacity
    obs, action, reward, next_obs, terminated = rows
    return ReplayBuffer(
        obs=buf.obs.at[idx].set(obs),
        action=buf.action.at[idx].set(action),
        reward=buf.reward.at[idx].set(reward),
        next_obs=buf.next_obs.at[idx].set(next_obs),
        terminated=buf.terminated.at[idx].set(terminated),
        ptr=((buf.ptr + skipped + n) % capacity).astype(jnp.int32),
        size=jnp.minimum(buf.size + skipped + n, capacity).astype(jnp.int32),
    )


@partial(jax.jit, donate_argnums=0)
def buffer_add(buf: ReplayBuffer, obs, action, reward, next_obs, terminated) -> ReplayBuffer:
    """Add one transition (obs (obs_dim,), action (action_dim,), scalar reward and terminated) at `ptr`.

    Jitted with `buf` donated (updated in place); also usable inside another jit.
    """
    return _write(buf, _as_rows(buf, obs, action, reward, next_obs, terminated))


@partial(jax.jit, donate_argnums=0)
def buffer_add_batch(buf: ReplayBuffer, obs, action, reward, next_obs, terminated) -> ReplayBuffer:
    """Add n transitions at once (leading axis n on every argument), in order, e.g. one step of n parallel envs.

    Jitted with `buf` donated; if n > capacity only the last `capacity` transitions remain, as with n single adds.
    """
    return _write(buf, _as_rows(buf, obs, action, reward, next_obs, terminated))


def _check_sample_args(buf: ReplayBuffer, batch_size: int, k: int = 1) -> None:
    """Eager checks: positive sizes, and a non-empty buffer when `size` is concrete (not traced)."""
    if int(batch_size) < 1:
        raise ValueError(f"buffer_sample: batch_size must be >= 1, got {batch_size}")
    if int(k) < 1:
        raise ValueError(f"buffer_sample_many: k must be >= 1, got {k}")
    if not isinstance(buf.size, jax.core.Tracer) and int(buf.size) == 0:
        raise ValueError("cannot sample from an empty replay buffer (size 0); add transitions first")


@partial(jax.jit, static_argnums=2)
def _sample(buf: ReplayBuffer, key: jax.Array, shape: tuple[int, ...]) -> Batch:
    """Rows drawn uniformly from [0, size) in an index array of `shape`, gathered into a Batch (one compiled call)."""
    idx = jax.random.randint(key, shape, 0, jnp.maximum(buf.size, 1))
    return Batch(
        obs=buf.obs[idx],
        action=buf.action[idx],
        reward=buf.reward[idx],
        next_obs=buf.next_obs[idx],
        terminated=buf.terminated[idx],
    )


def buffer_sample(buf: ReplayBuffer, key: jax.Array, batch_size: int) -> Batch:
    """`batch_size` transitions drawn uniformly, with replacement, from the filled rows `[0, size)`.

    Pure and jittable (`batch_size` static). Under jit an empty buffer is not detected and returns row 0 (zeros).
    """
    _check_sample_args(buf, batch_size)
    return _sample(buf, key, (int(batch_size),))


def buffer_sample_many(buf: ReplayBuffer, key: jax.Array, k: int, batch_size: int) -> Batch:
    """`k` independent uniform minibatches at once: a Batch whose fields have leading axes (k, batch_size).

    Use with `jax.lax.scan` over k updates. Pure and jittable (`k`, `batch_size` static).
    """
    _check_sample_args(buf, batch_size, k)
    return _sample(buf, key, (int(k), int(batch_size)))
