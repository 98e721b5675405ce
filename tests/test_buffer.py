"""Replay buffer: shapes, ring overwrite, sampling from the filled part only, jit and donation, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simpo.agents.base import Batch
from simpo.buffer import (
    ReplayBuffer,
    buffer_add,
    buffer_add_batch,
    buffer_init,
    buffer_sample,
    buffer_sample_many,
)

OBS_DIM, ACT_DIM = 3, 2


def transition(i: int):
    """A transition whose every field encodes the integer i."""
    return (
        np.full(OBS_DIM, i, np.float32),
        np.full(ACT_DIM, i / 100, np.float32),
        float(i),
        np.full(OBS_DIM, i + 0.5, np.float32),
        float(i % 2),
    )


def fill(capacity: int, n: int) -> ReplayBuffer:
    buf = buffer_init(capacity, OBS_DIM, ACT_DIM)
    for i in range(n):
        buf = buffer_add(buf, *transition(i))
    return buf


def test_init_shapes_and_pytree():
    buf = buffer_init(5, OBS_DIM, ACT_DIM)
    assert buf.obs.shape == (5, OBS_DIM) and buf.next_obs.shape == (5, OBS_DIM)
    assert buf.action.shape == (5, ACT_DIM) and buf.reward.shape == (5,) and buf.terminated.shape == (5,)
    assert buf.ptr.dtype == jnp.int32 and buf.size.dtype == jnp.int32 and int(buf.size) == 0
    assert buf.capacity == 5
    leaves = jax.tree_util.tree_leaves(buf)
    assert len(leaves) == 7 and all(isinstance(x, jax.Array) for x in leaves)


@pytest.mark.parametrize("bad", [dict(capacity=0), dict(obs_dim=0), dict(action_dim=-1)])
def test_init_validation(bad):
    kwargs = dict(capacity=4, obs_dim=OBS_DIM, action_dim=ACT_DIM) | bad
    with pytest.raises(ValueError, match=">= 1"):
        buffer_init(**kwargs)


def test_add_and_sample_shapes():
    buf = fill(8, 4)
    assert int(buf.size) == 4 and int(buf.ptr) == 4
    np.testing.assert_array_equal(buf.reward[:4], [0, 1, 2, 3])
    np.testing.assert_array_equal(buf.terminated[:4], [0, 1, 0, 1])
    batch = buffer_sample(buf, jax.random.key(0), 64)
    assert isinstance(batch, Batch)
    assert batch.obs.shape == (64, OBS_DIM) and batch.next_obs.shape == (64, OBS_DIM)
    assert batch.action.shape == (64, ACT_DIM) and batch.reward.shape == (64,) and batch.terminated.shape == (64,)
    assert all(x.dtype == jnp.float32 for x in batch)
    # each sampled row is a consistent transition
    i = np.asarray(batch.reward)
    np.testing.assert_allclose(batch.obs, np.repeat(i[:, None], OBS_DIM, 1))
    np.testing.assert_allclose(batch.next_obs, np.repeat(i[:, None] + 0.5, OBS_DIM, 1))
    np.testing.assert_allclose(batch.terminated, i % 2)


def test_ring_overwrite():
    buf = fill(4, 6)  # rows 0, 1 overwritten by transitions 4, 5
    assert int(buf.size) == 4 and int(buf.ptr) == 2
    np.testing.assert_array_equal(buf.reward, [4, 5, 2, 3])


def test_sample_only_from_filled_part():
    buf = fill(8, 5)
    batch = buffer_sample(buf, jax.random.key(1), 64)
    values = set(np.asarray(batch.reward).tolist())
    assert values == {0.0, 1.0, 2.0, 3.0, 4.0}  # all filled rows hit, never an empty (zero-padded) row beyond


def test_sample_empty_raises_and_bad_batch_size():
    buf = buffer_init(8, OBS_DIM, ACT_DIM)
    with pytest.raises(ValueError, match="empty"):
        buffer_sample(buf, jax.random.key(0), 2)
    buf = fill(8, 1)
    with pytest.raises(ValueError, match="batch_size"):
        buffer_sample(buf, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="k must"):
        buffer_sample_many(buf, jax.random.key(0), 0, 2)


def test_add_donates_buffer():
    buf = fill(8, 1)
    old_obs = buf.obs
    new = buffer_add(buf, *transition(7))
    assert old_obs.is_deleted()  # updated in place
    assert int(new.size) == 2 and float(new.reward[1]) == 7.0


def test_add_and_sample_inside_jit():
    @jax.jit
    def add_then_sample(buf, key):
        buf = buffer_add(buf, jnp.ones(OBS_DIM), jnp.ones(ACT_DIM), 9.0, jnp.ones(OBS_DIM), 1.0)
        return buf, buffer_sample(buf, key, 16)

    buf, batch = add_then_sample(buffer_init(8, OBS_DIM, ACT_DIM), jax.random.key(0))
    assert int(buf.size) == 1
    np.testing.assert_array_equal(batch.reward, np.full(16, 9.0))
    np.testing.assert_array_equal(batch.terminated, np.ones(16))


@pytest.mark.parametrize("prefill", [0, 3])
def test_add_batch_matches_single_adds(prefill):
    rows = [transition(i) for i in range(7)]
    stacked = [np.stack([np.asarray(r[j]) for r in rows]) for j in range(5)]
    ref = fill(5, prefill)
    for r in rows:
        ref = buffer_add(ref, *r)
    batched = buffer_add_batch(fill(5, prefill), *stacked)
    for a, b in zip(batched, ref):
        np.testing.assert_array_equal(a, b)


def test_add_batch_longer_than_capacity():
    rows = [transition(i) for i in range(11)]
    stacked = [np.stack([np.asarray(r[j]) for r in rows]) for j in range(5)]
    buf = buffer_add_batch(fill(4, 1), *stacked)  # 12 transitions in all through a 4-row ring
    ref = fill(4, 1)
    for r in rows:
        ref = buffer_add(ref, *r)
    for a, b in zip(buf, ref):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.sort(buf.reward), [7, 8, 9, 10])


def test_sample_many_shapes_and_independence():
    buf = fill(8, 8)
    many = buffer_sample_many(buf, jax.random.key(3), 4, 64)
    assert many.obs.shape == (4, 64, OBS_DIM) and many.action.shape == (4, 64, ACT_DIM)
    assert many.reward.shape == (4, 64) and many.terminated.shape == (4, 64)
    assert not np.array_equal(many.reward[0], many.reward[1])
    jitted = jax.jit(buffer_sample_many, static_argnums=(2, 3))(buf, jax.random.key(3), 4, 64)
    np.testing.assert_array_equal(jitted.reward, many.reward)


def test_sampling_is_deterministic_given_key():
    buf = fill(8, 8)
    a = buffer_sample(buf, jax.random.key(5), 64)
    b = jax.jit(buffer_sample, static_argnums=2)(buf, jax.random.key(5), 64)
    c = buffer_sample(buf, jax.random.key(6), 64)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.reward, c.reward)
