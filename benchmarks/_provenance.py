"""Where a benchmark number came from: the command, the commit and the machine."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import jax

from simpo.provenance import commit, cpu


_REPO = Path(__file__).resolve().parent.parent  # an untracked file anywhere in it (a new benchmark) is a change


def provenance() -> str:
    """A Markdown block: command, commit, date, machine and JAX backend."""
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    devices = ", ".join(str(d) for d in jax.devices())
    return "\n".join(
        [
            f"- command: `{command}`",
            f"- commit: `{commit(_REPO) or 'unknown'}`",
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
            f"- JAX {jax.__version__}, devices: {devices}; XLA_FLAGS: `{os.environ.get('XLA_FLAGS', '')}`",
        ]
    )


def write_report(lines: list[str], out: Path) -> None:
    """Print a Markdown report and write it to `out`."""
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
