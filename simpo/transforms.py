"""Named reward transforms for the reward-landscape study (SPEC §7, paper Fig. 5: dm_control Cheetah Run).

Fig. 5 of the paper trains on Cheetah Run with its reward made **flat** or **steep**, and reports that square
weighting wins on flat rewards and linear weighting on steep ones. The paper text that defines the transforms was
not reachable (docs/paper_notes.md §3). What *was* found is the first author's code,
``mahaitongdae/diffusion_policy_online_rl``:

- ``relax/env/dmc/custom_dmc_tasks/helper.py`` (commit 33fd9746): ``linear_reward``, ``square_reward``,
  ``exp_reward``, ``lqr_reward``, ``exp_lqr_reward`` and the ``AbsReward(k_base)`` class;
- ``relax/env/dmc/custom_dmc_tasks/cheetah_reward_v1.py`` (commit 2ab0ef65): the Cheetah tasks
  ``run_{lqr,exp_lqr,exp,eval,square,linear,abs_square,abs_sqrt,abs_exp}_v1``, target speed 10, ``AbsReward(5.0)``.

The authors compute these from the cheetah's horizontal speed ``v``. Here every transform is a pure function of the
env reward ``r``, as the training loop only sees ``r``. dm_control's cheetah-run reward is
``tolerance(v, bounds=(10, inf), margin=10, value_at_margin=0, sigmoid='linear') = clip(v / 10, 0, 1)``, so the
speed the authors use is recovered as ``v = 10 r`` on ``0 <= v <= 10``. Two consequences (our approximation, not the
authors'):

- speeds above 10 all give ``r = 1``, so the unbounded ``abs_*`` transforms saturate at their ``v = 10`` value;
  ``linear``/``square``/``exp`` saturate at ``v = 10`` in the authors' code too, so they are exact;
- negative speeds all give ``r = 0`` (``lqr``/``exp_lqr`` are exact only for ``v >= 0``).

Every transform first clips ``r`` to ``[0, 1]`` (a no-op for dm_control suite rewards, which all lie in [0, 1]) and is
monotone increasing on ``[0, 1]``, so the optimal policy's ranking of speeds is unchanged; only the landscape's
curvature changes.

**Presets (our assumption; the authors' mapping to Fig. 5 is not known):**

- ``flat``  = ``abs_sqrt``   (concave: slope falls from 0.2 to 0.067 per unit speed over v in [0, 10]);
- ``steep`` = ``abs_square`` (convex: slope rises from 0.2 to 0.71 per unit speed).

Both come from the authors' ``AbsReward(5.0)`` family, whose members all start at 0 with the same slope at v = 0, so
they differ only in curvature. ``pow0.5``/``pow2`` are our own SPEC §10 ``r^k`` alternatives.
"""

from __future__ import annotations

import difflib
from typing import Callable

import numpy as np
from scipy.special import lambertw

RewardFn = Callable[[float], float]

RUN_SPEED = 10.0  # the authors' _RUN_SPEED: cheetah-run reward saturates at this speed
ABS_K_BASE = 5.0  # the authors' AbsReward(5.0)


def _unit(r) -> np.ndarray:
    """Clip the env reward to [0, 1], the range of dm_control suite rewards."""
    return np.clip(np.asarray(r, dtype=np.float64), 0.0, 1.0)


def _speed(r) -> np.ndarray:
    """Recover cheetah-run speed v = 10 r (exact for 0 <= v <= 10)."""
    return RUN_SPEED * _unit(r)


# --- authors' speed-based rewards (helper.py), rewritten on r ------------------------------------------------------


def identity(r):
    """``none``: r' = r (no transform; equals the authors' ``eval`` reward v/10 for 0 <= v <= 10)."""
    return np.asarray(r, dtype=np.float64)


def linear(r):
    """``linear``: r' = 2 r.

    Authors: ``2 * tolerance(v, (10, inf), margin=5, value_at_margin=0.5, 'linear')`` = 2 min(v, 10) / 10.
    """
    return 2.0 * _unit(r)


def square(r):
    """``square``: r' = (2 r)^2 ∈ [0, 4]. Authors: ``square_reward = linear_reward ** 2`` (convex, steep)."""
    return (2.0 * _unit(r)) ** 2


def exp(r):
    """``exp``: r' = exp(1.15 · 2 r) ∈ [1, 9.97]. Authors: ``exp_reward = exp(1.15 * linear_reward)`` (convex)."""
    return np.exp(1.15 * 2.0 * _unit(r))


def lqr(r):
    """``lqr``: r' = -(10 r - 10)^2 / 10 ∈ [-10, 0]. Authors: ``-(clip(v - 10, -inf, 0))**2 / 10`` (concave, flat at
    the target)."""
    return -np.minimum(_speed(r) - RUN_SPEED, 0.0) ** 2 / 10.0


def exp_lqr(r):
    """``exp_lqr``: r' = exp(lqr(r)) ∈ [4.5e-5, 1]. Authors: ``exp(lqr_reward)`` (≈ 0 below v ≈ 5, then rises)."""
    return np.exp(lqr(r))


# --- authors' AbsReward(k_base=5) family, on x = v = 10 r -----------------------------------------------------------

_K_SQRT = ABS_K_BASE * 1.0
_K_SQUARE = ABS_K_BASE * 1.25
_K_EXP = ABS_K_BASE * 1.1
_ALPHA = float(lambertw(1.0 / ABS_K_BASE).real)
_SQRT_SHIFT = ABS_K_BASE * ABS_K_BASE / 4.0 / _K_SQRT
_SQUARE_SHIFT = _K_SQUARE * _K_SQUARE / 2.0 / ABS_K_BASE
_SQRT_BASE = float(np.sqrt(_SQRT_SHIFT / _K_SQRT))
_SQUARE_BASE = float((_SQUARE_SHIFT / _K_SQUARE) ** 2)
_EXP_BASE = float(np.exp(_ALPHA))


def abs_linear(r):
    """``abs_linear``: r' = x / 5 with x = 10 r; r' ∈ [0, 2]. Authors: ``AbsReward.abs_linear_reward``."""
    return _speed(r) / ABS_K_BASE


def abs_sqrt(r):
    """``abs_sqrt``: r' = sqrt((x + 1.25) / 5) - 0.5 with x = max(10 r, 1e-6); r' ∈ [0, 1]. Concave (flat).
    Authors: ``AbsReward.abs_sqrt_reward(clip(v, 1e-6, inf))``."""
    x = np.maximum(_speed(r), 1e-6)
    return np.sqrt((x + _SQRT_SHIFT) / _K_SQRT) - _SQRT_BASE


def abs_square(r):
    """``abs_square``: r' = ((x + 3.90625) / 6.25)^2 - 0.390625 with x = 10 r; r' ∈ [0, 4.56]. Convex (steep).
    Authors: ``AbsReward.abs_square_reward``."""
    return ((_speed(r) + _SQUARE_SHIFT) / _K_SQUARE) ** 2 - _SQUARE_BASE


def abs_exp(r):
    """``abs_exp``: r' = exp(x / 5.5 + α) - exp(α), α = W(1/5) ≈ 0.1689, x = 10 r; r' ∈ [0, 6.11]. Convex.
    Authors: ``AbsReward.abs_exp_reward``."""
    return np.exp(_speed(r) / _K_EXP + _ALPHA) - _EXP_BASE


# --- our own SPEC §10 power transforms -------------------------------------------------------------------------------


def pow_half(r):
    """``pow0.5``: r' = r^0.5 on [0, 1] (ours, SPEC §10 r^k, k < 1: concave, flat near the optimum)."""
    return np.sqrt(_unit(r))


def pow_two(r):
    """``pow2``: r' = r^2 on [0, 1] (ours, SPEC §10 r^k with k > 1: convex, steep near the optimum)."""
    return _unit(r) ** 2


REWARD_TRANSFORMS: dict[str, tuple[RewardFn, str]] = {
    "none": (identity, "r (no transform)"),
    "flat": (abs_sqrt, "preset (our choice) = abs_sqrt: concave, authors' AbsReward(5) family"),
    "steep": (abs_square, "preset (our choice) = abs_square: convex, authors' AbsReward(5) family"),
    "linear": (linear, "authors' linear_reward: 2r"),
    "square": (square, "authors' square_reward: (2r)^2"),
    "exp": (exp, "authors' exp_reward: exp(2.3 r)"),
    "lqr": (lqr, "authors' lqr_reward: -(10r-10)^2/10"),
    "exp_lqr": (exp_lqr, "authors' exp_lqr_reward: exp(-(10r-10)^2/10)"),
    "abs_linear": (abs_linear, "authors' AbsReward(5).abs_linear on v=10r: v/5"),
    "abs_sqrt": (abs_sqrt, "authors' AbsReward(5).abs_sqrt on v=10r: sqrt((v+1.25)/5)-0.5 (concave)"),
    "abs_square": (abs_square, "authors' AbsReward(5).abs_square on v=10r: ((v+3.906)/6.25)^2-0.3906 (convex)"),
    "abs_exp": (abs_exp, "authors' AbsReward(5).abs_exp on v=10r: exp(v/5.5+a)-exp(a), a=W(0.2) (convex)"),
    "pow0.5": (pow_half, "ours (SPEC §10): r^0.5 (concave)"),
    "pow2": (pow_two, "ours (SPEC §10): r^2 (convex)"),
}


def get_reward_transform(name: str) -> RewardFn:
    """The transform called `name`; a one-line ValueError listing the allowed names otherwise."""
    if name not in REWARD_TRANSFORMS:
        close = difflib.get_close_matches(name, REWARD_TRANSFORMS, n=3)
        hint = f" did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown reward transform {name!r};{hint} allowed: {', '.join(REWARD_TRANSFORMS)}"
        )
    return REWARD_TRANSFORMS[name][0]


def apply_reward_transform(name: str, reward: float) -> float:
    """r' = transform(r) as a Python float."""
    return float(get_reward_transform(name)(reward))
