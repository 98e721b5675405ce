"""Where a run came from: the code (simpo's version and git commit), the library versions and the machine.

Every start and every resume of a training run appends one entry to RUN_DIR/provenance.json, so a run resumed
under other code says so, and an aggregate over many runs can say which code produced them (simpo.study).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from simpo.logger import write_json

__all__ = ["FILE", "commit", "cpu", "code_and_machine", "record", "read"]

FILE = "provenance.json"
_PACKAGE_DIR = Path(__file__).resolve().parent


def commit(where: Path = _PACKAGE_DIR) -> str | None:
    """The short git commit of the checkout holding `where` (by default simpo's own source), with
    ``+uncommitted changes`` when the work tree differs from it: a changed tracked file anywhere, or a file under
    `where` that git does not track and does not ignore (a new module); None outside a git checkout or without git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()

    try:
        if where == _PACKAGE_DIR:  # an installed copy inside some other repository (a venv in a project) is no commit
            git("ls-files", "--error-unmatch", __file__)
        sha = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no") or git("ls-files", "--others",
                                                                             "--exclude-standard", "--", str(where))
        return sha + ("+uncommitted changes" if changed else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu() -> str:
    """The CPU's model name (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def code_and_machine() -> dict[str, Any]:
    """The code (simpo version and commit), the numeric libraries' versions, the machine and the time (UTC)."""
    import jax

    return {"time": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "simpo": _version("simpo"), "commit": commit(),
            **{name: _version(name) for name in ("jax", "jaxlib", "flax", "optax", "mujoco", "gymnasium", "dm_control")},
            "python": platform.python_version(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "devices": [str(d) for d in jax.devices()], "cpu": cpu(), "cores": os.cpu_count(),
            "platform": f"{platform.system()} {platform.machine()}"}


def read(run_dir: Path) -> list[dict[str, Any]]:
    """The entries of RUN_DIR/provenance.json, oldest first; [] for a run written before it existed (or unreadable)."""
    try:
        entries = json.loads((Path(run_dir) / FILE).read_text())
    except (OSError, ValueError):
        return []
    return entries if isinstance(entries, list) else []


def record(run_dir: Path, env_step: int, info: dict[str, Any] | None = None) -> Path:
    """Append an entry for a (re)start at `env_step` (0: a fresh run) to RUN_DIR/provenance.json, atomically;
    `info` is `code_and_machine()` (pass it to record several runs of one process at the cost of one)."""
    entries = [*read(run_dir), {"env_step": int(env_step), **(info or code_and_machine())}]
    return write_json(Path(run_dir) / FILE, entries)
