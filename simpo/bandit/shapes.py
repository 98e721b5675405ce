"""The building blocks of the bandit landscapes (simpo.bandit.landscapes, simpo.bandit.held_out): the
`Landscape` record and the shapes the rewards are made of (all peak at exactly 1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import jax.numpy as jnp

RewardFn = Callable[[jnp.ndarray], jnp.ndarray]


@dataclass(frozen=True)
class Landscape:
    """A bandit: ``reward_fn`` maps actions ``(M, d)`` in ``[−1, 1]^d`` to rewards ``(M,)``.

    ``init_mean``/``init_std`` give the clipped Gaussian the policy is pretrained on before epoch 1.
    ``max_reward``/``argmax`` are analytic. ``source`` says whether the landscape is the paper's or designed;
    ``held_out`` which held-out set of the advisor's validation it belongs to (simpo.bandit.held_out; 0: none).
    """

    name: str
    reward_fn: RewardFn
    action_dim: int
    init_mean: tuple[float, ...]
    init_std: tuple[float, ...]
    max_reward: float | None
    argmax: tuple[float, ...] | None
    description: str
    source: str
    # optional (center, radius) of a region the plots outline (the bad region)
    marked_region: tuple[tuple[float, ...], float] | None = field(default=None)
    held_out: int = 0

    def __post_init__(self) -> None:
        if len(self.init_mean) != self.action_dim or len(self.init_std) != self.action_dim:
            raise ValueError(f"landscape {self.name!r}: init_mean/init_std must have length {self.action_dim}")


def gauss(a: jnp.ndarray, center, width: float) -> jnp.ndarray:
    """exp(−‖a − center‖² / (2 width²)) over the last axis: 1 at the center."""
    return jnp.exp(-jnp.sum((a - jnp.asarray(center, a.dtype)) ** 2, axis=-1) / (2.0 * width**2))


def flat_top(a: jnp.ndarray, center, width: float) -> jnp.ndarray:
    """exp(−(‖a − center‖² / width²)⁴): ≈ 1 out to about 0.8·width, then a fast drop (a super-Gaussian)."""
    return jnp.exp(-((jnp.sum((a - jnp.asarray(center, a.dtype)) ** 2, axis=-1) / width**2) ** 4))


def bump(a: jnp.ndarray, center, radius: float) -> jnp.ndarray:
    """Compactly supported bump (1 − ‖a − c‖²/ρ²)₊²: 1 at the center, exactly 0 beyond radius ρ."""
    r2 = jnp.sum((a - jnp.asarray(center, a.dtype)) ** 2, axis=-1) / radius**2
    return jnp.maximum(1.0 - r2, 0.0) ** 2
