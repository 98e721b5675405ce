"""One trial: a normal `simpo train` run in a thread; its eval rows and checkpoints reported to Ray Tune.

When Tune restores a failed trial from its last checkpoint (a tiny folder naming the run directory and step), the
run continues with `train(config, resume=True)`, which is exact (see `simpo.train.train`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from simpo.sweep.space import TrialBuilder

TRIAL_FILE = "simpo_trial.json"


def _members(config) -> list[Path]:
    """The run directories a trial writes: its run dir, or RUN_DIR/seed{K} with --seeds (simpo.rundir)."""
    return [config.run_dir / f"seed{k}" for k in config.seeds] if config.seeds else [config.run_dir]


def _rows(run_dir: Path) -> dict[int, dict[str, float]]:
    """The complete (newline-ended) rows of RUN_DIR/metrics.csv, by env_step; numeric cells only."""
    try:
        lines = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return {}
    rows = {}
    for row in csv.DictReader(line for line in lines if line.endswith("\n")):
        cells = {}
        for key, value in row.items():
            try:
                cells[key] = float(value)
            except (TypeError, ValueError):
                pass
        if "env_step" in cells:
            rows[int(cells["env_step"])] = cells
    return rows


def _saved(run_dir: Path) -> set[int]:
    """The steps of a run's finished orbax checkpoints (an unfinished one has a temporary name)."""
    ckpt = run_dir / "checkpoints"
    return {int(p.name) for p in ckpt.iterdir() if p.name.isdigit()} if ckpt.is_dir() else set()


def poll(config) -> tuple[dict[int, dict[str, float]], set[int]]:
    """(the eval rows every member run has, averaged over the members; the checkpoint steps they all have)."""
    members = [_rows(d) for d in _members(config)]
    steps = set(members[0]).intersection(*members[1:])
    rows = {s: {k: sum(m[s].get(k, 0.0) for m in members) / len(members) for k in members[0][s]} for s in steps}
    return rows, set.intersection(*(_saved(d) for d in _members(config)))


def trainable(params: dict[str, Any], builder: TrialBuilder) -> None:
    """A Tune function trainable: train in a thread, report each new eval row (and checkpoint) to Tune."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # trials may share a GPU
    from ray import tune

    from simpo.train import train

    config = builder.config(params, tune.get_context().get_trial_id())
    start = 0
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder:
            start = json.loads((Path(folder) / TRIAL_FILE).read_text())["env_step"]
        if not poll(config)[1]:
            raise RuntimeError(f"the trial's checkpoint says step {start}, but {config.run_dir} has no checkpoints: "
                               "--out must be on storage that every node can reach")
    config = dataclasses.replace(config, overwrite=start == 0)  # a trial restarted from scratch starts over
    failure: list[BaseException] = []

    def work():
        try:
            train(config, resume=start > 0)
        except BaseException as err:  # re-raised in the trainable's thread, so Tune sees it
            failure.append(err)

    thread = threading.Thread(target=work, name="simpo-train", daemon=True)
    thread.start()
    reported, checkpointed = start, start
    while True:
        running = thread.is_alive()  # read before the files: the last pass sees everything
        rows, saved = poll(config)
        for step in sorted(s for s in rows if s > reported):
            due = step % config.checkpoint_interval == 0 or step == config.total_steps
            if running and due and step not in saved:
                break  # this eval's checkpoint is being written: report them together
            metrics = {**rows[step], "env_step": step, "total_steps": config.total_steps, "resumed_from": start}
            newer = [s for s in saved if checkpointed < s <= step]
            if newer:
                checkpointed = max(newer)
                _report_checkpoint(tune, metrics, config.run_dir, checkpointed)
                _maybe_kill(builder.kill_marker)
            else:
                tune.report(metrics)
            reported = step
        if not running:
            break
        thread.join(1.0)
    if failure:
        raise failure[0]


def _report_checkpoint(tune, metrics: dict, run_dir: Path, step: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / TRIAL_FILE).write_text(json.dumps({"run_dir": str(run_dir), "env_step": step}))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _maybe_kill(marker: str | None) -> None:
    """Fault injection for the failure test: the first trial to create `marker` kills its own worker."""
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        time.sleep(1.0)  # let the driver register the checkpoint just reported
        os.kill(os.getpid(), signal.SIGKILL)
