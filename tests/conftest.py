"""Test-session settings.

- The suite runs on two workers (`pytest -n 2 --dist loadfile`, the README's command): each file stays on one worker,
  so module-scoped fixtures are built once; the slowest files are handed out first, so that neither worker is left
  with a long file at the end.
- One JAX persistent compilation cache per test session, in a fresh temporary directory that the session removes
  at its end. It is shared by both workers and by every process they start (the CLI subprocesses of the resume
  tests, Ray's trial workers), so a function that another test already compiled is loaded instead of compiled
  again. A loaded executable is the one XLA would have built (JAX keys the cache on the computation, the compile
  options, the flags and the versions), so no result changes, only the time. A cache already named by
  `JAX_COMPILATION_CACHE_DIR` is used as it is.
- XLA compiles at backend optimisation level 0 (`XLA_FLAGS=--xla_backend_optimization_level=0`, for every process
  the tests start) unless `XLA_FLAGS` already sets a level. The tests' tiny configs spend their time compiling, not
  running: LLVM's optimisation passes took more time than they saved (the whole suite, back to back on a 2-core
  AMD EPYC, 2026-12-06, 610 tests: 696 s at XLA's default level 2, 572 s at level 0). What the tests check (equalities between two runs, bounds, learning
  on tiny tasks) holds at any level; a level changes float rounding at most, and no test compares against a run
  compiled at another level. Training and benchmarks are not affected: they never load this file.
"""

import os
import shutil
import sys
import tempfile

FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"
# by the files' summed test durations in a full run (2026-12-04, the 2-core Xeon, with the cache below), longest first
SLOWEST_FIRST = ("test_train.py", "test_sweep.py", "test_bad_input.py", "test_actor_interval.py", "test_bandit.py",
                 "test_seeds.py", "test_study.py", "test_resume.py", "test_ondevice.py", "test_matching.py",
                 "test_qvpo.py", "test_advisor.py", "test_video.py", "test_weighting.py")


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        return  # an xdist worker: its controller set the variables before starting it, and they were inherited
    if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):  # read when a backend starts
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAG}".strip()
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    config.simpo_jax_cache = tempfile.mkdtemp(prefix="simpo-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = config.simpo_jax_cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # the tests' small functions too
    if "jax" in sys.modules:  # imported before this hook (by a plugin): the variables were read already
        import jax

        jax.config.update("jax_compilation_cache_dir", config.simpo_jax_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def pytest_unconfigure(config):
    if getattr(config, "simpo_jax_cache", None):
        shutil.rmtree(config.simpo_jax_cache, ignore_errors=True)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file is kept
