"""Stage 1 of SiMPO: the weights of the virtual target measure.

For one state with N candidates a_i ~ pi_old and critic values q_i, the f-divergence-regularised
improvement problem (SPEC §2, paper Eq. for mu) has the solution

    mu(a_i|s) ∝ pi_old(a_i|s) · g((q_i - nu(s)) / lambda),      sum_i w_i = 1,

so the empirical target puts weight  w_i = g(z_i - nu)  on candidate i, with z_i = q_i / lambda and
the normaliser nu solved for the g that is actually applied. `compute_weights` does that for every
built-in g and for any user-supplied increasing g. Everything here is a pure array function that
works under `jit` and `vmap`; validation of Python-level arguments happens eagerly, before tracing.

Numerics: all schemes work on u_i = (q_i - max_j q_j) / lambda, which is <= 0 with its top entry
exactly 0, so huge critic values or tiny temperatures never overflow. Since w = g(u - nu') with
nu' = nu - max z, shifting by max z changes nothing mathematically. u saturates at -finfo.max / 4N
(float32: 8.5e37 / N) so that sums over N candidates stay finite. That changes nothing for the schemes
whose weight tends to a constant as u -> -inf (exp, linear, square, power: 0; a floored signed_linear:
the floor): a saturated candidate already has that weight. It does change the others, whose weights keep
depending on how far below the top a candidate lies: those affine in u (unfloored signed_linear, a user g
such as leaky ReLU) and wd1's -c·softmax(-u). Saturated candidates then all count as equally far (N = 4,
q = 0..3, lambda = 1e-38: wd1 gives -1/3 to each of the three lower candidates instead of -1 to the worst),
which takes |q - max q| / lambda beyond 8.5e37 / N.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import re
import sys
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Weighting = str | Callable[[jax.Array], jax.Array]

SCHEMES: dict[str, str] = {
    "exp": "softmax of q/λ; forward KL, DPMD (Example 3.1)",
    "linear": "max(q/λ − ν, 0), sparsemax; χ², QVPO-like (Example 3.2)",
    "square": "max(q/λ − ν, 0)²; α-divergence with p = 2",
    "power": "max(q/λ − ν, 0)^p, p ≥ 0.5; α-divergence with p = 1/(α − 1) (Example 3.3)",
    "signed_linear": "max(q/λ − ν, floor), floor ≤ 0 (default −inf: q/λ − mean + 1/N); signed",
    "wd1": "(1 + c)·softmax(q/λ) − c·softmax(−q/λ), c ≥ 0 (wd1-style, Example 3.4; our form); signed",
}
_PARAMS: dict[str, dict[str, float]] = {
    "exp": {},
    "linear": {},
    "square": {},
    "power": {"p": 2.0},
    "signed_linear": {"floor": -math.inf},
    "wd1": {"negative_mass": 1.0},
}
SCHEME_PARAMETER: dict[str, str] = {scheme: name for scheme, params in _PARAMS.items() for name in params}
"""The schemes that take a parameter -> its keyword in `compute_weights` (power: p, signed_linear: floor, wd1:
negative_mass)."""
MAX_CANDIDATES = 2**16
"""The most candidates per state (N, M, k) any entry point accepts: an update draws B x N policy samples
(16.8M at B = 256, N = 2**16); far larger N overflowed array sizes or aborted inside XLA."""


def check_candidates(name: str, value, least: int = 1) -> int:
    """`value` as an int in [least, MAX_CANDIDATES], else a one-line ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not least <= value <= MAX_CANDIDATES:
        raise ValueError(f"{name} must be an int in [{least}, {MAX_CANDIDATES}], got {value!r}")
    return int(value)


_BISECTION_ITERS = 48  # halves a bracket of width <= 2^6 well below float32 resolution
_SUPPORT_ITERS = 32  # enough to find the support; ν then comes from its closed form
_BRACKET_ITERS = 64  # x4 growth steps when bracketing ν for a user g: reach 4^64 = 2^128 > float32 max


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def validate_scheme(scheme: Weighting, params: dict) -> dict:
    """Fill defaults and validate scheme parameters; raises ValueError with one clear line."""
    if callable(scheme):
        if params:
            raise ValueError(f"a callable weighting takes no parameters, got {sorted(params)}")
        return {}
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown weighting scheme {scheme!r}; allowed: {', '.join(SCHEMES)}, or a callable g"
        )
    allowed = _PARAMS[scheme]
    unknown = set(params) - set(allowed)
    if unknown:
        takes = ", ".join(allowed) if allowed else "no parameters"
        raise ValueError(f"scheme {scheme!r} takes {takes}; got {', '.join(sorted(unknown))}")
    merged = {**allowed, **params}
    checks = {
        # p < 0.5: a candidate near ν needs u − ν below float32's resolution (p = 0.1: weight 0.09 at u − ν = 2e-11),
        # so such weights came out 0 or far off (vs float64: up to 0.035 at p = 0.2, 0.16 at p = 0.1; 7.5e-5 at 0.5)
        "p": (lambda v: (v >= 0.5) & (v < math.inf), "must be >= 0.5 and finite (smaller p: float32 cannot resolve the weights near ν)"),
        "floor": (lambda v: v <= 0, "must be <= 0 (use -inf for no floor)"),
        "negative_mass": (lambda v: (v >= 0) & (v < math.inf), "must be >= 0 and finite"),
    }
    for name, value in merged.items():
        ok, rule = checks[name]
        if _is_concrete(value) and not np.all(ok(np.asarray(value))):
            raise ValueError(f"weighting {scheme!r}: {name}={value} {rule}")
    return merged


def _shifted_values(q: jax.Array, temperature) -> jax.Array:
    """u = (q - max q) / λ over the last axis: u <= 0, top entry exactly 0 (no overflow)."""
    # XLA flushes subnormals to zero: keep λ a normal float so u stays finite.
    lam = jnp.maximum(jnp.asarray(temperature, q.dtype), jnp.finfo(q.dtype).tiny)
    if lam.ndim > 0:
        lam = lam[..., None]
    shifted = q - jax.lax.stop_gradient(jnp.max(q, axis=-1, keepdims=True))
    # Saturate at -finfo.max / (4N) so sums over N candidates stay finite. Exact for weights that tend to a
    # constant as u -> -inf (zero weight, or the floor); weights affine in u (unfloored signed_linear, a leaky
    # user g) and wd1's negative part instead treat all saturated candidates as equal (module docstring).
    bound = float(jnp.finfo(q.dtype).max) / (4 * q.shape[-1])
    return jnp.maximum(shifted / lam, -bound)


def _bisect_normaliser(total: Callable, lo: jax.Array, hi: jax.Array, iters: int = _BISECTION_ITERS) -> jax.Array:
    """Fixed-iteration bisection for the ν with total(ν) = 1, total decreasing, total(lo) >= 1 >= total(hi)."""

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        above = total(mid) > 1.0
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iters, body, (lo, hi))
    return 0.5 * (lo + hi)


def _support_threshold(u: jax.Array, g: Callable, lo: float) -> jax.Array:
    """An approximate ν on [lo, 0], used only to find which candidates are above the threshold.

    ν itself then comes from its closed form on that support, so the result is exact. Bisection
    replaces the textbook sort + cumulative sum: XLA's sort of a (256, 64) array costs about 1 ms
    on a CPU, 50x a softmax.
    """
    total = lambda nu: jnp.sum(g(u - nu), axis=-1, keepdims=True)
    zero = jnp.zeros(u.shape[:-1] + (1,), u.dtype)
    return _bisect_normaliser(total, zero + lo, zero, iters=_SUPPORT_ITERS)


def _floored_linear(u: jax.Array, floor: float) -> jax.Array:
    """w = max(u - ν, floor) with Σ w = 1 (sparsemax for floor = 0, Example 3.2).

    With the set A of k candidates above the floor, Σ_{i∈A}(u_i - ν) + (N - k)·floor = 1, so
    ν = (Σ_{i∈A} u_i + (N - k)·floor - 1) / k. The floor used for ν is the floor applied.
    """
    n = u.shape[-1]
    if math.isinf(floor):  # no floor: the closed form u - mean(u) + 1/N (scaled: no overflow)
        scale = jnp.maximum(jnp.max(jnp.abs(u), axis=-1, keepdims=True), 1.0)
        us = u / scale
        return scale * (us - jnp.mean(us, axis=-1, keepdims=True)) + 1.0 / n
    # Candidates with u <= N·floor - 1 sit on the floor whatever ν is; clamping keeps sums finite.
    u = jnp.maximum(u, n * floor - 2.0)
    # ν >= -(1 - (N - 1)·floor): the top candidate (u = 0) carries at most that much weight.
    nu_approx = _support_threshold(u, lambda x: jnp.maximum(x, floor), -1.0 + (n - 1) * floor)
    active = u - nu_approx > floor
    k = jnp.maximum(jnp.sum(active, axis=-1, keepdims=True), 1).astype(u.dtype)
    nu = (jnp.sum(jnp.where(active, u, 0.0), axis=-1, keepdims=True) + (n - k) * floor - 1.0) / k
    return jnp.maximum(u - nu, floor)


def _square(u: jax.Array) -> jax.Array:
    """w = max(u - ν, 0)² with Σ w = 1. On the support A of k candidates, ν is the smaller root of
    k ν² - 2 S1 ν + S2 - 1 = 0, with S1 = Σ_A u_i and S2 = Σ_A u_i²."""
    u = jnp.maximum(u, -2.0)  # entries below -1 are never active (ν >= max u - 1 = -1)
    active = u > _support_threshold(u, lambda x: jnp.maximum(x, 0.0) ** 2, -1.0)
    k = jnp.maximum(jnp.sum(active, axis=-1, keepdims=True), 1).astype(u.dtype)
    S1 = jnp.sum(jnp.where(active, u, 0.0), axis=-1, keepdims=True)
    S2 = jnp.sum(jnp.where(active, u**2, 0.0), axis=-1, keepdims=True)
    nu = (S1 - jnp.sqrt(jnp.maximum(S1**2 - k * (S2 - 1.0), 0.0))) / k
    return jnp.maximum(u - nu, 0.0) ** 2


def _power(u: jax.Array, p) -> jax.Array:
    """w = max(u - ν, 0)^p with Σ w = 1; ν lies in [max u - 1, max u] = [-1, 0]."""
    u = jnp.maximum(u, -2.0)
    g = lambda x: jnp.maximum(x, 0.0) ** p
    total = lambda nu: jnp.sum(g(u - nu), axis=-1, keepdims=True)
    lo = jnp.full(u.shape[:-1] + (1,), -1.0, u.dtype)
    nu = _bisect_normaliser(total, lo, jnp.zeros_like(lo))
    w = g(u - nu)
    return w / jnp.sum(w, axis=-1, keepdims=True)


def _wd1(u: jax.Array, negative_mass) -> jax.Array:
    """(1 + c)·softmax(u) - c·softmax(-u), Σ w = 1. Its positive mass (the sum of the positive weights) and
    negative mass (minus the sum of the negative ones) approach 1 + c and c only as λ → 0, where the two softmaxes
    become one-hot on the best and the worst candidate; at larger λ the two terms overlap and cancel (c = 1, N = 64,
    Gaussian Q: negative mass 1.0 at λ = 0.1, 0.56 at λ = 1, 2e-5 at λ = 10; as λ → ∞ the weights become uniform,
    with none). This form is ours: the paper's Example 3.4 text was not recoverable (docs/paper_notes.md); it keeps
    wd1's repulsion from softmax(-u)."""
    return (1.0 + negative_mass) * jax.nn.softmax(u, axis=-1) - negative_mass * jax.nn.softmax(-u, axis=-1)


def _custom(u: jax.Array, g: Callable) -> tuple[jax.Array, jax.Array]:
    """w = g(u - ν) for an increasing user g; ν bracketed by geometric steps, then bisected."""
    total = lambda nu: jnp.sum(g(u - nu), axis=-1, keepdims=True)
    zero = jnp.zeros(u.shape[:-1] + (1,), u.dtype)

    def widen(_, state):
        lo, hi, step = state
        lo = jnp.where(total(lo) < 1.0, lo - step, lo)
        hi = jnp.where(total(hi) > 1.0, hi + step, hi)
        return lo, hi, 4.0 * step

    lo, hi, _ = jax.lax.fori_loop(0, _BRACKET_ITERS, widen, (zero - 1.0, zero, zero + 1.0))
    solvable = (total(lo) >= 1.0) & (total(hi) <= 1.0)
    nu = _bisect_normaliser(total, lo, hi, iters=_BISECTION_ITERS + 2 * _BRACKET_ITERS)
    w = g(u - nu)
    # Tidy the last round-off only for non-negative weights; for signed ones it would amplify it.
    nonneg = jnp.all(w >= 0, axis=-1, keepdims=True)
    w = jnp.where(nonneg, w / jnp.sum(w, axis=-1, keepdims=True), w)
    return jnp.where(solvable, w, jnp.nan), nu


def check_increasing(g: Callable, u: jax.Array, name: str = "g") -> None:
    """Raise ValueError if g decreases anywhere on [min u, max u] (checked on u and a dense grid)."""
    u = jnp.asarray(u, jnp.float32)
    lo, hi = float(jnp.min(u)), float(jnp.max(u))
    grid = jnp.sort(jnp.concatenate([u.ravel(), jnp.linspace(lo, hi, 257)]))
    values = jnp.asarray(g(grid), jnp.float32)
    if values.shape != grid.shape:
        raise ValueError(f"weighting {name} must map an array to an array of the same shape")
    if not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError(f"weighting {name} is not finite on the observed range [{lo:.3g}, {hi:.3g}]")
    drops = values[:-1] - values[1:]
    tol = 1e-6 * (1.0 + jnp.abs(values[:-1]))
    if bool(jnp.any(drops > tol)):
        at = float(grid[int(jnp.argmax(drops - tol))])
        raise ValueError(
            f"weighting {name} must be increasing; it decreases near x={at:.3g} "
            f"on the observed range [{lo:.3g}, {hi:.3g}]"
        )


_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def is_import_path(name: str) -> bool:
    """Whether ``name`` reads ``MODULE:FUNCTION`` (an increasing g of the user's), not a built-in scheme (nor a
    scheme with a malformed parameter, such as ``power:p``)."""
    return isinstance(name, str) and _IMPORT_PATH.fullmatch(name) is not None and name.split(":")[0] not in SCHEMES


@functools.lru_cache(maxsize=None)
def load_weighting(path: str) -> Callable[[jax.Array], jax.Array]:
    """The user's g named by ``MODULE:FUNCTION`` (e.g. ``mygs:leaky``), so that a config, which must stay text
    (config.json, resume), can name any increasing g. The module is imported as installed, from PYTHONPATH or
    from the current directory. Checked once on spread-out values: g is increasing there and a normaliser ν
    with Σ g(q/λ − ν) = 1 exists (as `compute_weights` checks eagerly); raises ValueError naming ``path``."""
    module_name, attr = path.split(":")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        g = importlib.import_module(module_name)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - any failure of the user's module is one line
        raise ValueError(f"weighting {path!r}: cannot import {module_name} ({type(err).__name__}: {err}); the "
                         "module must be installed, on PYTHONPATH or in the current directory") from None
    finally:
        if added:
            sys.path.remove(cwd)
    for part in attr.split("."):
        if not hasattr(g, part):
            raise ValueError(f"weighting {path!r}: {module_name} has no attribute {attr}")
        g = getattr(g, part)
    if not callable(g):
        raise ValueError(f"weighting {path!r}: {attr} is a {type(g).__name__}, not a function g(x)")
    try:
        compute_weights(jnp.linspace(-3.0, 3.0, 8)[None], g)
    except (ValueError, TypeError) as err:
        raise ValueError(f"weighting {path!r}: {err}") from None
    except Exception as err:  # noqa: BLE001 - g itself failed: name it, in one line
        raise ValueError(f"weighting {path!r}: g failed on test values ({type(err).__name__}: {err})") from None
    return g


def compute_weights(q: jax.Array, scheme: Weighting = "exp", temperature=1.0, **params) -> jax.Array:
    """Weights w_i = g(q_i/λ − ν) of the (signed) target measure; Σ_i w_i = 1 over the last axis.

    Args:
      q: critic values, shape (..., N): N candidates per state.
      scheme: a name in `SCHEMES` or an increasing callable g (ν is then solved numerically).
      temperature: λ > 0, a scalar or an array of shape q.shape[:-1] (one λ per state).
      **params: `p` for "power", `floor` for "signed_linear", `negative_mass` (c) for "wd1".

    Returns weights with q's shape. Under `jit` a callable g whose ν cannot be bracketed gives NaN;
    called eagerly, a g that is not increasing on the observed range raises ValueError.
    """
    params = validate_scheme(scheme, params)
    q = jnp.asarray(q)
    if not jnp.issubdtype(q.dtype, jnp.floating):
        q = q.astype(jnp.float32)
    if q.ndim < 1 or q.shape[-1] < 1:
        raise ValueError(f"q must have shape (..., N) with N >= 1 candidates, got {q.shape}")
    if _is_concrete(temperature) and not np.all((np.asarray(temperature) > 0) & np.isfinite(temperature)):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    u = _shifted_values(q, temperature)
    if callable(scheme):
        w, nu = _custom(u, scheme)
        if _is_concrete(w):
            name = getattr(scheme, "__name__", "g")
            solved = bool(jnp.all(jnp.isfinite(w)))
            args = u - nu if solved else u  # the observed range of g's argument
            check_increasing(scheme, args[jnp.isfinite(args)], name)
            if not solved:
                raise ValueError(
                    f"weighting {name}: no normaliser ν makes Σ g(q/λ − ν) = 1 "
                    "(g must reach 1/N: e.g. g = exp, x ↦ max(x, 0)^p, or 1/N + x)"
                )
        return w
    if scheme == "exp":
        return jax.nn.softmax(u, axis=-1)
    if scheme == "linear":
        return _floored_linear(u, 0.0)
    if scheme == "square":
        return _square(u)
    if scheme == "power":
        p = params["p"]
        if isinstance(p, (int, float)) and p in (1, 2):
            return _floored_linear(u, 0.0) if p == 1 else _square(u)
        return _power(u, p)
    if scheme == "signed_linear":
        return _floored_linear(u, float(params["floor"]))
    return _wd1(u, params["negative_mass"])


BEST_ADVANTAGE = "best_advantage"


def best_advantage_weights(q: jax.Array) -> jax.Array:
    """QVPO's weights as its authors' port computes them (flow-rl qvpo.py, ``reweight="adv"``): all weight on the
    best candidate, w_best = q_max − mean_j q_j (its advantage over V̂(s), the candidates' mean Q), 0 elsewhere.

    Not a member of SiMPO's family g((q − ν)/λ): not normalised, no temperature. It is the λ → 0 limit of
    ``linear`` (argmax weights), scaled per state by that state's advantage, so states where the best candidate
    stands out more weigh more in Stage 2.
    """
    q = jnp.asarray(q)
    best = jnp.argmax(q, axis=-1)
    advantage = jnp.max(q, axis=-1) - jnp.mean(q, axis=-1)
    return jax.nn.one_hot(best, q.shape[-1], dtype=q.dtype) * advantage[..., None]

