"""Checkpointer: pytree round trips, max_to_keep, and falling back past a corrupted latest checkpoint."""

import logging
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simpo.checkpoint import CheckpointError, Checkpointer

# When a restore fails, orbax closes its asyncio loop while tensorstore may still finish sibling reads;
# their callbacks then hit the closed loop in a tensorstore thread ("RuntimeError: Event loop is closed",
# reported by pytest as unraisable, in whichever test runs at that moment). Harmless.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class TrainState(NamedTuple):
    step: int
    updates: int
    lr: float
    params: dict
    opt_state: Any
    key: jax.Array
    buffer: dict


def make_state(seed=0, step=7):
    rng = np.random.default_rng(seed)
    params = {
        "dense_0": {"kernel": jnp.asarray(rng.normal(size=(5, 8)), jnp.float32), "bias": jnp.zeros(8)},
        "dense_1": {"kernel": jnp.asarray(rng.normal(size=(8, 2)), jnp.bfloat16)},
    }
    return TrainState(
        step=step,
        updates=3 * step,
        lr=3e-4,
        params=params,
        opt_state=optax.adam(1e-3).init(params),
        key=jax.random.key(seed),
        buffer={
            "obs": rng.normal(size=(64, 17)).astype(np.float32),
            "done": rng.random(64) < 0.1,
            "ptr": np.int64(12),
        },
    )


def assert_same(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert type(x) is type(y), (type(x), type(y))
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def corrupt(step_dir: Path, how: str):
    state = step_dir / "state"
    if how == "truncate_data":
        files = [p for p in state.rglob("*") if p.is_file() and p.parent.name == "d"]
        assert files
        for p in files:
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    elif how == "delete_manifest":
        (state / "manifest.ocdbt").unlink()
    else:
        raise ValueError(how)


def test_round_trip(tmp_path):
    state = make_state()
    with Checkpointer(tmp_path) as ck:
        assert ck.latest_step() is None
        ck.save(7, state, {"env_step": 7000, "wall_time_s": np.float64(12.5), "run": Path("/x")})
        assert ck.latest_step() == 7
        restored, meta = ck.restore(target=make_state(seed=1, step=0))
    assert_same(state, restored)
    assert isinstance(restored, TrainState) and isinstance(restored.step, int) and restored.step == 7
    assert meta == {"env_step": 7000, "wall_time_s": 12.5, "run": "/x"}
    # a fresh Checkpointer sees it; without a target the tree comes back as nested dicts
    with Checkpointer(tmp_path) as ck:
        raw, _ = ck.restore(7)
    assert raw["updates"] == 21 and raw["buffer"]["obs"].shape == (64, 17)


def test_max_to_keep_and_resave(tmp_path):
    with Checkpointer(tmp_path, max_to_keep=3) as ck:
        for step in range(0, 50, 10):
            ck.save(step, {"x": np.full(3, step)})
        assert ck.all_steps() == [20, 30, 40]
        assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()) == ["20", "30", "40"]
        # saving an earlier step (a resume from step 20) replaces the now-stale later ones
        with pytest.warns(UserWarning, match=r"deleting checkpoints at steps \[30, 40\]"):
            ck.save(30, {"x": np.full(3, -1)})
        assert ck.all_steps() == [20, 30]
        tree, _ = ck.restore(target={"x": np.zeros(3, np.int64)})
        assert ck.restored_step == 30 and tree["x"].tolist() == [-1, -1, -1]


@pytest.mark.parametrize("how", ["truncate_data", "delete_manifest"])
def test_corrupted_latest_falls_back_with_warning(tmp_path, how):
    with Checkpointer(tmp_path) as ck:
        for step in (1, 2, 3):
            ck.save(step, make_state(step=step), {"env_step": step * 100})
    corrupt(tmp_path / "checkpoints" / "3", how)
    with Checkpointer(tmp_path) as ck:
        with pytest.warns(UserWarning, match=r"unreadable checkpoint.*step 3.*restored step 2"):
            restored, meta = ck.restore(target=make_state())
        assert ck.restored_step == 2 and meta == {"env_step": 200}
        assert_same(make_state(step=2), restored)
        with pytest.raises(CheckpointError, match="step 3"):
            ck.restore(3, target=make_state())  # an explicit step does not fall back


def test_all_corrupt_or_none_is_a_clear_error(tmp_path):
    with Checkpointer(tmp_path) as ck:
        with pytest.raises(CheckpointError, match="no checkpoints"):
            ck.restore()
        ck.save(1, make_state(step=1))
        ck.save(2, make_state(step=2))
    for step in (1, 2):
        corrupt(tmp_path / "checkpoints" / str(step), "truncate_data")
    with Checkpointer(tmp_path) as ck:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(CheckpointError, match="no readable checkpoint") as err:
                ck.restore(target=make_state())
    assert "\n" not in str(err.value)


def test_unfinished_tmp_dir_is_ignored(tmp_path):
    with Checkpointer(tmp_path) as ck:
        ck.save(1, {"x": np.ones(2)})
    tmp = tmp_path / "checkpoints" / "5.orbax-checkpoint-tmp"  # what a process killed mid-save leaves
    (tmp / "state").mkdir(parents=True)
    with Checkpointer(tmp_path) as ck:
        assert ck.latest_step() == 1
        assert ck.restore()[0]["x"].tolist() == [1.0, 1.0]
        ck.save(2, {"x": np.zeros(2)})  # orbax removes stale tmp directories (at latest, before this save)
    assert not tmp.exists()


def test_async_save(tmp_path):
    buf = {"obs": np.random.default_rng(0).normal(size=(1000, 17)).astype(np.float32)}
    expected = buf["obs"].copy()
    with Checkpointer(tmp_path, async_save=True) as ck:
        ck.save(1, buf)
        buf["obs"][:] = 0.0  # mutating after save returns must not change the checkpoint
        ck.wait()
        restored, _ = ck.restore(target=buf)
    np.testing.assert_array_equal(restored["obs"], expected)


class _Old(NamedTuple):
    params: dict
    step: jax.Array


class _New(NamedTuple):  # a field added after checkpoints were written (as SiMPOState.auto_skew was)
    params: dict
    step: jax.Array
    skew: jax.Array = jnp.zeros((), jnp.float32)
    extra: Any = None


def test_checkpoint_from_before_a_field_existed_restores_with_its_initial_value(tmp_path):
    old = _Old({"w": jnp.arange(6.0).reshape(2, 3)}, jnp.asarray(7, jnp.int32))
    Checkpointer(tmp_path).save(1, old)
    target = _New({"w": jnp.zeros((2, 3))}, jnp.zeros((), jnp.int32), jnp.asarray(0.5, jnp.float32))
    with pytest.warns(UserWarning, match="predates field") as caught:
        tree, _ = Checkpointer(tmp_path).restore(target=target)
    assert "skew" in str(caught[0].message) and "extra" not in str(caught[0].message)  # None: nothing to fill
    assert isinstance(tree, _New) and int(tree.step) == 7 and float(tree.skew) == 0.5 and tree.extra is None
    np.testing.assert_array_equal(tree.params["w"], old.params["w"])
    wrong = target._replace(params={"w": jnp.zeros((3, 3))})  # a real mismatch still fails, in one line
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        Checkpointer(tmp_path).restore(target=wrong)


def test_unretrieved_orbax_task_errors_are_not_logged(caplog):
    """A failed restore's sibling tasks (failed in orbax's code) are not logged when collected; others still are."""
    import asyncio
    import gc

    source = "async def fail():\n    raise ValueError('requested shape is not compatible with the stored shape')\n"
    orbax_ns, other_ns = {"__name__": "orbax.checkpoint._src.fake"}, {"__name__": "someone.else"}
    exec(source, orbax_ns)  # noqa: S102 - a coroutine whose frames belong to a module named like orbax's
    exec(source, other_ns)  # noqa: S102

    async def main():
        tasks = [asyncio.ensure_future(orbax_ns["fail"]()), asyncio.ensure_future(other_ns["fail"]())]
        await asyncio.sleep(0.01)
        assert all(t.done() for t in tasks)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
        gc.collect()
    unretrieved = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert len(unretrieved) == 1
    tb, modules = unretrieved[0].exc_info[2], set()
    while tb is not None:
        modules.add(tb.tb_frame.f_globals.get("__name__"))
        tb = tb.tb_next
    assert "someone.else" in modules and "orbax.checkpoint._src.fake" not in modules


def test_shape_mismatch_names_the_array_without_touching_orbax_restore(tmp_path, monkeypatch):
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, {"net": {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}, "step": 1})
    with Checkpointer(tmp_path) as ckpt:
        monkeypatch.setattr(ckpt._manager, "restore", lambda *a, **k: pytest.fail("orbax restore was called"))
        with pytest.raises(CheckpointError, match=r"net\.w: stored shape \[4, 3\] where \[5, 3\] is expected"):
            ckpt.restore(target={"net": {"w": jnp.ones((5, 3)), "b": jnp.zeros(3)}, "step": 0})
