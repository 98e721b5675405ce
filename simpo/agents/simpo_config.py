"""Hyperparameters of the online SiMPO agent (simpo.agents.simpo_agent), validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import tyro

from simpo.advisor import AUTO_MENUS
from simpo.policies import PolicyConfig, positive_int_tuple
from simpo.temperature import TemperatureConfig, check_kl_cap, check_reachable
from simpo.weighting import (BEST_ADVANTAGE, SCHEME_PARAMETER, SCHEMES, check_candidates, is_import_path,
                             load_weighting, validate_scheme)

WEIGHTINGS = (*SCHEMES, *AUTO_MENUS, BEST_ADVANTAGE)
SCHEME_FIELDS = {"power": "power_p", "signed_linear": "floor", "wd1": "negative_mass"}
"""The schemes that take a parameter -> the SiMPOConfig field that holds it (simpo.weighting.SCHEME_PARAMETER)."""


@dataclass(frozen=True)
class SiMPOConfig:
    """Hyperparameters of the SiMPO agent. Defaults are the authors' (`paper` preset, SPEC §5)."""

    policy: PolicyConfig = PolicyConfig(kind="diffusion", steps=20)
    weighting: Annotated[str, tyro.conf.arg(aliases=("--weighting",))] = "exp"
    """Stage-1 scheme: one of exp, linear, square, power, signed_linear, wd1; auto (simpo.advisor's rule, online:
    square on flat tops, linear on steep ones) or auto_exp (the same with exp on flat tops);
    or best_advantage (QVPO's: the best candidate only, weighted by its advantage; λ unused); or MODULE:FUNCTION,
    an increasing g of your own (importable, or a file in the current directory; ν is solved numerically)."""
    power_p: float = 2.0
    """Exponent p of the `power` scheme (>= 0.5: smaller p are not resolved in float32)."""
    floor: float = -math.inf
    """Floor of the `signed_linear` scheme (<= 0; -inf: no floor; then a `kl` temperature target must be under its cap,
    simpo.temperature.kl_cap: about 0.95 on Gaussian Q, so the default 2.0 is refused; use `ess`)."""
    negative_mass: float = 1.0
    """c of the `wd1` scheme, (1 + c)·softmax(q/λ) − c·softmax(−q/λ): the negative mass (minus the sum of the
    negative weights) it tends to as λ → 0; at larger λ the two terms overlap and the negative mass is less (c = 1,
    N = 64: 0.56 at λ = 1, 2e-5 at λ = 10)."""
    auto_hold: int = 0
    """`auto` / `auto_exp`: use the menu's flat scheme (square / exp) for the first this-many actor updates, while
    the skew EMA (from 0) warms up on a barely trained critic; the rule decides after that. 0: no hold (the rule as
    validated on the bandits, docs/advisor.md)."""
    temperature: TemperatureConfig = TemperatureConfig(target="kl", init=1.0, kl_target=2.0, lr=3e-4)
    num_candidates: int = 64
    candidate_noise: float = 0.2
    """σ of the Gaussian jitter added to candidates from π_old; the jittered candidates are then clipped to the action
    box [-1, 1] (SPEC §5). The authors' flow-rl gempo.py adds the jitter without clipping."""
    old_policy_interval: int = 1000
    """π_old is a hard copy of the actor, refreshed every this many updates."""
    actor_interval: int = 1
    """Stage 1 + Stage 2 + the λ step run on every this-many-th update (the k-th, 2k-th, ...); the critic and its
    targets on every update. 1: the authors' schedule. With k > 1 the metric `actor_updated` is 1 on updates that ran
    the actor side; skipped ones report the actor-side metrics of the last update that ran it (zeros before the first),
    which are current for λ and the `auto` EMA: both change on actor updates only."""
    matching_slice_rows: int = 2048
    """Stage 2's loss and gradient are computed over equal slices of the batch of at most this many candidate
    rows (batch × N), one slice after another; their mean is the same loss and gradient up to float rounding.
    On a CPU a slice's activations stay in cache: `paper`'s Stage 2 (256 × 64 rows, 8 slices) takes 0.60× the
    time, its whole update 0.90×; `fast` (256 × 8 rows) stays in one slice, 2 would be slower (2-core Xeon,
    docs/benchmarks/slices.md). Chosen on a CPU; on a GPU, 0 may be faster (not measured yet). 0: the whole
    batch at once."""
    uniform_actions: int = 0
    """QVPO's entropy term: this many actions per state drawn from U[-1, 1]^d ..."""
    uniform_weight: float = 0.0
    """... each trained with this weight times the state's total candidate weight Σ_i w_i (1 for normalised
    schemes; QVPO's advantage for best_advantage), as the port's entropy_coef."""
    target_candidates: int = 1
    """The TD target's next action: the best of this many policy samples by min target-Q (QVPO's port: 4 on
    HalfCheetah, 1 on Hopper, else 2); 1: one sample (SiMPO, DPMD)."""
    target_policy_tau: float = 0.0
    """> 0: the TD target's next actions come from an EMA copy of the actor, Polyak-averaged at this rate every update
    (QVPO's port: its `ema`, 0.005); 0: from the current actor (SiMPO, DPMD; the qvpo preset so far)."""
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    critic_hidden_dims: tuple[int, ...] = (256, 256)
    discount: float = 0.99
    tau: float = 0.005
    eval_candidates: int = 10
    """M of the best-of-M evaluation (argmax of min-Q over M policy samples)."""

    def __post_init__(self):
        if is_import_path(self.weighting):
            load_weighting(self.weighting)  # importable, increasing, normalisable: else one clear error now
        elif self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; allowed: {', '.join(WEIGHTINGS)}, or "
                             "MODULE:FUNCTION naming an increasing g of your own")
        if self.weighting in SCHEMES:
            validate_scheme(self.weighting, self.weighting_params)
        if not isinstance(self.auto_hold, int) or self.auto_hold < 0:
            raise ValueError(f"auto_hold must be an int >= 0 (actor updates), got {self.auto_hold!r}")
        if self.auto_hold and self.weighting not in AUTO_MENUS:
            raise ValueError(f"auto_hold applies to --weighting {' or '.join(AUTO_MENUS)} only, not {self.weighting!r}")
        for name in ("num_candidates", "eval_candidates", "target_candidates"):
            check_candidates(name, getattr(self, name))
        if self.weighting in AUTO_MENUS and self.num_candidates < 2:
            raise ValueError(f"weighting {self.weighting} needs num_candidates >= 2: its rule reads the skew of each "
                             f"state's candidate Q-values (simpo.advisor.landscape_stats), got {self.num_candidates}")
        check_candidates("uniform_actions", self.uniform_actions, 0)  # extra actions per state, as candidates
        if not isinstance(self.matching_slice_rows, int) or isinstance(self.matching_slice_rows, bool) \
                or self.matching_slice_rows < 0:
            raise ValueError(f"matching_slice_rows must be an int >= 0 (0: no slicing), got {self.matching_slice_rows!r}")
        for name in ("old_policy_interval", "actor_interval"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("actor_lr", "critic_lr"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be finite and > 0, got {getattr(self, name)}")
        if not 0 < self.discount <= 1:
            raise ValueError(f"discount must be in (0, 1], got {self.discount}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if not 0 <= self.target_policy_tau <= 1:
            raise ValueError(f"target_policy_tau must be in [0, 1] (0: no EMA actor), got {self.target_policy_tau}")
        if not all(0 <= getattr(self, n) < math.inf for n in ("candidate_noise", "uniform_actions", "uniform_weight")):
            raise ValueError("candidate_noise, uniform_actions and uniform_weight must be finite and >= 0, got "
                             f"{self.candidate_noise}, {self.uniform_actions}, {self.uniform_weight}")
        object.__setattr__(self, "critic_hidden_dims",
                           positive_int_tuple("critic_hidden_dims", self.critic_hidden_dims, False))
        if self.weighting == BEST_ADVANTAGE and self.temperature.target != "fixed":
            raise ValueError("weighting best_advantage has no temperature; set --agent.temperature.target fixed "
                             "(the qvpo preset does)")
        if is_import_path(self.weighting):
            schemes = (load_weighting(self.weighting),)
        else:  # a menu tunes one λ per scheme, each to the target; best_advantage has no λ (target fixed, above)
            schemes = AUTO_MENUS.get(self.weighting, (self.weighting,) if self.weighting in SCHEMES else (None,))
        for scheme in schemes:
            name = self.weighting if scheme is None or len(schemes) == 1 else f"{scheme} (of {self.weighting})"
            check_reachable(self.temperature, self.num_candidates, scheme, name, **self.weighting_params)
        if is_import_path(self.weighting) or (self.weighting == "signed_linear" and math.isinf(self.floor)):
            # weights that may never become one-hot: their kl target must be under their cap, not just log N
            g = load_weighting(self.weighting) if is_import_path(self.weighting) else self.weighting
            check_kl_cap(self.temperature, g, self.num_candidates, self.weighting, **self.weighting_params)

    @property
    def weighting_params(self) -> dict[str, float]:
        """The keyword parameters of `weighting` (SCHEME_FIELDS), for simpo.weighting.compute_weights."""
        field = SCHEME_FIELDS.get(self.weighting)
        return {SCHEME_PARAMETER[self.weighting]: getattr(self, field)} if field else {}
