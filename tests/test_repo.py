"""The repository itself: scripts that would break the standard library, the MJX backend fallback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_benchmark_script_shadows_a_standard_module():
    # `python benchmarks/X.py` puts benchmarks/ first on sys.path: a benchmarks/profile.py made `import cProfile`
    # (which warp imports) load it instead of the standard `profile`, and the on-device benchmark failed.
    clashes = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.stem in sys.stdlib_module_names)
    assert not clashes


def test_auto_impl_falls_back_to_jax_without_warp(monkeypatch):
    pytest.importorskip("mujoco_playground")
    import simpo.playground as pg

    monkeypatch.setattr(pg, "_has_warp", lambda: False)
    assert pg.load_env("playground:CartpoleBalance", "auto")._config.impl == "jax"
