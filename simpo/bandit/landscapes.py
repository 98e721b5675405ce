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

Four more were added later as **held-out** landscapes for the weighting advisor (docs/advisor.md): designed, before
any run on them, as two flat-topped/steep-topped pairs in the paper's sense (SPEC §7: square should win the flat
ones, linear the steep ones), and not used to choose any rule or parameter.

- ``plateau`` (1-D, flat top) and ``cusp`` (1-D, steep top: a Laplace peak, no flat part anywhere);
- ``mesa`` (2-D, flat top) and ``needle`` (2-D, ``sharp``'s hill-plus-spike in two dimensions).

A **second held-out set** was added with the measured rule ``auto_exp`` (simpo.advisor.AUTO_MENUS), committed with it
and before any run of either on them, to validate that rule, which was read off the first eight (docs/advisor.md):

- ``table`` (1-D, flat top: a truncated tent, exactly flat over a wide top, with a 5% hill for a unique max) and
  ``butte`` (2-D, the same in two dimensions, radially);
- ``spire`` (1-D, steep top: a Laplace spike on a wide hill) and ``ridge`` (2-D, steep across a narrow ridge,
  gentle along it, on a wide hill).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import jax.numpy as jnp
import numpy as np

__all__ = ["Landscape", "LANDSCAPES", "get_landscape", "estimate_max_reward"]

RewardFn = Callable[[jnp.ndarray], jnp.ndarray]


@dataclass(frozen=True)
class Landscape:
    """A bandit: ``reward_fn`` maps actions ``(M, d)`` in ``[−1, 1]^d`` to rewards ``(M,)``.

    ``init_mean``/``init_std`` give the clipped Gaussian the policy is pretrained on before epoch 1.
    ``max_reward``/``argmax`` are analytic. ``source`` says whether the landscape is the paper's or designed.
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

    def __post_init__(self) -> None:
        if len(self.init_mean) != self.action_dim or len(self.init_std) != self.action_dim:
            raise ValueError(f"landscape {self.name!r}: init_mean/init_std must have length {self.action_dim}")


def _gauss(a: jnp.ndarray, center, width: float) -> jnp.ndarray:
    """exp(−‖a − center‖² / (2 width²)) over the last axis: 1 at the center."""
    return jnp.exp(-jnp.sum((a - jnp.asarray(center, a.dtype)) ** 2, axis=-1) / (2.0 * width**2))


def _flat_top(a: jnp.ndarray, center, width: float) -> jnp.ndarray:
    """exp(−(‖a − center‖² / width²)⁴): ≈ 1 out to about 0.8·width, then a fast drop (a super-Gaussian)."""
    return jnp.exp(-((jnp.sum((a - jnp.asarray(center, a.dtype)) ** 2, axis=-1) / width**2) ** 4))


def _bump(a: jnp.ndarray, center, radius: float) -> jnp.ndarray:
    """Compactly supported bump (1 − ‖a − c‖²/ρ²)₊²: 1 at the center, exactly 0 beyond radius ρ."""
    r2 = jnp.sum((a - jnp.asarray(center, a.dtype)) ** 2, axis=-1) / radius**2
    return jnp.maximum(1.0 - r2, 0.0) ** 2


def broad_reward(a: jnp.ndarray) -> jnp.ndarray:
    """exp(−(a − 0.5)² / (2·0.4²)): one wide hill, max 1 at a = 0.5."""
    return _gauss(a, (0.5,), 0.4)


def sharp_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.5·hill(a; 0.5, 0.4) + 0.5·spike(a; 0.5, 0.05): ``broad``'s hill at half height with a narrow spike on
    top, so the second half of the reward needs a policy concentrated within ~0.05 of 0.5 (max 1 at 0.5)."""
    return 0.5 * _gauss(a, (0.5,), 0.4) + 0.5 * _gauss(a, (0.5,), 0.05)


_BAD_OPT = (0.6, 0.6)
_BAD_PIT = ((0.0, 0.0), 0.45)


def bad_region_reward(a: jnp.ndarray) -> jnp.ndarray:
    """max(tilt, peak) · (1 − pit): tilt 0.15→0.5 along a₁ + a₂, a Gaussian peak (0.3) of height 1 at
    (0.6, 0.6), times a zero-reward pit of radius 0.45 at the origin (zero beyond it, so max = 1)."""
    tilt = 0.15 + 0.35 * (jnp.sum(a, axis=-1) + 2.0) / 4.0
    f = jnp.maximum(tilt, _gauss(a, _BAD_OPT, 0.3))
    return f * (1.0 - _bump(a, *_BAD_PIT))


_FOUR = (((0.6, 0.6), 1.0), ((-0.6, 0.6), 0.8), ((0.6, -0.6), 0.8), ((-0.6, -0.6), 0.7))


def four_peaks_reward(a: jnp.ndarray) -> jnp.ndarray:
    """max_k h_k·exp(−‖a − c_k‖²/(2·0.3²)): peaks of height 1.0 (0.6, 0.6), 0.8, 0.8 and 0.7 at the corners."""
    return jnp.max(jnp.stack([h * _gauss(a, c, 0.3) for c, h in _FOUR], axis=-1), axis=-1)


def plateau_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.9·flat_top(a; 0.4, 0.4) + 0.1·hill(a; 0.4, 0.4): a plateau of near-max reward over about [0.1, 0.7],
    with only a gentle rise (the 0.1 hill) to the unique max 1 at 0.4."""
    return 0.9 * _flat_top(a, (0.4,), 0.4) + 0.1 * _gauss(a, (0.4,), 0.4)


def cusp_reward(a: jnp.ndarray) -> jnp.ndarray:
    """exp(−|a − 0.6| / 0.25): a Laplace peak, steepest at its max 1 at 0.6, with no flat part."""
    return jnp.exp(-jnp.sum(jnp.abs(a - 0.6), axis=-1) / 0.25)


def mesa_reward(a: jnp.ndarray) -> jnp.ndarray:
    """``plateau`` in 2-D: 0.9·flat_top(a; (0.4, 0.4), 0.45) + 0.1·hill(a; (0.4, 0.4), 0.45), max 1 at (0.4, 0.4)."""
    return 0.9 * _flat_top(a, (0.4, 0.4), 0.45) + 0.1 * _gauss(a, (0.4, 0.4), 0.45)


def needle_reward(a: jnp.ndarray) -> jnp.ndarray:
    """``sharp`` in 2-D: 0.5·hill(a; (0.5, 0.5), 0.4) + 0.5·spike(a; (0.5, 0.5), 0.07), max 1 at (0.5, 0.5)."""
    return 0.5 * _gauss(a, (0.5, 0.5), 0.4) + 0.5 * _gauss(a, (0.5, 0.5), 0.07)


def _tent_top(dist: jnp.ndarray, reach: float) -> jnp.ndarray:
    """min(1, 1.4·(1 − dist/reach)₊): a tent of base radius `reach`, cut flat at 1 (within 0.29·reach)."""
    return jnp.minimum(1.0, 1.4 * jnp.maximum(1.0 - dist / reach, 0.0))


def table_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.95·tent_top(|a − 0.5|; 1) + 0.05·hill(a; 0.5, 0.5): exactly flat at 0.95 + hill over about [0.21, 0.79],
    straight sides down to 0 at −0.5 and 1.5; unique max 1 at 0.5."""
    return 0.95 * _tent_top(jnp.abs(a[..., 0] - 0.5), 1.0) + 0.05 * _gauss(a, (0.5,), 0.5)


def butte_reward(a: jnp.ndarray) -> jnp.ndarray:
    """``table`` in 2-D, radially around c = (0.4, 0.3): 0.95·tent_top(‖a − c‖; 1) + 0.05·hill(a; c, 0.5);
    max 1 at c."""
    c = jnp.asarray((0.4, 0.3), a.dtype)
    return 0.95 * _tent_top(jnp.sqrt(jnp.sum((a - c) ** 2, axis=-1)), 1.0) + 0.05 * _gauss(a, (0.4, 0.3), 0.5)


def spire_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.4·hill(a; 0.4, 0.5) + 0.6·exp(−|a − 0.4| / 0.04): a Laplace spike on a wide hill, max 1 at 0.4."""
    return 0.4 * _gauss(a, (0.4,), 0.5) + 0.6 * jnp.exp(-jnp.abs(a[..., 0] - 0.4) / 0.04)


def ridge_reward(a: jnp.ndarray) -> jnp.ndarray:
    """0.3·hill(a; (0.5, 0.4), 0.5) + 0.7·across·along: a ridge at a₂ = 0.4 of width 0.06 (across, Gaussian),
    rising gently along it (0.6 + 0.4·exp(−(a₁ − 0.5)²/(2·0.5²))); max 1 at (0.5, 0.4)."""
    across = jnp.exp(-((a[..., 1] - 0.4) ** 2) / (2 * 0.06**2))
    along = 0.6 + 0.4 * jnp.exp(-((a[..., 0] - 0.5) ** 2) / (2 * 0.5**2))
    return 0.3 * _gauss(a, (0.5, 0.4), 0.5) + 0.7 * across * along


_HELD_OUT = "designed as a held-out landscape for the advisor (docs/advisor.md), not the paper's"
_HELD_OUT_2 = ("designed as a held-out landscape of the second set, for the advisor's measured rule auto_exp "
               "(docs/advisor.md), not the paper's")

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
    "plateau": Landscape(
        name="plateau", reward_fn=plateau_reward, action_dim=1, init_mean=(-0.5,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.4,),
        description="1-D flat top: a plateau of near-max reward over about [0.1, 0.7] with a gentle rise to the "
        "max at 0.4; policy starts at −0.5",
        source=f"designed: flat top ({_HELD_OUT})",
    ),
    "cusp": Landscape(
        name="cusp", reward_fn=cusp_reward, action_dim=1, init_mean=(-0.5,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.6,),
        description="1-D steep top: a Laplace peak exp(−|a − 0.6|/0.25); policy starts at −0.5",
        source=f"designed: steep top ({_HELD_OUT})",
    ),
    "mesa": Landscape(
        name="mesa", reward_fn=mesa_reward, action_dim=2, init_mean=(-0.6, -0.6), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.4, 0.4),
        description="2-D flat top: a round plateau (radius about 0.35) around (0.4, 0.4) with a gentle rise to its "
        "center; policy starts at (−0.6, −0.6)",
        source=f"designed: flat top ({_HELD_OUT})",
    ),
    "needle": Landscape(
        name="needle", reward_fn=needle_reward, action_dim=2, init_mean=(-0.5, -0.5), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.5, 0.5),
        description="2-D steep top: a wide hill at half height with a narrow spike (width 0.07) on top at "
        "(0.5, 0.5); policy starts at (−0.5, −0.5)",
        source=f"designed: steep top ({_HELD_OUT})",
    ),
    "table": Landscape(
        name="table", reward_fn=table_reward, action_dim=1, init_mean=(-0.5,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.5,),
        description="1-D flat top: a truncated tent, flat over about [0.21, 0.79] (a 5% hill gives the max at 0.5), "
        "zero below −0.5; policy starts at −0.5",
        source=f"designed: flat top ({_HELD_OUT_2})",
    ),
    "spire": Landscape(
        name="spire", reward_fn=spire_reward, action_dim=1, init_mean=(-0.5,), init_std=(0.15,),
        max_reward=1.0, argmax=(0.4,),
        description="1-D steep top: a Laplace spike exp(−|a − 0.4|/0.04) (0.6 of the reward) on a wide hill; "
        "policy starts at −0.5",
        source=f"designed: steep top ({_HELD_OUT_2})",
    ),
    "butte": Landscape(
        name="butte", reward_fn=butte_reward, action_dim=2, init_mean=(-0.5, -0.5), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.4, 0.3),
        description="2-D flat top: a round truncated tent around (0.4, 0.3), flat within radius about 0.29, zero "
        "beyond radius 1; policy starts at (−0.5, −0.5)",
        source=f"designed: flat top ({_HELD_OUT_2})",
    ),
    "ridge": Landscape(
        name="ridge", reward_fn=ridge_reward, action_dim=2, init_mean=(-0.5, -0.5), init_std=(0.15, 0.15),
        max_reward=1.0, argmax=(0.5, 0.4),
        description="2-D steep top: a ridge of width 0.06 across (at a₂ = 0.4), gentle along, on a wide hill; max "
        "at (0.5, 0.4); policy starts at (−0.5, −0.5)",
        source=f"designed: steep top ({_HELD_OUT_2})",
    ),
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
    Returns ``(max_reward, argmax)``."""
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
