"""Learning curves from run directories (``metrics.csv`` + optional ``config.json``), one PNG.

Runs are grouped (seeds of one configuration) by a label; each group is drawn as the mean over its runs
against env steps, with a shaded band: a 95% percentile bootstrap interval of the mean where at least 3 runs have
data, the min–max range where 2 do (a t-interval from 2 runs spans ±12.7·SEM, and ±1.96·SEM would cover far less
than 95%), none where one does. The legend says which, per group. With few runs the percentile bootstrap covers
less than 95% too (simulated on normal data: 0.75 at 3 runs, 0.80 at 4, 0.83 at 5, 0.90 at 10; at 3 runs it is the
min–max of the runs, since all three draws are the lowest run with probability 1/27 > 2.5%): the legend says so
where the band comes from fewer than 5 runs.

Runs of one group need not share evaluation steps: each run is linearly interpolated onto the union of
the group's steps, within its own range only (no extrapolation), so the statistics at a step use the
runs that reached it; the mean is drawn dashed where only some of the group's runs have data. Rows with
a repeated ``x`` (a resumed run) keep the last one.

Command line: ``python -m simpo.plot RUNS_OR_PARENT_DIRS... --out curves.png [--metric M]``.
Rendering uses matplotlib's Agg canvas directly (no pyplot, no global backend change).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = ["default_label", "expand_run_dirs", "load_run", "plot_learning_curves"]

METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.json"

GroupBy = str | Callable[[Path, dict], str] | None


# --------------------------------------------------------------------------------------- loading
def expand_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories from ``paths``: a path with a ``metrics.csv`` is a run; any other directory is
    searched (recursively) for runs. Order is preserved, subdirectories sorted, duplicates removed."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / METRICS_FILE).is_file():
            runs.append(p)
        elif p.is_dir():
            found = sorted(m.parent for m in p.rglob(METRICS_FILE))
            if not found:
                raise FileNotFoundError(f"no run directories (with {METRICS_FILE}) under {p}")
            runs.extend(found)
        else:
            raise FileNotFoundError(f"{p} is not a directory")
    unique: dict[Path, Path] = {}
    for run in runs:  # one run named twice (relative and absolute, or through a link) is one run
        unique.setdefault(run.resolve(), run)
    return list(unique.values())


def load_run(run_dir: str | Path, metric: str = "eval_return_mean", x: str = "env_step") -> tuple[np.ndarray, np.ndarray]:
    """``(xs, ys)`` of one run, sorted by x, rows with an empty/non-numeric cell dropped, repeated x keep
    the last row."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir}")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty")
        for col in (x, metric):
            if col not in header:
                raise ValueError(f"{path} has no column {col!r}; columns: {', '.join(header)}")
        ix, iy = header.index(x), header.index(metric)
        points: dict[float, float] = {}
        for row in reader:
            try:
                xv, yv = float(row[ix]), float(row[iy])
            except (ValueError, IndexError):
                continue
            if np.isfinite(xv) and np.isfinite(yv):
                points.pop(xv, None)
                points[xv] = yv  # a later row with the same x (resumed run) wins
    if not points:
        raise ValueError(f"{path} has no rows with numeric {x!r} and {metric!r}")
    xs = np.array(sorted(points))
    return xs, np.array([points[v] for v in xs])


def _read_config(run_dir: Path) -> dict:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------------------- labels
def _find_key(tree: Any, key: str) -> Any:
    """The value of ``key`` in a nested dict: top level first, then breadth-first."""
    queue = [tree]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            if key in node:
                return node[key]
            queue.extend(node.values())
    return None


_SEED_SUFFIX = re.compile(r"[_\-.]?seed[_\-=]?\d+$|[_\-]s\d+$", re.IGNORECASE)


def default_label(run_dir: Path, config: dict) -> str:
    """``f"{algo}/{weighting}"`` from ``config.json`` (keys looked up at any nesting depth, whichever exist),
    else the directory name without a seed suffix (``_seed3``, ``-s3``; a bare ``seed3`` uses the parent)."""
    parts = [_find_key(config, k) for k in ("algo", "weighting")]
    parts = [str(p) for p in parts if p is not None and not isinstance(p, (dict, list))]
    if parts:
        return "/".join(parts)
    name = _SEED_SUFFIX.sub("", run_dir.name)
    if not name:
        name = run_dir.resolve().parent.name
    return name


class _Fields(dict):
    """``str.format_map`` namespace: ``{a.b}`` reaches into nested dicts; unknown names raise KeyError."""

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        return _Fields(value) if isinstance(value, dict) else value

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _label_fn(group_by: GroupBy) -> Callable[[Path, dict], str]:
    if group_by is None:
        return default_label
    if callable(group_by):
        return group_by
    if group_by == "dir":
        return lambda run_dir, config: run_dir.name

    def label(run_dir: Path, config: dict) -> str:
        try:
            return group_by.format_map(_Fields(config, dir=run_dir.name, parent=run_dir.parent.name))
        except (KeyError, AttributeError) as err:
            raise ValueError(f"group_by {group_by!r}: {run_dir} has no config field {err}") from None

    return label


# ----------------------------------------------------------------------------------- statistics
def _band(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """The band at one step: 95% percentile-bootstrap interval of the mean (n >= 3), min-max (n = 2), the value
    (n = 1)."""
    n = len(values)
    if n < 3:
        return float(values.min()), float(values.max())
    means = values[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _group_curve(curves: Sequence[tuple[np.ndarray, np.ndarray]], n_boot: int, rng: np.random.Generator):
    grid = np.unique(np.concatenate([xs for xs, _ in curves]))
    table = np.full((len(curves), len(grid)), np.nan)
    for i, (xs, ys) in enumerate(curves):
        inside = (grid >= xs[0]) & (grid <= xs[-1])
        table[i, inside] = np.interp(grid[inside], xs, ys)
    mean, lo, hi = (np.empty(len(grid)) for _ in range(3))
    for j in range(len(grid)):
        col = table[:, j][~np.isnan(table[:, j])]
        mean[j] = col.mean()
        lo[j], hi[j] = _band(col, n_boot, rng)
    return grid, mean, lo, hi, (~np.isnan(table)).sum(axis=0)


def band_label(count: np.ndarray) -> str:
    """What a group's band is, from how many runs have data at each step (`count`): the one kind of band where there
    is one, else each kind with the run counts it holds for (steps where some runs have ended). Where the bootstrap
    CI comes from fewer than 5 runs, it says that it covers less than 95% (and is the min–max at 3 runs)."""
    caveat = ", ".join([*(["covers < 95% with < 5 runs"] if ((count >= 3) & (count < 5)).any() else []),
                        *(["= min–max at 3"] if (count == 3).any() else [])])
    kinds = [(name, cond) for name, cond, present in (
        ("95% percentile-bootstrap CI", "≥3 runs", (count >= 3).any()), ("min–max", "2", (count == 2).any()),
        ("no band", "1", (count == 1).any())) if present]
    parts = []
    for name, cond in kinds:
        notes = ([cond] if len(kinds) > 1 else []) + ([caveat] if caveat and cond == "≥3 runs" else [])
        parts.append(name + (f" ({'; '.join(notes)})" if notes else ""))
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------- plotting
def plot_learning_curves(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    metric: str = "eval_return_mean",
    x: str = "env_step",
    group_by: GroupBy = None,
    *,
    title: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    skip_invalid: bool = False,
) -> Path:
    """Plot ``metric`` against ``x`` for the runs in ``run_dirs`` (run directories, or parents of runs),
    grouped by label, to the PNG ``out``; returns ``out``.

    ``group_by``: ``None`` for :func:`default_label` (``algo/weighting`` from config.json, else the
    directory name minus a seed suffix); ``"dir"`` for the directory name; a format string over the
    config fields (``"{algo}/{agent.weighting}"``; also ``{dir}``, ``{parent}``); or a callable
    ``(run_dir, config) -> label``. ``skip_invalid=True`` skips (with a warning) runs whose
    ``metrics.csv`` is missing or has no rows instead of raising.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not run_dirs:
        raise ValueError("plot_learning_curves: no run directories given")
    out = _check_out(Path(out))
    runs = expand_run_dirs(run_dirs) if not skip_invalid else _expand_lenient(run_dirs)
    label_of = _label_fn(group_by)

    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for run in runs:
        try:
            curve = load_run(run, metric, x)
        except (FileNotFoundError, ValueError) as err:
            if not skip_invalid:
                raise
            warnings.warn(f"skipping {run}: {err}", stacklevel=2)
            continue
        groups.setdefault(label_of(run, _read_config(run)), []).append(curve)
    if not groups:
        raise ValueError(f"no run with {metric!r} data among {len(runs)} run director{'y' if len(runs) == 1 else 'ies'}")

    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    for i, label in enumerate(sorted(groups)):
        curves = groups[label]
        grid, mean, lo, hi, count = _group_curve(curves, n_boot, rng)
        n = len(curves)
        band = band_label(count)
        color = colors[i % len(colors)]
        full = count == n  # solid where every run of the group has data, dashed where only some have
        ax.plot(grid, np.where(full, mean, np.nan), color=color, lw=1.8, label=f"{label} (n={n}, {band})")
        if not full.all():
            partial = ~full
            partial[:-1] |= ~full[1:]  # include the neighbouring full points so the segments join
            partial[1:] |= ~full[:-1]
            ax.plot(grid, np.where(partial, mean, np.nan), color=color, lw=1.2, ls="--")
        if n >= 2:
            ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric}: mean over seeds; band: 95% percentile-bootstrap CI of the mean (≥3 runs; "
                 "< 95% with < 5), min–max (2)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _check_out(out: Path) -> Path:
    """Refuse, before any work, an output path that cannot be written (one-line ValueError)."""
    if out.is_dir():
        raise ValueError(f"out {out} is a directory; give a file name such as {out / 'learning_curves.png'}")
    if out.exists() and out.suffix.lower() != ".png":  # the plot is a PNG: never write it over a run's own files
        raise ValueError(f"out {out} exists and is not a .png; the plot would replace it: give a new or .png file name")
    ancestor = out.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot write {out}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ValueError(f"cannot write {out}: {out if out.exists() else ancestor} is not writable")
    return out


def _expand_lenient(paths: Iterable[str | Path]) -> list[Path]:
    runs: list[Path] = []
    for p in paths:
        try:
            runs.extend(expand_run_dirs([p]))
        except FileNotFoundError as err:
            warnings.warn(f"skipping {p}: {err}", stacklevel=3)
    return list(dict.fromkeys(runs))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simpo.plot", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or parents of run directories")
    parser.add_argument("--out", type=Path, default=Path("learning_curves.png"))
    parser.add_argument("--metric", default="eval_return_mean")
    parser.add_argument("--x", default="env_step")
    parser.add_argument("--group-by", default=None, help='"dir" or a format string like "{algo}/{weighting}"')
    parser.add_argument("--title", default=None)
    parser.add_argument("--skip-invalid", action="store_true")
    args = parser.parse_args(argv)
    out = plot_learning_curves(
        args.runs, args.out, args.metric, args.x, args.group_by, title=args.title, skip_invalid=args.skip_invalid
    )
    print(out)


if __name__ == "__main__":
    main()
