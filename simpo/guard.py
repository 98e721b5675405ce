"""The NaN / Inf guard of the training loop: a device-side flag, read by the host only now and then.

Every update folds "all of its metrics (losses, Q-values, weight statistics) and the sampled rewards are finite"
into one running flag, and remembers which quantities failed first and at which env step. The host reads the
flag before logging, evaluating and checkpointing, and stops the run with `NonFiniteError` naming them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteError(RuntimeError):
    """Training produced a NaN or an infinity; the run stopped and kept its last good checkpoint."""


class Guard(NamedTuple):
    """All updates finite so far; which quantities failed first, and when."""

    healthy: jax.Array  # () bool
    first_bad: jax.Array  # (len(metrics) + 1,) bool: sorted metric names, then the sampled rewards
    first_bad_step: jax.Array  # () int32: the env step of the first non-finite update


def guard_init(metric_names: list[str]) -> Guard:
    return Guard(jnp.asarray(True), jnp.zeros(len(metric_names) + 1, bool), jnp.asarray(-1, jnp.int32))


def _guard(guard: Guard, metrics: dict[str, jax.Array], batch, env_step) -> Guard:
    """Fold one update's metrics and sampled batch into the guard (inside the jitted step)."""
    finite = jnp.stack([jnp.all(jnp.isfinite(metrics[k])) for k in sorted(metrics)]
                       + [jnp.all(jnp.isfinite(batch.reward))])
    newly_bad = guard.healthy & ~jnp.all(finite)
    return Guard(guard.healthy & jnp.all(finite), jnp.where(newly_bad, ~finite, guard.first_bad),
                 jnp.where(newly_bad, env_step, guard.first_bad_step))


def guard_problem(guard: Guard, metric_names: list[str]) -> str | None:
    """None if healthy, else 'non-finite NAMES in the update at env step N' (one host read)."""
    if bool(guard.healthy):
        return None
    bad = [n for n, b in zip([*metric_names, "sampled reward"], np.asarray(guard.first_bad)) if b]
    return f"non-finite {', '.join(bad)} in the update at env step {int(guard.first_bad_step)}"
