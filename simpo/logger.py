"""Run-directory logging: ``metrics.csv`` (one row per evaluation), TensorBoard scalars, optional W&B.

Layout of a run directory::

    <run_dir>/config.json     write_config / read_config
    <run_dir>/metrics.csv     RunLogger.log_row: one row per evaluation, flushed after every row
    <run_dir>/tb/             RunLogger.log: TensorBoard event files (tensorboardX)

CSV columns. The header is ``REQUIRED_COLUMNS``, then the ``columns_hint`` columns, then any other keys
of the first row (in their order). Declare every column you will ever log in ``columns_hint`` and the
header never changes. A row with a key that is not yet a column makes the logger rewrite the file with
the wider header (atomically: a temporary file and ``os.replace``; old rows get empty cells), so nothing
is lost. A row that lacks a column gets an empty cell; ``env_step`` is mandatory.

Reopening a run directory appends to its ``metrics.csv`` under the existing header (for resumed runs;
use :meth:`RunLogger.drop_rows_after` to drop the rows logged after the checkpoint you resumed from).

This module knows nothing about what it logs.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["REQUIRED_COLUMNS", "RunLogger", "read_config", "to_jsonable", "write_config"]

#: Columns every ``metrics.csv`` has, in this order.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "env_step",
    "wall_time_s",
    "eval_return_mean",
    "eval_return_std",
    "eval_return_single_mean",
    "train_sps",
)

METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.json"
TB_DIR = "tb"


# ------------------------------------------------------------------------------------------ values
def _scalar(value: Any) -> Any:
    """A python scalar from numpy/jax scalars and size-1 arrays; anything else unchanged."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__array__"):
        arr = np.asarray(value)
        if arr.size == 1:
            return arr.reshape(()).item()
    return value


def _cell(value: Any) -> str:
    value = _scalar(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision; nan/inf as 'nan'/'inf'
    return str(value)


# -------------------------------------------------------------------------------------- RunLogger
class RunLogger:
    """Writes ``metrics.csv`` rows and TensorBoard/W&B scalars for one run directory.

    Args:
        run_dir: the run directory (created if missing).
        columns_hint: extra CSV columns to declare up front (after ``REQUIRED_COLUMNS``).
        use_tensorboard: write :meth:`log` scalars to ``<run_dir>/tb`` with tensorboardX.
        wandb_project: also send :meth:`log` scalars to this W&B project (needs ``pip install wandb``); each
            logger is a W&B run of its own, also where one process trains several seeds.
        purge_step: a resumed run's first env step: TensorBoard hides the scalars that the run logged at this
            step or later before it stopped (a SessionLog START event; the resumed run logs those steps again).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        run_dir: str | Path,
        columns_hint: Iterable[str] | None = None,
        use_tensorboard: bool = True,
        wandb_project: str | None = None,
        purge_step: int | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / METRICS_FILE
        hint = [c for c in (columns_hint or ()) if c not in REQUIRED_COLUMNS]
        self._declared: list[str] = list(dict.fromkeys([*REQUIRED_COLUMNS, *hint]))
        self._columns: list[str] | None = self._read_existing_header()
        self._warned_missing: set[str] = set()
        self._closed = False

        self._tb = None
        if use_tensorboard:
            from tensorboardX import SummaryWriter

            # a resumed run's file is named apart: tensorboardX names files by the second and truncates a namesake
            self._tb = SummaryWriter(logdir=str(self.run_dir / TB_DIR), flush_secs=30, purge_step=purge_step,
                                     filename_suffix=f".from-step-{purge_step}" if purge_step is not None else "")

        self._wandb_run = None
        if wandb_project is not None:
            try:
                import wandb
            except ImportError:
                raise ImportError(f"wandb_project={wandb_project!r} needs W&B: pip install wandb") from None
            config = read_config(self.run_dir) if (self.run_dir / CONFIG_FILE).exists() else None
            self._wandb_run = wandb.init(
                project=wandb_project, name=self.run_dir.name, dir=str(self.run_dir), config=config,
                reinit="create_new",  # the default would finish the run of another seed in this process
            )

    # -------------------------------------------------------------------------------- scalars
    def log(self, env_step: int, metrics: Mapping[str, Any]) -> None:
        """Scalars ``metrics`` at x = ``env_step`` to TensorBoard (and W&B), under the same keys.

        Non-scalar values (arrays of size > 1, strings) are skipped.
        """
        env_step = int(env_step)
        scalars = {}
        for key, value in metrics.items():
            value = _scalar(value)
            if isinstance(value, (bool, int, float)):
                scalars[str(key)] = float(value)
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, global_step=env_step)
        if self._wandb_run is not None and scalars:
            self._wandb_run.log(scalars, step=env_step)

    # ------------------------------------------------------------------------------------ CSV
    def log_row(self, row: Mapping[str, Any], *, also_scalars: bool = False) -> None:
        """Append one row to ``metrics.csv`` and flush it to disk.

        ``row`` must have ``env_step``; missing columns are left empty, new keys widen the header (see the
        module docstring). With ``also_scalars=True`` the row's numbers also go through :meth:`log`.
        """
        if "env_step" not in row:
            raise ValueError(f"metrics row needs 'env_step'; got keys {sorted(row)}")
        row = {str(k): v for k, v in row.items()}
        missing = [c for c in REQUIRED_COLUMNS if c not in row and c not in self._warned_missing]
        if missing:
            self._warned_missing.update(missing)
            warnings.warn(f"metrics row lacks required column(s) {missing}; writing empty cells", stacklevel=2)

        if self._columns is None:  # first row of a new file: fix the columns
            self._columns = list(dict.fromkeys([*self._declared, *row]))
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f, lineterminator="\n").writerow(self._columns)
        new = [k for k in dict.fromkeys([*self._declared, *row]) if k not in self._columns]
        if new:
            self._rewrite(self._columns + new)

        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow([_cell(row.get(c)) for c in self._columns])
            f.flush()
            os.fsync(f.fileno())

        if also_scalars:
            self.log(row["env_step"], {k: v for k, v in row.items() if k != "env_step"})

    def drop_rows_after(self, env_step: int) -> int:
        """Drop the ``metrics.csv`` rows with ``env_step`` greater than the given one (for resuming from a
        checkpoint older than the last logged row); returns how many rows were dropped."""
        if self._columns is None:
            return 0
        header, rows = self._read_rows()
        idx = header.index("env_step")
        keep = [r for r in rows if not r[idx] or float(r[idx]) <= env_step]
        if len(keep) != len(rows):
            self._write_atomic(header, keep)
        return len(rows) - len(keep)

    def _read_existing_header(self) -> list[str] | None:
        if not self.csv_path.exists() or self.csv_path.stat().st_size == 0:
            return None
        with open(self.csv_path, newline="") as f:
            text = f.read()
        if not text.endswith("\n"):  # a run killed mid-write: drop the partial last line
            cut = text.rfind("\n") + 1
            warnings.warn(f"{self.csv_path}: dropping a partial last line {text[cut:]!r}", stacklevel=3)
            write_text_atomic(self.csv_path, text[:cut])
            if cut == 0:
                return None
        header = next(csv.reader(io.StringIO(text)))
        if "env_step" not in header:
            raise ValueError(f"{self.csv_path} exists but its header has no 'env_step' column: {header}")
        return header

    def _read_rows(self) -> tuple[list[str], list[list[str]]]:
        with open(self.csv_path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            return header, [r for r in reader if r]

    def _rewrite(self, columns: list[str]) -> None:
        header, rows = self._read_rows()
        pos = {c: i for i, c in enumerate(header)}
        widened = [[r[pos[c]] if c in pos and pos[c] < len(r) else "" for c in columns] for r in rows]
        self._write_atomic(columns, widened)
        self._columns = columns

    def _write_atomic(self, header: list[str], rows: list[list[str]]) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        write_text_atomic(self.csv_path, text.getvalue())

    @property
    def columns(self) -> list[str] | None:
        """The current CSV header (``None`` before the first row of a new file)."""
        return None if self._columns is None else list(self._columns)

    # ------------------------------------------------------------------------------ lifecycle
    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._tb is not None:
            self._tb.close()
        if self._wandb_run is not None:
            self._wandb_run.finish()

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ config
def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON types: dataclasses and mappings to dicts, tuples/sets to lists, Paths and
    enums to strings/values, numpy/jax scalars and arrays to numbers/lists, callables to
    ``"module.qualname"``; anything else to ``str(obj)``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else repr(obj)
    if isinstance(obj, np.generic) or hasattr(obj, "__array__"):
        return to_jsonable(np.asarray(obj).tolist())
    if isinstance(obj, type) or callable(obj):
        module = getattr(obj, "__module__", None)
        name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
        return f"{module}.{name}" if module else name
    return str(obj)


def write_config(run_dir: str | Path, config: Any) -> Path:
    """Write ``config`` (a dataclass, possibly nested, or a mapping) to ``<run_dir>/config.json`` with sorted
    keys (see :func:`to_jsonable` for the conversions); returns the path. The write is atomic."""
    if not ((dataclasses.is_dataclass(config) and not isinstance(config, type)) or isinstance(config, Mapping)):
        raise TypeError(f"write_config needs a dataclass instance or a mapping, got {type(config).__name__}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return write_json(run_dir / CONFIG_FILE, to_jsonable(config), sort_keys=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file beside it (synced), then ``os.replace``, so a reader
    (or a kill) sees the old file or the new one, never half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp")
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, obj: Any, *, sort_keys: bool = False) -> Path:
    """Write plain-JSON ``obj`` to ``path`` (indented, a final newline) atomically (:func:`write_text_atomic`)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


def read_config(run_dir: str | Path) -> dict:
    """The dict in ``<run_dir>/config.json``."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_FILE} in {run_dir}")
    with open(path) as f:
        return json.load(f)
