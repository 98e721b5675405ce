"""The temperature λ of Stage 1: fixed, or tuned so the weights are neither uniform nor one-hot.

Two targets (SPEC §2):
- `kl`:  KL(w̃ ‖ uniform) = log N − H(w̃), where w̃ is the weights clipped at 1e-6 and renormalised
  (the non-negative part; as in the authors' DPMD/GeMPO code). Default target 2.0 (authors: Hopper
  2.5, Ant 1.5). Because of the clip it never reaches log N: its largest value is that of one-hot weights
  (`max_kl`; N = 8: 2.0793, N = 4096: 8.257 against log N = 8.318).
- `ess`: the effective sample size 1 / Σ w_i², as a fraction of N. Defined for signed weights too. It is 1 only
  for uniform weights (λ → ∞) and falls towards its λ → 0 limit `ess_floor` (1/N for non-negative schemes,
  lower for signed ones).

The tuner follows the authors: log λ is a parameter trained by Adam on the loss
λ · (target − measured) for `kl` (λ · (measured − target) for `ess`): weights too uniform
(KL below target, ESS above target) lower λ, weights too peaked raise it. All functions are
pure and can be called inside a jitted update.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from simpo.weighting import compute_weights


def kl_to_uniform(weights: jax.Array) -> jax.Array:
    """log N − H(w̃) per state, w̃ = max(w, 1e-6) renormalised (only the non-negative part counts)."""
    n = weights.shape[-1]
    clipped = jnp.maximum(weights, 1e-6)
    clipped = clipped / jnp.sum(clipped, axis=-1, keepdims=True)
    entropy = -jnp.sum(clipped * jnp.log(clipped), axis=-1)
    return jnp.log(n) - entropy


def effective_sample_fraction(weights: jax.Array) -> jax.Array:
    """(1 / Σ_i w_i²) / N per state: 1 for uniform weights, 1/N for one-hot ones."""
    return 1.0 / (weights.shape[-1] * jnp.sum(weights**2, axis=-1))


def negative_fraction(weights: jax.Array) -> jax.Array:
    """The fraction of candidates with negative weight (averaged over all states)."""
    return jnp.mean(weights < 0)


def weight_diagnostics(weights: jax.Array) -> dict[str, jax.Array]:
    """Scalars worth logging for any weighting: KL to uniform, ESS fraction, negative mass."""
    return {
        "weights/kl_to_uniform": jnp.mean(kl_to_uniform(weights)),
        "weights/ess_fraction": jnp.mean(effective_sample_fraction(weights)),
        "weights/negative_fraction": negative_fraction(weights),
        "weights/negative_mass": jnp.mean(jnp.sum(jnp.minimum(weights, 0.0), axis=-1)),
        "weights/max": jnp.mean(jnp.max(weights, axis=-1)),
    }


@dataclass(frozen=True)
class TemperatureConfig:
    """How λ is chosen. `target="fixed"` keeps λ = `init`."""

    target: Literal["fixed", "kl", "ess"] = "fixed"
    init: float = 1.0
    kl_target: float = 2.0
    ess_target: float = 0.25
    lr: float = 3e-4

    def __post_init__(self):
        if self.target not in ("fixed", "kl", "ess"):
            raise ValueError(f"temperature target must be one of fixed, kl, ess; got {self.target!r}")
        if not 0 < self.init < math.inf:
            raise ValueError(f"temperature init must be finite and > 0, got {self.init}")
        if not self.kl_target > 0:
            raise ValueError(f"temperature kl_target must be > 0, got {self.kl_target}")
        if not 0 < self.ess_target <= 1:
            raise ValueError(f"temperature ess_target must be in (0, 1], got {self.ess_target}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"temperature lr must be finite and > 0, got {self.lr}")

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.lr)


class TemperatureState(NamedTuple):
    log_temperature: jax.Array
    opt_state: optax.OptState


@functools.lru_cache(maxsize=None)
def max_kl(num_candidates: int) -> float:
    """The largest KL(w̃ ‖ uniform) the tuner can measure with N candidates: `kl_to_uniform` of one-hot weights
    (float32, as the tuner computes it, so this bound and the tuner cannot drift apart).

    The clip at 1e-6 keeps H(w̃) above 0, so this is below log N by about (N − 1)·1e-6·(1 + log 1e6): N = 8: 2.0793
    (log N 2.0794), N = 64: 4.1580 (4.1589), N = 4096: 8.257 (8.318), N = 65536: 10.18 (11.09). A signed scheme
    whose top weight exceeds 1 (wd1, a floored signed_linear) gives a slightly more peaked w̃ as λ → 0 (wd1 with
    c = 1 at N = 4096: 8.29), so for it this bound is a little conservative; it is still below log N."""
    with jax.ensure_compile_time_eval():  # a number even if called while tracing
        one_hot = jnp.zeros((num_candidates,), jnp.float32).at[0].set(1.0)
        return float(kl_to_uniform(one_hot))


def kl_reachable(kl_target: float, num_candidates: int) -> bool:
    """Whether the tuner can meet a `kl` target with N candidates: it must be below `max_kl` (the KL of one-hot
    weights, just under log N). A target at or above it is never met, so it drives λ towards 0 for ever, every
    scheme then gives argmax weights and the tuner has no effect."""
    return kl_target < max_kl(num_candidates)


_NON_NEGATIVE = ("exp", "linear", "square", "power")  # built-in schemes whose weights become one-hot as λ → 0


def ess_floor(weighting, num_candidates: int, **params) -> float:
    """The ESS fraction 1/(N Σ w_i²) the weights tend to as λ → 0: the least an `ess` target can ask for.

    - ``None`` (scheme not known): 0, the bound for every scheme (signed weights that grow as 1/λ: Σ w² → ∞).
    - exp, linear, square, power (non-negative, one-hot as λ → 0): 1/N, the least for any non-negative weights.
    - wd1 with negative mass c: (1 + c) on the best candidate, −c on the worst: 1/(N((1 + c)² + c²)) (c = 1: 1/(5N)).
    - signed_linear with a floor f: 1 − (N − 1)f on the best, f on the others: 1/(N((1 − (N − 1)f)² + (N − 1)f²));
      without a floor (w = q/λ − mean + 1/N, growing as 1/λ): 0.
    - a user's g: 1/N if its weights are non-negative at λ = 1e-4 on standard-normal Q (1,024 states × N, as
      `kl_cap`), else their mean ESS fraction there (its limit moves with Q's shape; Gaussian Q is the reference).
    With N = 1 every scheme gives the weight 1: the fraction is always 1."""
    n = num_candidates
    if n == 1:
        return 1.0
    if weighting is None:
        return 0.0
    if weighting in _NON_NEGATIVE:
        return 1.0 / n
    if weighting == "wd1":
        c = float(params.get("negative_mass", 1.0))
        return 1.0 / (n * ((1.0 + c) ** 2 + c**2))
    if weighting == "signed_linear":
        f = float(params.get("floor", -math.inf))
        return 0.0 if math.isinf(f) else 1.0 / (n * ((1.0 - (n - 1) * f) ** 2 + (n - 1) * f**2))
    if not callable(weighting) or params:
        raise ValueError(f"ess_floor: unknown weighting {weighting!r} (or parameters {sorted(params)} for a callable)")
    return _measured_ess_floor(weighting, n)


@functools.lru_cache(maxsize=64)
def _measured_ess_floor(g, num_candidates: int) -> float:
    """`ess_floor` of a user's g, measured at λ = 1e-4 on standard-normal Q (1,024 states × N)."""
    with jax.ensure_compile_time_eval():
        q = jax.random.normal(jax.random.PRNGKey(0), (1024, num_candidates))
        w = compute_weights(q, g, 1e-4)
        return 1.0 / num_candidates if bool(jnp.all(w >= 0)) else float(jnp.mean(effective_sample_fraction(w)))


def check_reachable(config: TemperatureConfig, num_candidates: int, weighting=None, name: str | None = None,
                    **params) -> None:
    """One-line ValueError if the temperature target cannot be reached with N candidates: a `kl` target at or above
    `max_kl` (`kl_reachable`), or an `ess` target outside (`ess_floor`, 1): at or below the λ → 0 limit of
    ``weighting`` (a scheme name or callable with its ``params``; None: the bound for every scheme, 0), or at 1,
    which only uniform weights (λ → ∞) reach. ``name`` names the weighting in the message."""
    n = num_candidates
    if config.target == "kl" and not kl_reachable(config.kl_target, n):
        top = max_kl(n)
        raise ValueError(f"temperature kl_target {config.kl_target:g} is unreachable with {n} candidates: "
                         f"KL(weights || uniform) <= log N = {math.log(n):.3f}, and as the tuner measures it "
                         f"(weights clipped at 1e-6) at most {top:.4f}, the KL of one-hot weights; choose a kl_target "
                         f"below {top:.4f}, or more candidates")
    if config.target != "ess":
        return
    if n == 1:
        raise ValueError("temperature target ess needs at least 2 candidates: with 1 the weight is always 1 (ESS "
                         "fraction 1) whatever λ; use --agent.temperature.target fixed, or more candidates")
    low = ess_floor(weighting, n, **params)
    if not low < config.ess_target < 1:
        scheme = f" and weighting {name or getattr(weighting, '__name__', weighting)}" if weighting is not None else ""
        limit = ("its λ -> 0 limit" + (", 1/N: one-hot weights" if low == 1.0 / n else "")
                 if weighting is not None else "signed weights can go to 0")
        raise ValueError(f"temperature ess_target {config.ess_target:g} is unreachable with {n} candidates{scheme}: "
                         f"the ESS fraction 1/(N sum w^2) runs from {low:.6g} ({limit}) to 1 (uniform weights, "
                         f"λ -> ∞), so λ would move for ever; choose an ess_target in ({low:.6g}, 1)")


@functools.lru_cache(maxsize=64)
def kl_cap(weighting, num_candidates: int, **params) -> float:
    """The KL(w̃ ‖ uniform) a scheme tends to as λ → 0 (λ = 1e-4 on standard-normal Q, 1,024 states × N).

    `max_kl` (just under log N) for a scheme whose weights become one-hot (exp, linear, square, power); a little more
    for wd1 and a floored signed_linear, whose top weight exceeds 1, so w̃ is more peaked after the clip at 1e-6
    (N = 4096: 8.29 and 8.30 against 8.257; still below log N); less for one whose weights keep their shape and only
    grow with 1/λ: unfloored signed_linear (w = q/λ − mean + 1/N, affine in q: 0.95 at N = 8, 0.97 at N = 64) or a
    leaky-ReLU g (1.71 at N = 8, 2.00 at N = 64); or stay
    bounded, e.g. tanh (log 2). A `kl` target at or above the cap is never met: the tuner lowers λ for ever and the
    weights grow as 1/λ (the bandit's unfloored signed_linear: λ 0.04 → 5e-4 in 15 epochs, negative mass −1,300 per
    state, then the policy in the pit; docs/bandits.md). The cap moves with Q's shape; Gaussian Q is the reference."""
    q = jax.random.normal(jax.random.PRNGKey(0), (1024, num_candidates))
    return float(jnp.mean(kl_to_uniform(compute_weights(q, weighting, 1e-4, **params))))


def check_kl_cap(config: TemperatureConfig, weighting, num_candidates: int, name: str, **params) -> None:
    """One-line ValueError if the `kl` target is at or above the scheme's `kl_cap` (below log N)."""
    if config.target != "kl":
        return
    cap = kl_cap(weighting, num_candidates, **params)
    if config.kl_target >= cap:
        floor = ", or a floor, e.g. --agent.floor -0.02" if weighting == "signed_linear" else ""
        raise ValueError(f"temperature kl_target {config.kl_target:g} is out of reach for weighting {name}: as λ -> 0 "
                         f"its weights never become one-hot and KL(weights || uniform) stops at {cap:.2f} (Gaussian Q, "
                         f"{num_candidates} candidates), so λ would fall for ever; use --agent.temperature.target ess "
                         f"(or fixed), a kl_target below {cap:.2f}{floor}")


def init_temperature(config: TemperatureConfig) -> TemperatureState:
    log_temperature = jnp.log(jnp.asarray(config.init, jnp.float32))
    return TemperatureState(log_temperature, config.optimizer.init(log_temperature))


def temperature_value(state: TemperatureState) -> jax.Array:
    return jnp.exp(state.log_temperature)


def update_temperature(
    config: TemperatureConfig, state: TemperatureState, weights: jax.Array
) -> tuple[TemperatureState, dict[str, jax.Array]]:
    """One Adam step on log λ towards the target, from the weights computed with the current λ."""
    weights = jax.lax.stop_gradient(weights)
    if config.target == "fixed":
        return state, {"temperature": temperature_value(state)}
    if config.target == "kl":
        error = config.kl_target - jnp.mean(kl_to_uniform(weights))
    else:
        error = jnp.mean(effective_sample_fraction(weights)) - config.ess_target

    def loss_fn(log_temperature):
        return jnp.exp(log_temperature) * error

    grad = jax.grad(loss_fn)(state.log_temperature)
    updates, opt_state = config.optimizer.update(grad, state.opt_state, state.log_temperature)
    log_temperature = optax.apply_updates(state.log_temperature, updates)
    new_state = TemperatureState(log_temperature, opt_state)
    return new_state, {"temperature": temperature_value(new_state), "temperature/error": error}


def init_temperatures(config: TemperatureConfig, count: int) -> TemperatureState:
    """`count` independent λ states stacked on a leading axis: one per scheme of a menu (`--weighting auto`),
    since schemes put λ on different scales (exp's tuned λ is about 50× below linear's on the bandits,
    docs/advisor.md): one shared λ, tuned on the scheme in use, is far off target for the next one after a switch."""
    return jax.tree.map(lambda x: jnp.stack([x] * count), init_temperature(config))


def update_temperatures(
    config: TemperatureConfig, state: TemperatureState, weights: jax.Array
) -> tuple[TemperatureState, dict[str, jax.Array]]:
    """`update_temperature` for each stacked λ (`init_temperatures`) with its own scheme's weights
    ``weights[m]`` (shape (M, ..., N)): every scheme of the menu stays on target, used or not; metrics per scheme."""
    return jax.vmap(lambda s, w: update_temperature(config, s, w))(state, weights)
