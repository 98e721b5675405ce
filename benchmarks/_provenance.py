"""Where a benchmark number came from: the command, the commit and the machine."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import jax


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout
        return sha + ("+uncommitted changes" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> str:
    """A Markdown block: command, commit, date, machine and JAX backend."""
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    devices = ", ".join(str(d) for d in jax.devices())
    return "\n".join(
        [
            f"- command: `{command}`",
            f"- commit: `{_commit()}`",
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {_cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
            f"- JAX {jax.__version__}, devices: {devices}",
        ]
    )


def write_report(lines: list[str], out: Path) -> None:
    """Print a Markdown report and write it to `out`."""
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
