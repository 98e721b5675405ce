"""Bandit reward landscapes (SPEC §6): named, state-less reward functions over actions in [−1, 1]^d.

The paper's exact bandit rewards and initial policies (Figs 2–3) were **not found** (docs/paper_notes.md §2), so
every preset here is **designed** for the property SPEC §6/§10 names, and says so in its ``source``. All rewards
lie in [0, 1] with a known maximum of exactly 1 (each landscape is a max/product of terms built so that the
optimum is attained at one known point), and the initial policy (a clipped Gaussian the policy is pretrained on)
sits away from the optimum, so regret starts high.

- ``broad``: 1-D, one wide Gaussian hill; easy, every scheme should solve it.
- ``sharp``: 1-D, the same hill at half height with a narrow spike on top at the same place; half of the
  reward needs a policy concentrated within ~0.05 of the optimum, finer than the candidates' exploration
  noise (0.2). (A narrow peak *next to* a lower hill was tried first: with that noise every scheme stayed on
  the hill, with regret 0.34–0.47 for all.)
- ``bad-region``: 2-D, a gentle tilt towards the optimum corner with a zero-reward pit in the straight path from
  the initial mass; the picture where negative weights should repel the flow around the pit.
- ``four-peaks``: 2-D, four bumps of different heights around a central initial mass; the policy must pick
  the best mode out of three good decoys.

The held-out landscapes of the weighting advisor (four sets) live in simpo.bandit.held_out and are
registered here too.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from simpo.bandit.held_out import HELD_OUT
from simpo.bandit.shapes import Landscape, RewardFn, bump, gauss

__all__ = ["Landscape", "LANDSCAPES", "get_landscape", "estimate_max_reward"]


def broad_reward(a: jnp.ndarray) -> jnp.ndarray:
    """exp(−(a − 0.5)² / (2·0.4²)): one wide hill, max 1 at a = 0.5."""
    return gauss(a, (0.5,), 0.4)


def sharp_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.5·hill(a; 0.5, 0.4) + 0.5·spike(a; 0.5, 0.05): ``broad``'s hill at half height with a narrow spike on
    top, so the second half of the reward needs a policy concentrated within ~0.05 of 0.5 (max 1 at 0.5)."""
    return 0.5 * gauss(a, (0.5,), 0.4) + 0.5 * gauss(a, (0.5,), 0.05)


_BAD_OPT = (0.6, 0.6)
_BAD_PIT = ((0.0, 0.0), 0.45)


def bad_region_reward(a: jnp.ndarray) -> jnp.ndarray:
    """max(tilt, peak) · (1 − pit): tilt 0.15→0.5 along a₁ + a₂, a Gaussian peak (0.3) of height 1 at
    (0.6, 0.6), times a zero-reward pit of radius 0.45 at the origin (zero beyond it, so max = 1)."""
    tilt = 0.15 + 0.35 * (jnp.sum(a, axis=-1) + 2.0) / 4.0
    f = jnp.maximum(tilt, gauss(a, _BAD_OPT, 0.3))
    return f * (1.0 - bump(a, *_BAD_PIT))


_FOUR = (((0.6, 0.6), 1.0), ((-0.6, 0.6), 0.8), ((0.6, -0.6), 0.8), ((-0.6, -0.6), 0.7))


def four_peaks_reward(a: jnp.ndarray) -> jnp.ndarray:
    """max_k h_k·exp(−‖a − c_k‖²/(2·0.3²)): peaks of height 1.0 (0.6, 0.6), 0.8, 0.8 and 0.7 at the corners."""
    return jnp.max(jnp.stack([h * gauss(a, c, 0.3) for c, h in _FOUR], axis=-1), axis=-1)


LANDSCAPES: dict[str, Landscape] = {
    "broad": Landscape(
        name="broad",
        reward_fn=broad_reward,
        action_dim=1,
        init_mean=(-0.5,),
        init_std=(0.15,),
        max_reward=1.0,
        argmax=(0.5,),
        description="1-D broad optimum: one wide Gaussian hill (width 0.4) at 0.5; policy starts at −0.5",
        source="designed: broad optimum (SPEC §6/§10, Fig. 3 top; the paper's reward was not found)",
    ),
    "sharp": Landscape(
        name="sharp",
        reward_fn=sharp_reward,
        action_dim=1,
        init_mean=(-0.5,),
        init_std=(0.15,),
        max_reward=1.0,
        argmax=(0.5,),
        description="1-D sharp optimum: broad's hill at half height (width 0.4) with a narrow spike (width 0.05) "
        "on top, both at 0.5; policy starts at −0.5",
        source="designed: sharp optimum (SPEC §6/§10, Fig. 3 bottom; the paper's reward was not found)",
    ),
    "bad-region": Landscape(
        name="bad-region",
        reward_fn=bad_region_reward,
        action_dim=2,
        init_mean=(-0.6, -0.6),
        init_std=(0.15, 0.15),
        max_reward=1.0,
        argmax=_BAD_OPT,
        description="2-D: tilt towards a peak at (0.6, 0.6) with a zero-reward pit (radius 0.45) at the origin, "
        "right between the initial mass at (−0.6, −0.6) and the optimum",
        source="designed: bad region that negative weights should repel from (SPEC §6/§10, Fig. 2; "
        "the paper's reward was not found)",
        marked_region=_BAD_PIT,
    ),
    "four-peaks": Landscape(
        name="four-peaks",
        reward_fn=four_peaks_reward,
        action_dim=2,
        init_mean=(0.0, 0.0),
        init_std=(0.3, 0.3),
        max_reward=1.0,
        argmax=(0.6, 0.6),
        description="2-D multimodal: peaks of height 1.0, 0.8, 0.8, 0.7 at the four corners (±0.6, ±0.6); "
        "policy starts in the middle",
        source="designed: multimodal landscape with decoy optima (extra study, not in the paper)",
    ),
    **HELD_OUT,
}


def get_landscape(name: str) -> Landscape:
    """The preset called ``name``; ValueError listing the allowed names otherwise."""
    if not isinstance(name, str) or name not in LANDSCAPES:
        raise ValueError(f"unknown landscape {name!r}; allowed: {', '.join(LANDSCAPES)}")
    return LANDSCAPES[name]


def estimate_max_reward(
    reward_fn: RewardFn, action_dim: int, points: int | None = None, seed: int = 0
) -> tuple[float, np.ndarray]:
    """Dense search for max r over [−1, 1]^d: a grid for d ≤ 2 (2001 points in 1-D, 1001² in 2-D), else
    ``points`` (default 10⁶) uniform random points in chunks; then a local grid refinement around the best point.
    Returns ``(max_reward, argmax)``. A maximum over sampled points is a lower bound: exact on the built-in
    landscapes' grids, but for d > 2 a narrow peak can be missed (a Gaussian of width 0.1 in 6-D: 0.948 for 1), and
    regret against it reads low; pass the analytic `max_reward` where it is known (the presets do)."""
    if action_dim <= 2:
        n = 2001 if action_dim == 1 else 1001
        axis = np.linspace(-1.0, 1.0, n, dtype=np.float32)
        grid = np.stack(np.meshgrid(*([axis] * action_dim), indexing="ij"), -1).reshape(-1, action_dim)
        chunks = [grid]
        step = 2.0 / (n - 1)
    else:
        rng = np.random.default_rng(seed)
        total = points or 1_000_000
        chunks = [rng.uniform(-1, 1, (min(100_000, total - i), action_dim)).astype(np.float32)
                  for i in range(0, total, 100_000)]
        step = 2.0 / total ** (1.0 / action_dim)
    best, best_a = -np.inf, None
    for c in chunks:
        r = np.asarray(reward_fn(jnp.asarray(c)))
        i = int(np.argmax(r))
        if r[i] > best:
            best, best_a = float(r[i]), c[i]
    # local refinement: a finer grid (random points for d > 2) in a box of ±step around the best point
    rng = np.random.default_rng(seed + 1)
    local = np.clip(best_a + rng.uniform(-step, step, (100_000, action_dim)), -1, 1).astype(np.float32)
    r = np.asarray(reward_fn(jnp.asarray(local)))
    if r.max() > best:
        best, best_a = float(r.max()), local[int(np.argmax(r))]
    return best, np.asarray(best_a)
