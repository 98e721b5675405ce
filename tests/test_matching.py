"""Tests of Stage 2 (SPEC §3–4): reweighted flow matching / ε-prediction losses, samplers, policies."""

import math
import os
import subprocess
import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simpo import CPU_VECTOR_FLAG
from simpo.matching import (
    DIFFUSION_T_RANGE,
    FLOW_T_RANGE,
    cosine_schedule,
    ddpm_sample,
    diffusion_loss,
    euler_sample,
    flow_matching_loss,
    matching_draws,
    slice_count,
    value_and_grad_in_slices,
)
from simpo.networks import VectorField
from simpo.policies import Policy, PolicyConfig, make_policy

LOSSES = {"flow": flow_matching_loss, "diffusion": diffusion_loss}
SAMPLERS = {"euler": euler_sample, "ddpm": ddpm_sample}
B, N, D, C = 4, 5, 2, 3


def tiny_net(cond_dim=None, hidden=(16, 16), seed=0, activation="mish"):
    net = VectorField(hidden_dims=hidden, time_dim=8, cond_dims=(8,), activation=activation)
    cond = None if cond_dim is None else jnp.zeros((1, cond_dim))
    params = net.init(jax.random.PRNGKey(seed), jnp.zeros((1, D)), jnp.zeros((1, 1)), cond)["params"]
    return (lambda p, x, t, c: net.apply({"params": p}, x, t, c)), params


def batch(seed=0, signed=True):
    rng = np.random.default_rng(seed)
    actions = jnp.asarray(rng.uniform(-1, 1, (B, N, D)), jnp.float32)
    w = rng.normal(size=(B, N)) if signed else rng.uniform(size=(B, N))
    w = w - (w.sum(-1, keepdims=True) - 1.0) / N  # sum to 1 over candidates
    return actions, jnp.asarray(w, jnp.float32)


def constant_predict(p, x, t, c):
    """A 'network' whose output is its params, to probe the loss with arbitrary predictions."""
    return jnp.broadcast_to(p, x.shape)


# ---------------------------------------------------------------- slices of a batch
@pytest.mark.parametrize("kind", LOSSES)
def test_loss_and_gradient_in_slices_are_the_whole_batchs_up_to_rounding(kind):
    predict, params = tiny_net(C)
    actions, w = batch()
    cond = jax.random.normal(jax.random.PRNGKey(3), (B, 1, C))
    key = jax.random.PRNGKey(1)
    draws = matching_draws(key, actions.shape, FLOW_T_RANGE if kind == "flow" else DIFFUSION_T_RANGE)
    # the draws are the ones the loss makes from the key itself
    assert LOSSES[kind](predict, params, key, actions, w, cond)[0] == LOSSES[kind](predict, params, None, actions, w, cond, draws=draws)[0]

    def fn(p, part):
        a, w, cond, draws = part
        return LOSSES[kind](predict, p, None, a, w, cond, draws=draws)

    whole = jax.value_and_grad(fn, has_aux=True)(params, (actions, w, cond, draws))
    in_slices = jax.jit(value_and_grad_in_slices, static_argnums=(0, 2))
    for slices in (1, 2, 4):
        got = in_slices(fn, params, slices, (actions, w, cond, draws))
        assert jax.tree.structure(got) == jax.tree.structure(whole)
        for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(whole)):  # to rounding, relative to each leaf's scale
            assert float(jnp.max(jnp.abs(x - y))) <= 1e-5 * float(jnp.max(jnp.abs(y))), (slices, x, y)
    with pytest.raises(ValueError, match="3 slices do not divide a batch of 4 states"):
        value_and_grad_in_slices(fn, params, 3, (actions, w, cond, draws))


@pytest.mark.parametrize("batch_size, rows_per_state, max_rows, expected", [
    (256, 64, 2048, 8), (256, 8, 2048, 1), (100, 64, 2048, 4), (256, 64, 0, 1), (7, 64, 10, 7), (6, 4, 8, 3)])
def test_slice_count_is_the_fewest_equal_slices_under_the_row_limit(batch_size, rows_per_state, max_rows, expected):
    assert slice_count(batch_size, rows_per_state, max_rows) == expected


# ---------------------------------------------------------------- shapes / jit
@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("with_cond", [False, True])
def test_loss_shapes_jit_and_grad(kind, with_cond):
    predict, params = tiny_net(C if with_cond else None)
    actions, w = batch()
    cond = jnp.ones((B, N, C)) if with_cond else None
    fn = lambda p, k: LOSSES[kind](predict, p, k, actions, w, cond)
    (loss, metrics), grads = jax.jit(jax.value_and_grad(fn, has_aux=True))(params, jax.random.PRNGKey(1))
    assert loss.shape == () and np.isfinite(loss)
    assert set(metrics) >= {"loss", "mse", "neg_weight_frac", "clip_frac"}
    assert float(metrics["neg_weight_frac"]) == pytest.approx(float((w < 0).mean()))
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("with_cond", [False, True])
def test_sampler_shapes_jit_and_box(name, with_cond):
    predict, params = tiny_net(C if with_cond else None)
    cond = jnp.ones((3, 7, C)) if with_cond else None
    sample = jax.jit(partial(SAMPLERS[name], predict), static_argnames=("shape", "steps", "clip"))
    x = sample(params, jax.random.PRNGKey(0), (3, 7, D), cond, steps=4)
    assert x.shape == (3, 7, D) and x.dtype == jnp.float32
    assert np.all(np.abs(x) <= 1.0)
    raw = sample(params, jax.random.PRNGKey(0), (3, 7, D), cond, steps=4, clip=False)
    assert raw.shape == (3, 7, D) and np.all(np.isfinite(raw))
    assert np.any(np.abs(raw) > 1.0)  # x0 ~ N(0, I) mostly stays outside the box under a random net


def test_cosine_schedule():
    t = jnp.linspace(0.0, 0.9946, 50)
    alpha, sigma = cosine_schedule(t)
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-6)
    assert float(alpha[0]) == pytest.approx(1.0) and float(alpha[-1]) < 0.01
    assert np.all(np.diff(alpha) < 0)


@pytest.mark.parametrize("t", [0.1, 0.25, 0.5, 0.75, 0.9])
def test_cosine_schedule_is_the_closed_form(t):
    """α(t) = cos(π/2 · (t + s)/(1 + s)) / cos(π/2 · s/(1 + s)) with s = 0.008, σ(t) = √(1 − α(t)²) (the authors'
    continuous cosine schedule); a linear VP schedule, another offset or a missing normaliser fails this."""
    s = 0.008
    alpha = math.cos(math.pi / 2 * (t + s) / (1 + s)) / math.cos(math.pi / 2 * s / (1 + s))
    got_alpha, got_sigma = cosine_schedule(jnp.float32(t))
    assert float(got_alpha) == pytest.approx(alpha, rel=1e-5)
    assert float(got_sigma) == pytest.approx(math.sqrt(1 - alpha**2), rel=1e-5)


def test_cosine_schedule_clips_time_at_the_authors_end():
    """t ∈ [1e-3, 0.9946] (DIFFUSION_T_RANGE); above 0.9946 the schedule is held at α(0.9946) > 0."""
    assert DIFFUSION_T_RANGE == (1e-3, 0.9946)
    end = cosine_schedule(jnp.float32(0.9946))
    np.testing.assert_array_equal(cosine_schedule(jnp.float32(1.0)), end)
    assert 0.0 < float(end[0]) < 0.01


# ---------------------------------------------------------------- samplers on an analytic Gaussian
TARGET_MEAN, TARGET_STD = 0.3, 0.2  # 1-D target a ~ N(0.3, 0.2²)


def exact_eps(params, x, t, cond):
    """ε*(x, t) = E[ε | a_t = x] for a ~ N(m, s²), a_t = α a + σ ε: σ (x − α m)/(α² s² + σ²)."""
    alpha, sigma = cosine_schedule(t)
    return sigma * (x - alpha * TARGET_MEAN) / (alpha**2 * TARGET_STD**2 + sigma**2)


def exact_velocity(params, x, t, cond):
    """v*(x, t) = E[a − x₀ | x_t = x] for a ~ N(m, s²), x₀ ~ N(0, 1), x_t = (1 − t) x₀ + t a:
    m + (t s² − (1 − t)) (x − t m) / ((1 − t)² + t² s²)."""
    var = (1 - t) ** 2 + t**2 * TARGET_STD**2
    return TARGET_MEAN + (t * TARGET_STD**2 - (1 - t)) * (x - t * TARGET_MEAN) / var


def sampler_moments(name, steps):
    """Exact mean and std of the K-step sampler's output given the exact field, in float64: with a Gaussian target
    every step is affine in x (plus independent noise), so x ~ N(m, v) stays Gaussian and (m, v) propagate exactly.

    Euler (SPEC §4): x ← x + v*(x, k/K)/K from x ~ N(0, 1).
    DDPM (Ho et al. eq. 7, σ_k² = β_k): x̂₀ = (x − √(1−ᾱ_k) ε*)/√ᾱ_k (= E[a | x]),
    x ← √ᾱ_{k−1} β_k/(1−ᾱ_k) x̂₀ + √α_k (1−ᾱ_{k−1})/(1−ᾱ_k) x + [k > 1] √β_k z, on t_k = 1e-3 + (0.9946 − 1e-3) k/K.
    """
    m, s, mean, var = TARGET_MEAN, TARGET_STD, 0.0, 1.0
    if name == "euler":
        for k in range(steps):
            t = k / steps
            c = (t * s**2 - (1 - t)) / ((1 - t) ** 2 + t**2 * s**2)  # v* = m + c (x − t m)
            mean, var = mean + (m + c * (mean - t * m)) / steps, (1 + c / steps) ** 2 * var
        return mean, math.sqrt(var)
    t_min, t_max = DIFFUSION_T_RANGE
    t = t_min + (t_max - t_min) * np.arange(steps + 1) / steps
    a_bar = (np.cos(np.pi / 2 * (t + 0.008) / 1.008) / np.cos(np.pi / 2 * 0.008 / 1.008)) ** 2
    for k in range(steps, 0, -1):
        a, sig2 = math.sqrt(a_bar[k]), 1 - a_bar[k]
        gain = a * s**2 / (a_bar[k] * s**2 + sig2)  # x̂₀ = E[a | x] = m + gain (x − a m)
        alpha_k = a_bar[k] / a_bar[k - 1]
        c1, c2 = math.sqrt(a_bar[k - 1]) * (1 - alpha_k) / sig2, math.sqrt(alpha_k) * (1 - a_bar[k - 1]) / sig2
        slope = c1 * gain + c2
        mean = slope * mean + c1 * (m - gain * a * m)
        var = slope**2 * var + (1 - alpha_k if k > 1 else 0.0)
    return mean, math.sqrt(var)


@pytest.mark.parametrize("name, steps, target_tol", [("ddpm", 20, 0.02), ("euler", 100, 0.01), ("euler", 10, None)])
def test_samplers_draw_a_gaussian_target_from_its_exact_field(name, steps, target_tol):
    """Given the exact ε* / v* of N(0.3, 0.2²), 100k samples have the mean and std of the K-step recursion
    (:func:`sampler_moments`, to 5 standard errors) and, for K large enough, those of the target itself.

    The DDPM noise variance is what sets the std: σ_k² = β̃_k instead of β_k gives 0.153 at K = 20, noise on the
    last step too 0.232, none 0.0003 (the recursion's 0.213 is the β_k choice's own bias). Euler: 0.154 at K = 10,
    0.195 at K = 100. Unclipped, so the box cannot mask a wrong spread; clipped, only the 3σ tails move."""
    sampler, field = {"ddpm": (ddpm_sample, exact_eps), "euler": (euler_sample, exact_velocity)}[name]
    n = 100_000
    sample = jax.jit(partial(sampler, field), static_argnames=("shape", "steps", "clip"))
    mean, std = sampler_moments(name, steps)
    for clip in (False, True):
        x = np.asarray(sample(None, jax.random.PRNGKey(0), (n, 1), steps=steps, clip=clip), np.float64)
        assert abs(x.mean() - mean) < 5 * std / math.sqrt(n), (clip, x.mean(), mean)  # 5 standard errors
        assert abs(x.std() - std) < 5 * std / math.sqrt(2 * n) + (2e-4 if clip else 0.0), (clip, x.std(), std)
        if target_tol is not None:  # K large enough: the target's own moments
            assert abs(x.mean() - TARGET_MEAN) < 5e-3 and abs(x.std() - TARGET_STD) < target_tol, (clip, x.mean(), x.std())


# ---------------------------------------------------------------- weighting
@pytest.mark.parametrize("kind", LOSSES)
def test_weights_are_constants(kind):
    predict, params = tiny_net()
    actions, w = batch()
    gw = jax.grad(lambda w_: LOSSES[kind](predict, params, jax.random.PRNGKey(0), actions, w_)[0])(w)
    np.testing.assert_array_equal(gw, 0.0)


@pytest.mark.parametrize("kind", LOSSES)
def test_zero_weights_give_zero_loss(kind):
    predict, params = tiny_net()
    actions, _ = batch()
    f = lambda p: LOSSES[kind](predict, p, jax.random.PRNGKey(0), actions, jnp.zeros((B, N)))[0]
    loss, grads = jax.jit(jax.value_and_grad(f))(params)
    assert float(loss) == 0.0
    assert all(np.all(g == 0) for g in jax.tree_util.tree_leaves(grads))


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("seed", range(3))
def test_error_clip_bounds_loss_below(kind, seed):
    """With negative weights the loss is unbounded below; clipping bounds it by −error_bound·Σ|w_neg|."""
    actions, w = batch(seed)
    bound = -5.0 * float(jnp.where(w < 0, -w, 0.0).sum(-1).mean())
    rng = np.random.default_rng(seed)
    # Adversarial outputs: huge error on negative-weight candidates, exact-ish elsewhere.
    scale = jnp.where(w[..., None] < 0, 1e3, 1e-3)
    out = jnp.asarray(rng.normal(size=(B, N, D)), jnp.float32) * scale
    key = jax.random.PRNGKey(seed)
    clipped, m = LOSSES[kind](constant_predict, out, key, actions, w, error_bound=5.0)
    unclipped, _ = LOSSES[kind](constant_predict, out, key, actions, w, error_bound=None)
    assert float(clipped) >= bound - 1e-4
    assert float(unclipped) < bound - 1.0  # the clip is what bounds it
    assert 0.0 < float(m["clip_frac"]) <= 1.0

    # ... and gradient descent on the outputs cannot break the bound either.
    opt = optax.adam(1.0)
    loss_fn = jax.jit(lambda o, k: LOSSES[kind](constant_predict, o, k, actions, w, error_bound=5.0)[0])
    state = opt.init(out)
    for k in jax.random.split(key, 30):
        g = jax.grad(loss_fn)(out, k)
        upd, state = opt.update(g, state)
        out = optax.apply_updates(out, upd)
        assert float(loss_fn(out, k)) >= bound - 1e-4


def test_uniform_weights_equal_plain_cfm():
    predict, params = tiny_net()
    actions, _ = batch()
    key = jax.random.PRNGKey(3)
    loss, m = flow_matching_loss(predict, params, key, actions, jnp.full((B, N), 1.0 / N), error_bound=None)
    k_t, k_x0 = jax.random.split(key)
    t = jax.random.uniform(k_t, (B, N, 1))
    x0 = jax.random.normal(k_x0, (B, N, D))
    plain = jnp.mean((predict(params, (1 - t) * x0 + t * actions, t, None) - (actions - x0)) ** 2)
    np.testing.assert_allclose(loss, plain, rtol=1e-5)
    np.testing.assert_allclose(m["mse"], plain, rtol=1e-5)


def test_diffusion_uniform_weights_and_authors_reduction():
    predict, params = tiny_net()
    actions, w = batch(signed=True)
    key = jax.random.PRNGKey(4)
    k_t, k_eps = jax.random.split(key)
    t = jax.random.uniform(k_t, (B, N, 1), minval=1e-3, maxval=0.9946)
    eps = jax.random.normal(k_eps, (B, N, D))
    alpha, sigma = cosine_schedule(t)
    err = jnp.clip((predict(params, alpha * actions + sigma * eps, t, None) - eps) ** 2, max=5.0)
    uniform, _ = diffusion_loss(predict, params, key, actions, jnp.full((B, N), 1.0 / N))
    np.testing.assert_allclose(uniform, err.mean(), rtol=1e-5)
    signed, _ = diffusion_loss(predict, params, key, actions, w)
    np.testing.assert_allclose(signed, (N * w[..., None] * err).mean(), rtol=1e-5)  # authors' form


# ---------------------------------------------------------------- fitting a delta
def fit(kind, loss_fn_kwargs, actions, weights, steps, lr, hidden, seed=0, activation="silu"):
    net = VectorField(hidden_dims=hidden, time_dim=16, cond_dims=(), activation=activation)
    predict = lambda p, x, t, c: net.apply({"params": p}, x, t, c)
    d = actions.shape[-1]
    params = net.init(jax.random.PRNGKey(seed), jnp.zeros((1, d)), jnp.zeros((1, 1)))["params"]
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, 0.03))

    @jax.jit
    def train(params, key):
        def body(carry, k):
            p, s = carry
            g, _ = jax.grad(
                lambda p_: LOSSES[kind](predict, p_, k, actions, weights, **loss_fn_kwargs), has_aux=True
            )(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), jax.random.split(key, steps))
        return params

    return predict, train(params, jax.random.PRNGKey(seed + 1))


@pytest.mark.parametrize("kind,sampler,steps", [("flow", euler_sample, 10), ("diffusion", ddpm_sample, 20)])
def test_fit_single_target_point(kind, sampler, steps):
    actions = jnp.full((256, 1, 1), 0.5)
    predict, params = fit(kind, {}, actions, jnp.ones((256, 1)), steps=600, lr=3e-3, hidden=(32, 32))
    x = sampler(predict, params, jax.random.PRNGKey(7), (512, 1), steps=steps)
    assert abs(float(x.mean()) - 0.5) < 0.05
    assert float(jnp.abs(x - 0.5).max()) < 0.25


# ---------------------------------------------------------------- Theorem 4.3
ATOMS = jnp.array([-0.6, 0.0, 0.6])
MASSES = jnp.array([0.7, -0.2, 0.5])  # signed measure μ = Σ m_j δ_{a_j}, total mass 1


def marginal_velocity(masses, x, t):
    """Theorem 4.3: v*(x,t) = Σ_j m_j u_t(x|a_j) p_t(x|a_j) / Σ_j m_j p_t(x|a_j), u_t(x|a) = (a − x)/(1 − t),
    p_t(x|a) = N(x; t a, (1 − t)²). Returns (v*, p_t(x))."""
    s = (1.0 - t)[..., None]
    p = jnp.exp(-((x[..., None] - t[..., None] * ATOMS) ** 2) / (2 * s**2)) / (s * jnp.sqrt(2 * jnp.pi))
    u = (ATOMS - x[..., None]) / s
    den = (masses * p).sum(-1)
    return (masses * p * u).sum(-1) / den, den


def test_theorem_4_3_signed_marginal_velocity():
    """Minimising the (unclipped) reweighted CFM loss with signed weights recovers v* of the signed measure.

    p_t(x) > 0 for every x when t ≤ 0.75 (it turns negative near x = 0 for t ≳ 0.78, where the loss is
    unbounded below), so training uses t ∼ U[0, 0.75]: the objective decouples over t, so its minimiser is
    still v* there. Checked on t ∈ [0.1, 0.7], |x| ≤ 1, where p_t ≥ 0.1.
    """
    n_states = 1024
    actions = jnp.broadcast_to(ATOMS[None, :, None], (n_states, 3, 1))
    weights = jnp.broadcast_to(MASSES, (n_states, 3))
    predict, params = fit(
        "flow", {"error_bound": None, "t_range": (0.0, 0.75)}, actions, weights, steps=2500, lr=3e-3, hidden=(64, 64)
    )
    x, t = jnp.meshgrid(jnp.linspace(-1.0, 1.0, 41), jnp.linspace(0.1, 0.7, 13))
    v_star, density = marginal_velocity(MASSES, x, t)
    assert float(density.min()) > 0.1
    v_learned = predict(params, x[..., None], t[..., None], None)[..., 0]

    def rel_rmse(v):
        return float(jnp.sqrt(jnp.mean((v_learned - v) ** 2) / jnp.mean(v_star**2)))

    err_star = rel_rmse(v_star)
    err_unweighted = rel_rmse(marginal_velocity(jnp.full(3, 1 / 3), x, t)[0])  # weights ignored
    err_positive = rel_rmse(marginal_velocity(jnp.array([0.7, 0.0, 0.5]) / 1.2, x, t)[0])  # negatives dropped
    assert err_star < 0.1, err_star
    assert err_unweighted > 3 * err_star and err_unweighted > 0.3, (err_star, err_unweighted)
    assert err_positive > 1.5 * err_star, (err_star, err_positive)  # the negative mass matters (repulsion)


# ---------------------------------------------------------------- policies
def test_policy_config_validation():
    with pytest.raises(ValueError, match="kind"):
        PolicyConfig(kind="gan")
    with pytest.raises(ValueError, match="steps"):
        PolicyConfig(steps=0)
    with pytest.raises(ValueError, match="error_bound"):
        PolicyConfig(error_bound=0.0)
    with pytest.raises(ValueError, match="hidden_dims"):
        PolicyConfig(hidden_dims=())
    with pytest.raises(ValueError, match="hidden_dims"):
        PolicyConfig(hidden_dims=(64, -1))
    with pytest.raises(ValueError, match="activation"):
        PolicyConfig(activation="gelu")
    assert PolicyConfig(hidden_dims=[8, 8]).hidden_dims == (8, 8)
    assert hash(PolicyConfig()) == hash(PolicyConfig())


@pytest.mark.parametrize("kind", ["flow", "diffusion"])
@pytest.mark.parametrize("cond_dim", [None, C])
def test_policy_roundtrip(kind, cond_dim):
    policy = make_policy(PolicyConfig(kind=kind, hidden_dims=(16,), time_dim=8, cond_dims=(8,), steps=3), D)
    assert isinstance(policy, Policy) and hash(policy) == hash(make_policy(policy.config, D))
    params = policy.init(jax.random.PRNGKey(0), cond_dim)
    states = None if cond_dim is None else jnp.ones((B, 1, cond_dim))
    sample = jax.jit(policy.sample, static_argnums=2)
    a = sample(params, jax.random.PRNGKey(1), (B, N), states)
    assert a.shape == (B, N, D) and np.all(np.abs(a) <= 1.0)
    _, w = batch()
    loss, metrics = jax.jit(policy.loss)(params, jax.random.PRNGKey(2), a, w, states)
    assert np.isfinite(loss) and "neg_weight_frac" in metrics


def test_mish_matches_its_definition():
    from simpo.networks import mish

    x = jnp.linspace(-120.0, 120.0, 100_001)
    reference = x * jnp.tanh(jax.nn.softplus(x))
    np.testing.assert_allclose(mish(x), reference, rtol=2e-6, atol=2e-6)
    grad = jax.grad(lambda v: mish(v).sum())(x)
    np.testing.assert_allclose(grad, jax.grad(lambda v: (v * jnp.tanh(jax.nn.softplus(v))).sum())(x), atol=2e-5)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_vmapped_orthogonal_init_runs_one_qr_at_a_time_with_unchanged_values():
    """A batched QR under vmap (critic ensemble, stacked seeds) deadlocked XLA's 2-thread CPU pool; the kernel
    init must lower to unbatched QRs and give flax's orthogonal(√2) values bit for bit."""
    import flax.linen as nn

    from simpo.networks import _kernel_init

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    batched = jax.vmap(lambda k: _kernel_init()(k, (8, 4)))
    qr_shapes = [line.split("=")[0] for line in str(jax.make_jaxpr(batched)(keys)).splitlines() if "= qr[" in line]
    assert qr_shapes and all("f32[3," not in s for s in qr_shapes), qr_shapes
    reference = nn.initializers.orthogonal(jnp.sqrt(2.0))
    np.testing.assert_array_equal(jax.jit(batched)(keys), jnp.stack([reference(k, (8, 4)) for k in keys]))


@pytest.mark.parametrize("user, expected", [
    (None, CPU_VECTOR_FLAG),
    ("--xla_cpu_enable_fast_math=false", f"--xla_cpu_enable_fast_math=false {CPU_VECTOR_FLAG}"),
    ("--xla_cpu_prefer_vector_width=256", "--xla_cpu_prefer_vector_width=256"),  # the user's choice stands
])
def test_import_sets_the_cpu_vector_width_unless_the_user_did(user, expected):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | ({"XLA_FLAGS": user} if user else {})
    out = subprocess.run([sys.executable, "-c", "import os, simpo; print(os.environ['XLA_FLAGS'])"], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == expected
