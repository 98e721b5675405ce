"""Stage 2 of SiMPO: projection of a (signed) weighted candidate set by reweighted matching (SPEC §3–4).

All functions are pure. A *predict* function has signature ``predict(params, x, t, cond) -> array like x``
(``t`` of shape ``(..., 1)``, ``cond`` of shape ``(..., c)`` or ``None``); it is the velocity ``v_θ`` for
flow matching and the noise prediction ``ε_θ`` for diffusion.

Shapes: ``actions`` ``(..., N, d)`` with N candidates per state, ``weights`` ``(..., N)`` summing to 1 over
candidates (entries may be negative), ``cond`` ``(..., N, c)`` (or broadcastable to it) or ``None``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = [
    "FLOW_T_RANGE",
    "DIFFUSION_T_RANGE",
    "cosine_schedule",
    "flow_matching_loss",
    "diffusion_loss",
    "matching_draws",
    "slice_count",
    "value_and_grad_in_slices",
    "euler_sample",
    "ddpm_sample",
]

Predict = Callable[[Any, jax.Array, jax.Array, "jax.Array | None"], jax.Array]

FLOW_T_RANGE = (0.0, 1.0)
#: The authors' continuous-time range for the cosine schedule, ``t ∈ [1e-3, 0.9946]``.
DIFFUSION_T_RANGE = (1e-3, 0.9946)
#: ``unroll`` of the samplers' and of the slices' ``lax.scan``. 1 compiles fastest and runs as fast on a CPU; XLA's
#: cost analysis counts a loop body once, so ``benchmarks/speed.py`` sets ``True`` to count every step.
UNROLL: int | bool = 1


def cosine_schedule(t: jax.Array, s: float = 0.008) -> tuple[jax.Array, jax.Array]:
    """Continuous cosine schedule ``α(t) = cos(π/2 · (t+s)/(1+s)) / cos(π/2 · s/(1+s))``, ``σ = √(1−α²)``.

    As in the authors' code, ``t`` is clipped to ``[0, 0.9946]`` (where α stays positive).
    """
    t = jnp.clip(t, 0.0, DIFFUSION_T_RANGE[1])
    alpha = jnp.cos(jnp.pi / 2.0 * (t + s) / (1.0 + s)) / jnp.cos(jnp.pi / 2.0 * s / (1.0 + s))
    sigma = jnp.sqrt(jnp.maximum(1.0 - alpha**2, 0.0))
    return alpha, sigma


def _weighted_loss(
    pred: jax.Array, target: jax.Array, weights: jax.Array, error_bound: float | None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``mean_B Σ_i w_i · mean_d min((pred_d − target_d)², error_bound)``: each element's squared error is clipped at
    ``error_bound`` (``None``: not clipped) before the mean over the action dims ``d``; weights are constants."""
    weights = jax.lax.stop_gradient(jnp.asarray(weights, jnp.float32))
    err = (pred - target) ** 2
    clipped = err if error_bound is None else jnp.minimum(err, error_bound)
    per_candidate = clipped.mean(axis=-1)  # (..., N)
    loss = (weights * per_candidate).sum(axis=-1).mean()
    metrics = {
        "loss": loss,
        "mse": err.mean(),
        "clip_frac": jnp.float32(0.0) if error_bound is None else (err > error_bound).mean(),
        "neg_weight_frac": (weights < 0).mean(),
    }
    return loss, metrics


def matching_draws(key: jax.Array, shape: tuple[int, ...], t_range: tuple[float, float]) -> tuple[jax.Array, jax.Array]:
    """The matching losses' random numbers for candidates of ``shape`` ``(..., N, d)``: one ``t ~ U[t_range]``
    ``(..., N, 1)`` and one N(0, I) draw ``(..., N, d)`` per candidate, from ``k_t, k_noise = jax.random.split(key)``."""
    k_t, k_noise = jax.random.split(key)
    t = jax.random.uniform(k_t, (*shape[:-1], 1), jnp.float32, t_range[0], t_range[1])
    return t, jax.random.normal(k_noise, shape, jnp.float32)


def _noised(key, actions, weights, t_range, draws):
    """Checked float32 inputs plus the draws: ``draws`` if given, else ``matching_draws(key, actions.shape, t_range)``."""
    actions = jnp.asarray(actions, jnp.float32)
    weights = jnp.asarray(weights, jnp.float32)
    if actions.ndim < 2 or weights.shape != actions.shape[:-1]:
        raise ValueError(
            f"expected actions (..., N, d) and weights (..., N); got {actions.shape} and {weights.shape}"
        )
    return actions, weights, *(matching_draws(key, actions.shape, t_range) if draws is None else draws)


def flow_matching_loss(
    predict: Predict,
    params: Any,
    key: jax.Array,
    actions: jax.Array,
    weights: jax.Array,
    cond: jax.Array | None = None,
    error_bound: float | None = 5.0,
    *,
    t_range: tuple[float, float] = FLOW_T_RANGE,
    draws: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Reweighted conditional flow matching (SPEC §3):

        L(θ) = E_s E_{t∼U[0,1], x₀∼N(0,I)} [ Σ_i w_i ‖ v_θ(x_t, t, s) − (a_i − x₀) ‖² ],  x_t = (1−t) x₀ + t a_i,

    with one independent ``(t, x₀)`` per candidate. The per-element squared error is clipped at
    ``error_bound`` (``None``: no clip), which bounds the loss below when weights are negative. The result is
    ``mean_B Σ_i w_i mean_d(err)``, equal to the authors' ``(N·w · err).mean()``. By Theorem 4.3 the minimiser
    (unclipped) is the marginal velocity of the signed measure ``μ = Σ_i w_i δ_{a_i}`` wherever ``p_t > 0``.

    Randomness: ``(t, x₀) = matching_draws(key, actions.shape, t_range)``, or ``draws`` if given (``key`` is then
    unused): drawn beforehand, they let a batch be split (:func:`value_and_grad_in_slices`) without changing them.
    ``t_range`` defaults to ``[0, 1)``; narrowing it restricts the objective to those times (the minimiser is
    unchanged there, since the loss decouples over t).

    Returns ``(loss, metrics)`` with ``loss``, unweighted unclipped ``mse``, ``clip_frac``, ``neg_weight_frac``.
    """
    actions, weights, t, x0 = _noised(key, actions, weights, t_range, draws)
    x_t = (1.0 - t) * x0 + t * actions
    pred = predict(params, x_t, t, cond)
    return _weighted_loss(pred, actions - x0, weights, error_bound)


def diffusion_loss(
    predict: Predict,
    params: Any,
    key: jax.Array,
    actions: jax.Array,
    weights: jax.Array,
    cond: jax.Array | None = None,
    error_bound: float | None = 5.0,
    *,
    t_range: tuple[float, float] = DIFFUSION_T_RANGE,
    draws: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Reweighted ε-prediction loss, the diffusion twin of SPEC §3:

        L(θ) = E_s E_{t∼U[1e-3, 0.9946], ε∼N(0,I)} [ Σ_i w_i ‖ ε_θ(a_t, t, s) − ε ‖² ],  a_t = α_t a_i + σ_t ε,

    with the cosine schedule (:func:`cosine_schedule`), per-element error clipped at ``error_bound`` and the
    same weighting/reduction as :func:`flow_matching_loss`.

    Randomness: ``(t, ε) = matching_draws(key, actions.shape, t_range)``, or ``draws`` if given, as in
    :func:`flow_matching_loss`.
    """
    actions, weights, t, eps = _noised(key, actions, weights, t_range, draws)
    alpha, sigma = cosine_schedule(t)
    a_t = alpha * actions + sigma * eps
    pred = predict(params, a_t, t, cond)
    return _weighted_loss(pred, eps, weights, error_bound)


def slice_count(batch: int, rows_per_state: int, max_rows: int) -> int:
    """How many equal slices of a ``batch`` of states :func:`value_and_grad_in_slices` takes so that each holds at
    most ``max_rows`` candidate rows (``rows_per_state`` per state): the smallest divisor of ``batch`` that gets there,
    or ``batch`` (one state per slice). ``max_rows`` 0: 1 (the whole batch at once)."""
    if max_rows <= 0:
        return 1
    return next(n for n in range(1, batch + 1) if (batch % n == 0 and batch // n * rows_per_state <= max_rows) or n == batch)


def value_and_grad_in_slices(fn: Callable, params: Any, slices: int, batch: Any) -> tuple[tuple[jax.Array, Any], Any]:
    """``jax.value_and_grad(fn, has_aux=True)(params, batch)`` for an ``fn`` whose value and aux are means over
    the leading (state) axis of every leaf of ``batch``, computed as the mean over ``slices`` equal slices of that
    axis, one slice after another (``lax.scan``), each slice's forward and backward pass together.

    The value, aux and gradient are the same up to float rounding (the sum is taken in another order); what
    changes is the memory traffic: a slice's activations can stay in the CPU's cache between the passes over them.
    On a 2-core Xeon the `paper` preset's Stage 2 (16,384 candidate rows) takes 0.60× the time in 8 slices
    (docs/benchmarks/slices.md). ``slices`` must divide the batch.
    """
    grad_fn = jax.value_and_grad(fn, has_aux=True)
    if slices == 1:
        return grad_fn(params, batch)
    size = jax.tree.leaves(batch)[0].shape[0]
    if size % slices:
        raise ValueError(f"{slices} slices do not divide a batch of {size} states")
    sliced = jax.tree.map(lambda x: x.reshape(slices, size // slices, *x.shape[1:]), batch)

    def add_slice(total, part):
        return jax.tree.map(jnp.add, total, grad_fn(params, part)), None

    shapes = jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[0], sliced))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    total, _ = jax.lax.scan(add_slice, zeros, sliced, unroll=UNROLL)  # UNROLL: as the samplers' (FLOP counts)
    return jax.tree.map(lambda x: x / slices, total)


def euler_sample(
    predict: Predict,
    params: Any,
    key: jax.Array,
    shape: tuple[int, ...],
    cond: jax.Array | None = None,
    steps: int = 10,
    clip: bool = True,
) -> jax.Array:
    """Flow sampler (SPEC §4): ``x₀ ∼ N(0, I)`` of ``shape`` ``(..., d)``, then K = ``steps`` Euler steps of
    ``dx/dt = v_θ(x, t, s)`` from t = 0 to 1 (``x ← x + v_θ(x, k/K)/K``); clipped to ``[−1, 1]`` when ``clip``.
    """
    shape = tuple(shape)
    dt = 1.0 / steps
    t_proto = jnp.ones((1,) * len(shape), jnp.float32)  # one t for all rows: broadcast

    def step(x, k):
        v = predict(params, x, t_proto * (k * dt), cond)
        return x + dt * v, None

    x = jax.random.normal(key, shape, jnp.float32)
    x, _ = jax.lax.scan(step, x, jnp.arange(steps, dtype=jnp.float32), unroll=UNROLL)
    return jnp.clip(x, -1.0, 1.0) if clip else x


def ddpm_sample(
    predict: Predict,
    params: Any,
    key: jax.Array,
    shape: tuple[int, ...],
    cond: jax.Array | None = None,
    steps: int = 20,
    clip: bool = True,
) -> jax.Array:
    """DDPM ancestral sampler on the continuous cosine schedule (SPEC §4; the authors' ``ContinuousDDPM.sample``,
    solver ``'ddpm'``).

    Times ``t_k = 1e-3 + (0.9946 − 1e-3) k/K``, ``ᾱ_k = α(t_k)²``, ``α_k = ᾱ_k/ᾱ_{k−1}`` (``α_0 = 1``),
    ``β_k = 1 − α_k``. From ``x ∼ N(0, I)``, for k = K…1:

        x̂₀ = (x − √(1−ᾱ_k) ε_θ(x, t_k, s)) / √ᾱ_k     (clipped to [−1, 1] when ``clip``)
        x  ← √ᾱ_{k−1} β_k/(1−ᾱ_k) · x̂₀ + √α_k (1−ᾱ_{k−1})/(1−ᾱ_k) · x + [k > 1] √β_k · z,   z ∼ N(0, I).

    The result is clipped to the box ``[−1, 1]`` when ``clip``.
    """
    shape = tuple(shape)
    t_min, t_max = DIFFUSION_T_RANGE
    ts = (t_max - t_min) * jnp.linspace(0.0, 1.0, steps + 1, dtype=jnp.float32) + t_min
    alpha_hats = cosine_schedule(ts)[0] ** 2
    alphas = jnp.concatenate([jnp.ones((1,), jnp.float32), alpha_hats[1:] / alpha_hats[:-1]])
    betas = 1.0 - alphas
    t_proto = jnp.ones((1,) * len(shape), jnp.float32)  # one t for all rows: broadcast

    def step(x, inputs):
        k, z_key = inputs
        eps = predict(params, x, t_proto * ts[k], cond)
        x0_hat = (x - jnp.sqrt(1.0 - alpha_hats[k]) * eps) / jnp.sqrt(alpha_hats[k])
        if clip:
            x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
        coef1 = jnp.sqrt(alpha_hats[k - 1]) * betas[k] / (1.0 - alpha_hats[k])
        coef2 = jnp.sqrt(alphas[k]) * (1.0 - alpha_hats[k - 1]) / (1.0 - alpha_hats[k])
        noise = jax.random.normal(z_key, shape, jnp.float32)
        x = coef1 * x0_hat + coef2 * x + (k > 1) * jnp.sqrt(betas[k]) * noise
        return x, None

    x_key, z_key = jax.random.split(key)
    x = jax.random.normal(x_key, shape, jnp.float32)
    ks = jnp.arange(steps, 0, -1)
    x, _ = jax.lax.scan(step, x, (ks, jax.random.split(z_key, steps)), unroll=UNROLL)
    return jnp.clip(x, -1.0, 1.0) if clip else x
