"""Checkpoints of arbitrary pytrees (train state, replay buffer, ...) under ``<run_dir>/checkpoints``.

A thin wrapper over ``orbax.checkpoint.CheckpointManager`` (orbax-checkpoint 0.12.8). Each step is one
directory ``<run_dir>/checkpoints/<step>/`` with two orbax items: ``state`` (the pytree, ``StandardSave``,
tensorstore/OCDBT) and ``metadata`` (a small JSON dict, ``JsonSave``). Orbax writes every step into
``<step>.orbax-checkpoint-tmp-<timestamp>/`` and renames it when finished, so a run killed mid-save
leaves no half-written ``<step>/`` directory (unfinished tmp directories are ignored, and cleaned up
when the next ``Checkpointer`` opens the directory).

Behaviour worth knowing (all handled here):

* Saving is synchronous by default: :meth:`Checkpointer.save` returns once the checkpoint is on disk.
  With ``async_save=True`` it returns after the device-to-host copy; call :meth:`wait` (or
  :meth:`close`) before reading the checkpoint or exiting.
* Orbax *silently skips* (returns ``False``) a save whose step is ``<=`` the latest saved step. After a
  resume from an older checkpoint that would drop every later save, so :meth:`save` first deletes the
  saved steps ``>= step`` (with a warning) and raises :class:`CheckpointError` if orbax still declines.
* A latest checkpoint that cannot be read (a truncated or deleted file) makes :meth:`restore` (without
  an explicit step) fall back to the next older one with a ``warnings.warn``; if none can be read it
  raises :class:`CheckpointError`.
* A failed restore reports orbax's first error; the other per-array read tasks that failed with it are
  not logged by asyncio as "exception was never retrieved" when they are garbage collected (a filter on
  the ``asyncio`` logger that drops only those records, and only for tasks failed in orbax's code).
* Leaves may be jax arrays (typed PRNG keys included), numpy arrays, numpy scalars, python
  ``int``/``float``/``bool`` and ``None``; empty containers (``optax.EmptyState()``) are fine.
  Zero-size arrays cannot be saved (an orbax limitation).

This module knows nothing about what it saves.
"""

from __future__ import annotations

import gc
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "Checkpointer"]

_STATE = "state"
_METADATA = "metadata"


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved or restored (the message is one line)."""


class _OrbaxUnretrievedTaskFilter(logging.Filter):
    """Drops asyncio's "exception was never retrieved" record of a task that failed in orbax's code.

    Orbax restores a pytree by gathering one task per array. When several fail (every array of a wider
    network, say), the gather raises the first error, which :meth:`Checkpointer.restore` reports, and the
    others stay unretrieved until the garbage collector logs each one, at no fixed time, even at exit.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "exception was never retrieved" not in record.getMessage() or not record.exc_info:
            return True
        tb = record.exc_info[2]
        while tb is not None:
            if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("orbax."):
                return False
            tb = tb.tb_next
        return True


logging.getLogger("asyncio").addFilter(_OrbaxUnretrievedTaskFilter())


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > limit:
        first = first[:limit] + "..."
    return f"{type(err).__name__}: {first}"


def _json_safe(obj: Any) -> Any:
    """Metadata to plain JSON types (numpy/jax scalars, Paths and tuples included)."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
        return _json_safe(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no NaN/inf
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint metadata value {obj!r} of type {type(obj).__name__} is not JSON-serialisable")


def _is_np_scalar(x: Any) -> bool:
    return isinstance(x, np.generic)


def _conform(raw: Any, target: Any, path: str, filled: list[str]) -> Any:
    """A target-less restore (nested dicts/lists by field name) in the structure of ``target``: NamedTuple fields
    and dict keys that the checkpoint lacks (written before they existed) are taken from ``target`` and, when they
    hold arrays, named in ``filled``; anything else that differs (a missing list item, a shape or dtype) raises
    ValueError."""
    if target is None:
        return None
    if isinstance(target, tuple) and hasattr(target, "_fields") or isinstance(target, dict):
        keys = target._fields if isinstance(target, tuple) else list(target)
        raw = raw if isinstance(raw, dict) else {}
        values = {}
        for key in keys:
            value = target[key] if isinstance(target, dict) else getattr(target, key)
            if key in raw:
                values[key] = _conform(raw[key], value, f"{path}.{key}", filled)
            else:  # named only if it holds arrays: an unused (None) field has nothing to start from
                if jax.tree.leaves(value):
                    filled.append(f"{path}.{key}".lstrip("."))
                values[key] = value
        return type(target)(**values) if isinstance(target, tuple) else values
    if isinstance(target, (list, tuple)):
        if not isinstance(raw, (list, tuple)) or len(raw) != len(target):
            raise ValueError(f"{path}: {len(target)} items expected")
        return type(target)(_conform(r, t, f"{path}[{i}]", filled) for i, (r, t) in enumerate(zip(raw, target)))
    if isinstance(target, (bool, int, float)):
        return type(target)(np.asarray(raw)[()])
    raw = np.asarray(raw)
    if raw.shape != tuple(target.shape) or raw.dtype != target.dtype:
        raise ValueError(f"{path}: {raw.dtype}{list(raw.shape)} where {target.dtype}{list(target.shape)} is expected")
    return jax.numpy.asarray(raw) if isinstance(target, jax.Array) else raw


def _leaf_shapes(tree: Any) -> dict[tuple, tuple]:
    """{path of field names / keys / indices: shape} of a pytree's array leaves (typed PRNG keys left out)."""
    def name(k: Any) -> Any:
        return next(getattr(k, a) for a in ("key", "name", "idx") if hasattr(k, a))
    return {tuple(name(k) for k in path): tuple(x.shape) for path, x in jax.tree_util.tree_leaves_with_path(tree)
            if getattr(x, "shape", None) is not None and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)}


def _shape_mismatch(step_dir: Path, target: Any) -> str | None:
    """The first array of ``target`` whose shape differs from the one stored in the checkpoint ``step_dir`` (a
    config that changed a network's width, say), as a message; None when they agree or the metadata cannot be
    read."""
    try:
        stored = _leaf_shapes(ocp.StandardCheckpointHandler().metadata(step_dir / _STATE).tree)
    except Exception:  # noqa: BLE001 - unreadable metadata: the restore itself reports it
        return None
    for path, shape in _leaf_shapes(target).items():
        if path in stored and stored[path] != shape:
            where = ".".join(map(str, path))
            return f"{where}: stored shape {list(stored[path])} where {list(shape)} is expected"
    return None


def _to_savable(tree: Any) -> Any:
    # Orbax saves a numpy scalar but cannot use one as a restore target: store them as 0-d arrays.
    return jax.tree.map(lambda x: np.asarray(x) if _is_np_scalar(x) else x, tree)


class Checkpointer:
    """Save and restore pytrees under ``<run_dir>/checkpoints/<step>/``, keeping the newest ``max_to_keep``.

    Args:
        run_dir: the run directory (created if missing).
        max_to_keep: how many checkpoints to keep (older ones are deleted after each save); ``None`` keeps all.
        async_save: save in a background thread (see the module docstring); default synchronous.

    Attributes:
        directory: ``<run_dir>/checkpoints``.
        restored_step: the step the last :meth:`restore` actually read (``None`` before any restore).
    """

    def __init__(self, run_dir: str | Path, max_to_keep: int | None = 3, *, async_save: bool = False):
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1 or None, got {max_to_keep}")
        self.directory = Path(run_dir).expanduser().resolve() / "checkpoints"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.restored_step: int | None = None
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                enable_async_checkpointing=async_save,
                cleanup_tmp_directories=True,
                create=True,
            ),
            item_names=(_STATE, _METADATA),
        )

    # ------------------------------------------------------------------ queries
    def all_steps(self) -> list[int]:
        """The saved steps, ascending (including any that turn out unreadable)."""
        return sorted(int(s) for s in self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest saved step, or ``None`` if there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    # --------------------------------------------------------------------- save
    def save(self, step: int, pytree: Any, metadata: Mapping[str, Any] | None = None) -> Path:
        """Save ``pytree`` (and the small JSON dict ``metadata``) as checkpoint ``step``; returns its directory.

        Existing checkpoints at steps ``>= step`` are deleted first (with a warning): they are stale,
        e.g. after resuming from an older checkpoint.
        """
        step = int(step)
        if step < 0:
            raise ValueError(f"checkpoint step must be >= 0, got {step}")
        meta = _json_safe(dict(metadata) if metadata is not None else {})
        self._manager.wait_until_finished()
        stale = [s for s in self.all_steps() if s >= step]
        if stale:
            warnings.warn(
                f"deleting checkpoints at steps {stale} in {self.directory} before saving step {step}",
                stacklevel=2,
            )
            for s in stale:
                self._manager.delete(s)
        try:
            saved = self._manager.save(
                step,
                args=ocp.args.Composite(
                    **{_STATE: ocp.args.StandardSave(_to_savable(pytree)), _METADATA: ocp.args.JsonSave(meta)}
                ),
            )
        except Exception as err:
            raise CheckpointError(f"saving step {step} to {self.directory} failed: {_one_line(err)}") from err
        if not saved:
            raise CheckpointError(f"orbax declined to save step {step} in {self.directory} (latest: {self.latest_step()})")
        return self.directory / str(step)

    # ------------------------------------------------------------------ restore
    def restore(self, step: int | None = None, target: Any = None) -> tuple[Any, dict]:
        """Read checkpoint ``step`` (default: the newest readable one) and return ``(pytree, metadata)``.

        ``target`` is a pytree like the saved one (arrays, ``jax.ShapeDtypeStruct``s or python scalars) that
        gives the structure (NamedTuples, dataclass pytrees), dtypes and shardings of the result; without it
        the pytree comes back as nested dicts/lists of arrays and python scalars.

        With ``step=None`` an unreadable checkpoint is skipped with a warning and the next older one is
        tried. Raises :class:`CheckpointError` if there is no checkpoint, the given step does not exist or
        cannot be read, or no checkpoint can be read.
        """
        self._manager.wait_until_finished()
        steps = self.all_steps()
        if not steps:
            raise CheckpointError(f"no checkpoints in {self.directory}")
        if step is not None:
            step = int(step)
            if step not in steps:
                raise CheckpointError(f"no checkpoint at step {step} in {self.directory} (saved steps: {steps})")
            candidates = [step]
        else:
            candidates = steps[::-1]

        restore_target = _to_savable(target) if target is not None else None
        errors: list[str] = []
        for s in candidates:
            mismatch = _shape_mismatch(self.directory / str(s), restore_target) if target is not None else None
            try:
                if mismatch:  # orbax would fail on it in one async task per array, leaving the rest unretrieved
                    raise ValueError(mismatch)
                restored = self._manager.restore(
                    s,
                    args=ocp.args.Composite(
                        **{_STATE: ocp.args.StandardRestore(restore_target), _METADATA: ocp.args.JsonRestore()}
                    ),
                )
                tree, meta = restored[_STATE], restored[_METADATA]
            except Exception as err:  # orbax/tensorstore raise many types (ValueError, KeyError, bare Exception)
                failure = _one_line(err)
                if target is not None and not mismatch:  # written by an older version, with fewer fields?
                    tree, meta = self._restore_older(s, target)
                    failure = None if tree is not None else failure
            else:
                failure = None
            if failure is not None:
                errors.append(f"step {s}: {failure}")
                # A failed orbax restore leaves un-awaited coroutines behind; collect them now, quietly,
                # rather than have "coroutine ... was never awaited" surface at some random later point.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    gc.collect()
                continue
            if errors:  # warn once, and only when a fallback actually succeeded
                warnings.warn(f"unreadable checkpoint(s) in {self.directory} skipped ({'; '.join(errors)}); "
                              f"restored step {s}", stacklevel=2)
            if target is not None and any(_is_np_scalar(x) for x in jax.tree.leaves(target)):
                tree = jax.tree.map(lambda t, x: type(t)(np.asarray(x)[()]) if _is_np_scalar(t) else x, target, tree)
            self.restored_step = s
            return tree, dict(meta or {})
        raise CheckpointError(f"no readable checkpoint in {self.directory}: " + "; ".join(errors))

    def _restore_older(self, step: int, target: Any) -> tuple[Any, Any]:
        """Restore without a target and conform to ``target``, filling fields the checkpoint lacks from it (with a
        warning naming them); ``(None, None)`` when that fails too."""
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                **{_STATE: ocp.args.StandardRestore(None), _METADATA: ocp.args.JsonRestore()}))
            filled: list[str] = []
            tree = _conform(restored[_STATE], target, "", filled)
        except Exception:
            return None, None
        if filled:
            warnings.warn(f"checkpoint step {step} in {self.directory} predates field(s) {', '.join(filled)}; "
                          "they start from their initial values", stacklevel=3)
        return tree, restored[_METADATA]

    # ---------------------------------------------------------------- lifecycle
    def wait(self) -> None:
        """Block until any asynchronous save has finished (a no-op for synchronous saves)."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release orbax's resources."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
