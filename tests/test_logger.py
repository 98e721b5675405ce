"""RunLogger (metrics.csv + TensorBoard) and config.json round trips."""

import csv
import dataclasses
import enum
import json
import struct
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from simpo.logger import REQUIRED_COLUMNS, RunLogger, read_config, write_config


def read_csv(run_dir):
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def read_tb_scalars(run_dir):
    """{tag: [(step, value), ...]} from the TFRecord event files under run_dir/tb, oldest file first, as TensorBoard
    shows them (no tensorboard needed): a SessionLog START event at step S hides the points logged before it at
    steps >= S (TensorBoard's purge of a restarted run)."""
    from tensorboardX.proto import event_pb2

    out = {}
    for path in sorted((Path(run_dir) / "tb").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime_ns):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            if event.session_log.status == event_pb2.SessionLog.START:
                out = {tag: [(s, v) for s, v in points if s < event.step] for tag, points in out.items()}
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def row(step, **extra):
    base = dict(
        env_step=step, wall_time_s=1.5 * step, eval_return_mean=np.float32(10.0 + step),
        eval_return_std=2.0, eval_return_single_mean=9.0, train_sps=100.0,
    )
    return {**base, **extra}


def test_csv_rows_and_tensorboard(tmp_path):
    with RunLogger(tmp_path, columns_hint=["eval_length"]) as log:
        for step in (1000, 2000):
            log.log(step, {"loss/critic": np.float32(0.5), "lambda": 2.0, "skip_me": np.ones(3)})
            log.log_row(row(step, eval_length=1000))
            # flushed after each row: readable while the logger is still open
            assert len(read_csv(tmp_path)[1]) == step // 1000
    header, rows = read_csv(tmp_path)
    assert header == [*REQUIRED_COLUMNS, "eval_length"]
    assert [float(r[0]) for r in rows] == [1000, 2000]
    assert float(rows[1][header.index("eval_return_mean")]) == 2010.0
    scalars = read_tb_scalars(tmp_path)
    assert set(scalars) == {"loss/critic", "lambda"}
    assert scalars["lambda"] == [(1000, 2.0), (2000, 2.0)]


def test_reopen_appends_under_existing_header(tmp_path):
    with RunLogger(tmp_path, use_tensorboard=False) as log:
        log.log_row(row(1))
    with RunLogger(tmp_path, use_tensorboard=False) as log:
        log.log_row(row(2))
        log.log_row(row(3))
    header, rows = read_csv(tmp_path)
    assert header == list(REQUIRED_COLUMNS)
    assert [r[0] for r in rows] == ["1", "2", "3"]


def test_new_key_widens_header_keeping_rows(tmp_path):
    with RunLogger(tmp_path, use_tensorboard=False) as log:
        log.log_row(row(1, a=1.0))
        log.log_row(row(2, b=5))
        log.log_row(row(3))  # missing extras: empty cells
    header, rows = read_csv(tmp_path)
    assert header == [*REQUIRED_COLUMNS, "a", "b"]
    assert [r[-2:] for r in rows] == [["1.0", ""], ["", "5"], ["", ""]]
    # reopening with a wider hint widens the header at the next row
    with RunLogger(tmp_path, columns_hint=["c"], use_tensorboard=False) as log:
        log.log_row(row(4, c=7))
    header, rows = read_csv(tmp_path)
    assert header[-1] == "c" and len(rows) == 4 and rows[-1][-1] == "7"


def test_row_validation(tmp_path):
    with RunLogger(tmp_path, use_tensorboard=False) as log:
        with pytest.raises(ValueError, match="env_step"):
            log.log_row({"eval_return_mean": 1.0})
        with pytest.warns(UserWarning, match="train_sps"):
            log.log_row({k: v for k, v in row(1).items() if k != "train_sps"})
    header, rows = read_csv(tmp_path)
    assert rows[0][header.index("train_sps")] == ""


def test_partial_last_line_and_drop_rows_after(tmp_path):
    with RunLogger(tmp_path, use_tensorboard=False) as log:
        for step in (1, 2, 3):
            log.log_row(row(step))
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("4,6.0,1")  # a run killed mid-write
    with pytest.warns(UserWarning, match="partial last line"):
        log = RunLogger(tmp_path, use_tensorboard=False)
    assert log.drop_rows_after(2) == 1  # resumed from a checkpoint at env_step 2
    log.log_row(row(3))
    log.close()
    assert [r[0] for r in read_csv(tmp_path)[1]] == ["1", "2", "3"]


def test_a_resumed_logger_hides_the_scalars_logged_past_its_checkpoint(tmp_path):
    with RunLogger(tmp_path) as logger:  # the killed run: logged up to 300, its checkpoint was at 200
        for step in (100, 200, 300):
            logger.log(step, {"loss": float(step)})
    with RunLogger(tmp_path, purge_step=201) as logger:  # resumed from 200: logs 300 again
        logger.log(300, {"loss": -3.0})
    assert read_tb_scalars(tmp_path)["loss"] == [(100, 100.0), (200, 200.0), (300, -3.0)]


def test_each_logger_is_a_wandb_run_of_its_own(tmp_path, monkeypatch):
    class Run:  # W&B's documented default: a second init in a process finishes the active run
        def __init__(self, **kwargs):
            self.kwargs, self.finished, self.logged = kwargs, False, []

        def log(self, scalars, step):
            assert not self.finished, "log on a finished W&B run"
            self.logged.append((step, scalars))

        def finish(self):
            self.finished = True

    class FakeWandb:
        active: Run | None = None

        @classmethod
        def init(cls, reinit="default", **kwargs):
            if cls.active is not None and reinit != "create_new":
                cls.active.finish()
            run = Run(**kwargs)
            cls.active = cls.active if reinit == "create_new" and cls.active else run
            return run

    monkeypatch.setitem(sys.modules, "wandb", FakeWandb)
    loggers = [RunLogger(tmp_path / f"seed{s}", use_tensorboard=False, wandb_project="p") for s in (0, 1)]
    for i, logger in enumerate(loggers):
        logger.log(10, {"x": float(i)})
    assert [logger._wandb_run.logged for logger in loggers] == [[(10, {"x": 0.0})], [(10, {"x": 1.0})]]
    assert [logger._wandb_run.kwargs["name"] for logger in loggers] == ["seed0", "seed1"]


def test_wandb_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    with pytest.raises(ImportError, match="pip install wandb"):
        RunLogger(tmp_path, use_tensorboard=False, wandb_project="simpo")


class Scheme(enum.Enum):
    EXP = "exp"


@dataclasses.dataclass(frozen=True)
class Inner:
    hidden: tuple[int, ...] = (256, 256)
    scheme: Scheme = Scheme.EXP


@dataclasses.dataclass(frozen=True)
class Config:
    algo: str = "simpo"
    seed: int = 0
    lr: float = 3e-4
    out: Path = Path("/tmp/runs/x")
    inner: Inner = Inner()
    g: Callable = np.tanh
    scale: np.float32 = np.float32(0.5)


def test_config_round_trip(tmp_path):
    path = write_config(tmp_path, Config())
    text = path.read_text()
    assert json.loads(text) == read_config(tmp_path)
    cfg = read_config(tmp_path)
    assert cfg["inner"] == {"hidden": [256, 256], "scheme": "exp"}
    assert cfg["out"] == "/tmp/runs/x" and cfg["lr"] == 3e-4 and cfg["scale"] == 0.5
    assert cfg["g"] == "numpy.tanh"
    assert list(cfg) == sorted(cfg)  # sorted keys
    with pytest.raises(FileNotFoundError, match="config.json"):
        read_config(tmp_path / "nope")
    with pytest.raises(TypeError):
        write_config(tmp_path, Config)  # the class, not an instance


@pytest.mark.parametrize("algo, agent_flags", [
    ("simpo", {"weighting": "signed_linear"}),  # the default floor is -inf, saved as the string "-inf"
    ("simpo", {"weighting": "exp"}), ("dpmd", {}), ("qvpo", {}), ("sac", {})])
def test_a_saved_train_config_reads_back_equal(tmp_path, algo, agent_flags):
    from simpo.agents.simpo_agent import SiMPOConfig
    from simpo.evaluation import read_run_config
    from simpo.rundir import run_config_dict
    from simpo.temperature import TemperatureConfig
    from simpo.train_config import default_config

    config = default_config(algo, "fast", "Pendulum-v1")
    if agent_flags:
        config = dataclasses.replace(config, agent=SiMPOConfig(temperature=TemperatureConfig(target="ess"),
                                                               **agent_flags))
    config = dataclasses.replace(config, run_dir=tmp_path)
    (tmp_path / "checkpoints").mkdir()
    write_config(tmp_path, run_config_dict(config))
    assert read_run_config(tmp_path) == config  # the other algo's config is not saved: it reads back as its default
