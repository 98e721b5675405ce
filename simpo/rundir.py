"""Run directories: refuse unusable ones before anything is written, create them, and lay out seed groups.

A single-seed run is one directory (config.json, metrics.csv, tb/, checkpoints/). A multi-seed run
(`--seeds 0 1 2`) is a group directory holding the group's config.json and one ordinary run directory
per seed, `seed{K}/`, each resumable, evaluable and plottable on its own.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
from pathlib import Path


def check_run_dir(config) -> Path:
    """Refuse (one-line ValueError, nothing written) a run directory that cannot be used: a file, a non-empty
    directory without --overwrite, or a path that cannot be created or written; and --track without wandb."""
    if config.track and importlib.util.find_spec("wandb") is None:
        raise ValueError("--track needs Weights & Biases: pip install wandb (or drop --track)")
    run_dir = config.resolved_run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run directory {run_dir} exists and is not a directory; choose another --run-dir")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not config.overwrite:
        raise ValueError(f"run directory {run_dir} is not empty; pass --overwrite or choose another --run-dir")
    if config.overwrite:  # what --overwrite deletes must be a run: never the working directory or a folder of files
        here = Path.cwd().resolve()
        for path in (c.resolved_run_dir for c in seed_configs(config)):
            if path.is_dir() and any(path.iterdir()):
                if path.resolve() == here or path.resolve() in here.parents:
                    raise ValueError(f"--overwrite would delete {path}, which holds the current directory; "
                                     "choose another --run-dir")
                if not (path / "config.json").is_file():
                    raise ValueError(f"run directory {path} is not empty and holds no simpo run (no config.json); "
                                     "--overwrite replaces runs only: empty it yourself or choose another --run-dir")
    # The nearest existing ancestor must be a writable directory (and the run dir's parent too, to replace it).
    ancestor = run_dir if run_dir.is_dir() and not config.overwrite else run_dir.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot create run directory {run_dir}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create run directory {run_dir}: {ancestor} is not writable")
    return run_dir


def prepare_run_dir(config) -> Path:
    """Create the run directory. With `overwrite` it is replaced; for a seed group (`--seeds`) only the asked seeds'
    runs (GROUP/seed{K}) are, so a study cell that adds seeds keeps the ones it already has."""
    run_dir = check_run_dir(config)
    try:
        if run_dir.exists() and config.overwrite:
            for path in (c.resolved_run_dir for c in seed_configs(config)):  # the run itself when no --seeds
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create run directory {run_dir}: {err.strerror or err}") from err
    return run_dir


def run_config_dict(config) -> dict:
    """config.json content: the agent config of the chosen algo only."""
    d = dataclasses.asdict(config)
    d.pop("sac" if config.algo != "sac" else "agent")
    return d


def seed_configs(config) -> list:
    """The single-seed configs of a run: itself, or one per `--seeds` entry with run_dir GROUP/seed{K}."""
    if not config.seeds:
        return [config]
    group = config.resolved_run_dir
    return [dataclasses.replace(config, seed=s, seeds=(), run_dir=group / f"seed{s}", overwrite=False)
            for s in config.seeds]
