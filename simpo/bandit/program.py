"""The compiled programs of the bandit (see :mod:`simpo.bandit.run` for the algorithm and its defaults).

Two jitted, seed-vmapped programs: pretraining (plain CFM on the initial Gaussian) and the epoch loop (one
``lax.scan`` over epochs). Their static configurations are hashable frozen dataclasses, used as cache keys, so
repeated runs with the same configuration reuse the compiled code.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from simpo.advisor import AUTO_EMA_DECAY, AUTO_MENUS, choose_scheme, landscape_stats
from simpo.policies import Policy
from simpo.temperature import (
    TemperatureConfig,
    init_temperature,
    init_temperatures,
    temperature_value,
    update_temperature,
    weight_diagnostics,
)
from simpo.weighting import compute_weights

TEMPERATURE_RANGE = (1e-4, 10.0)  # a tuned λ is clipped to this range


@dataclass(frozen=True)
class _Pretrain:
    """What shapes the pretraining program (hashable cache key); shared by every scheme of a study."""

    policy: Policy
    init_mean: tuple[float, ...]
    init_std: tuple[float, ...]
    steps: int
    batch: int
    lr: float


@dataclass(frozen=True)
class _Static:
    """Everything that shapes the compiled epoch program (hashable: a jit/lru cache key).

    ``menu`` holds one or more ``(weighting, scheme_params)`` entries; the program picks one by a runtime index
    (``lax.switch``), so a study compiles a single program for all its schemes. A weighting ``"auto"`` or
    ``"auto_exp"`` is that ``--weighting`` of the agent: an EMA (``AUTO_EMA_DECAY`` per epoch) of the candidate
    rewards' skew picks the flat or steep scheme of its menu (``simpo.advisor.AUTO_MENUS``) by
    ``simpo.advisor.choose_scheme`` every epoch; each scheme of that menu has its own λ, tuned every epoch on its
    own weights (simpo.temperature.init_temperatures).
    """

    reward_fn: Callable
    policy: Policy
    menu: tuple[tuple[Any, tuple[tuple[str, float], ...]], ...]
    epochs: int
    groups: int
    num_candidates: int
    steps_per_epoch: int
    lr: float
    jitter: float
    temperature: TemperatureConfig
    temperature_steps: int
    max_reward: float
    pretrain: _Pretrain
    snapshot_epochs: tuple[int, ...]


def _pretrain_program(s: _Pretrain, key: jax.Array):
    """Initial params, then plain CFM (uniform weights) on the clipped Gaussian N(init_mean, init_std²)."""
    pol, d = s.policy, s.policy.action_dim
    mean, std = jnp.asarray(s.init_mean, jnp.float32), jnp.asarray(s.init_std, jnp.float32)
    k_init, k_pre = jax.random.split(key)
    params = pol.init(k_init, None)
    opt = optax.adam(s.lr)
    uniform = jnp.full((1, s.batch), 1.0 / s.batch)

    def step(carry, k):
        params, opt_state = carry
        k_a, k_l = jax.random.split(k)
        a = jnp.clip(mean + std * jax.random.normal(k_a, (1, s.batch, d)), -1.0, 1.0)
        grads, _ = jax.grad(pol.loss, has_aux=True)(params, k_l, a, uniform)
        upd, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, upd), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(k_pre, s.steps))
    return params


def _epoch_program(s: _Static, scheme: jax.Array, key: jax.Array, params: Any):
    """``epochs`` SiMPO epochs from pretrained ``params`` for one seed key (vmapped over seeds by the caller),
    with weighting ``s.menu[scheme]``."""
    pol, d = s.policy, s.policy.action_dim
    shape = (s.groups, s.num_candidates)
    options = [_options(g, dict(kw)) for g, kw in s.menu]  # per menu entry: its schemes, (r, λ) -> weights
    has_auto = any(_is_auto(g) for g, _ in s.menu)
    is_auto = jnp.asarray([_is_auto(g) for g, _ in s.menu])[scheme]
    width = max(len(o) for o in options)  # λs per run: one per scheme of an auto menu, else one

    def option(k: int) -> Callable:
        """Scheme k of the menu entry in use (a fixed scheme's only one) as (r, λ) -> weights."""
        fns = [o[min(k, len(o) - 1)] for o in options]
        return fns[0] if len(fns) == 1 else lambda r, lam: jax.lax.switch(scheme, fns, r, lam)

    def rewards(a):
        return s.reward_fn(a.reshape(-1, d)).reshape(a.shape[:-1])

    opt = optax.adam(s.lr)
    log_lo, log_hi = math.log(TEMPERATURE_RANGE[0]), math.log(TEMPERATURE_RANGE[1])

    def tune(ts, r, weights):
        """`temperature_steps` warm-started steps of one log λ on this epoch's rewards."""
        def step(ts, _):
            ts, _ = update_temperature(s.temperature, ts, weights(r, temperature_value(ts)))
            return ts._replace(log_temperature=jnp.clip(ts.log_temperature, log_lo, log_hi)), None
        return jax.lax.scan(step, ts, None, length=s.temperature_steps)[0]

    def tune_all(ts, r):
        """Every scheme's λ on its own weights (an auto menu: each λ stays on its scheme's scale, used or not)."""
        if width == 1:
            return tune(ts, r, option(0))
        tuned = [tune(jax.tree.map(lambda x: x[k], ts), r, option(k)) for k in range(width)]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *tuned)

    snap_at = jnp.asarray(s.snapshot_epochs, jnp.int32)

    def epoch(carry, inputs):
        k, e = inputs  # e: 0-based epoch index
        params, opt_state, temp_state, auto_skew, snaps = carry
        k_s, k_j, k_l = jax.random.split(k, 3)
        fresh = pol.sample(params, k_s, shape)  # π_old samples
        r_fresh = rewards(fresh)
        regret = s.max_reward - jnp.mean(r_fresh)  # of the policy after the previous epoch
        cands, r = fresh, r_fresh
        if s.jitter > 0:
            cands = jnp.clip(fresh + s.jitter * jax.random.normal(k_j, fresh.shape), -1.0, 1.0)
            r = rewards(cands)
        if has_auto:  # the EMA includes this epoch's candidates, as the agent's does its batch
            auto_skew = AUTO_EMA_DECAY * auto_skew + (1.0 - AUTO_EMA_DECAY) * landscape_stats(r)["skew"]
        choice = jnp.where(is_auto, choose_scheme(auto_skew), 0)
        if s.temperature.target != "fixed":
            temp_state = tune_all(temp_state, r)
        lams = temperature_value(temp_state)
        if width == 1:
            lam, w = lams, option(0)(r, lams)
        else:
            lam = lams[choice]
            w = jax.lax.switch(choice, [lambda r, k=k: option(k)(r, lams[k]) for k in range(width)], r)

        def step(c, kk):
            p, o = c
            (loss, _), g = jax.value_and_grad(pol.loss, has_aux=True)(p, kk, cands, w)
            upd, o = opt.update(g, o, p)
            return (optax.apply_updates(p, upd), o), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state),
                                                   jax.random.split(k_l, s.steps_per_epoch))
        diag = {k.split("/")[-1]: v for k, v in weight_diagnostics(w).items()}
        diag.update(temperature=lam, loss=jnp.mean(losses), mean_reward=jnp.mean(r),
                    improvement=jnp.mean(jnp.sum(w * r, -1) - jnp.mean(r, -1)))
        if has_auto:  # -1 / NaN for the menu's other schemes
            diag.update(auto_choice=jnp.where(is_auto, choice, -1), auto_skew=jnp.where(is_auto, auto_skew, jnp.nan))
        # keep the params after epoch e + 1 if it is a snapshot epoch (a masked write: no per-epoch copies)
        hit = snap_at == e + 1
        snaps = jax.tree.map(lambda S, p: jnp.where(hit.reshape((-1,) + (1,) * p.ndim), p[None], S), snaps, params)
        return (params, opt_state, temp_state, auto_skew, snaps), (regret, diag)

    snaps = jax.tree.map(lambda p: jnp.zeros((len(s.snapshot_epochs),) + p.shape, p.dtype), params)
    temp_state = init_temperature(s.temperature) if width == 1 else init_temperatures(s.temperature, width)
    carry = (params, opt.init(params), temp_state, jnp.zeros((), jnp.float32), snaps)
    k_ep, k_final = jax.random.split(key)
    (params, _, _, _, snaps), (regrets, diag) = jax.lax.scan(
        epoch, carry, (jax.random.split(k_ep, s.epochs), jnp.arange(s.epochs, dtype=jnp.int32)))
    final = pol.sample(params, k_final, (s.groups * s.num_candidates,))
    final_regret = s.max_reward - jnp.mean(s.reward_fn(final))
    regret = jnp.concatenate([regrets[1:], final_regret[None]])
    return regret, regrets[0], final, diag, params, snaps


def _is_auto(weighting) -> bool:
    return isinstance(weighting, str) and weighting in AUTO_MENUS


def _options(weighting, params: dict) -> list[Callable]:
    """One menu entry's schemes as ``(r, λ) -> weights``: an ``"auto"``/``"auto_exp"`` entry's AUTO_MENUS pair
    (the auto choice picks one), a fixed scheme's one."""
    if _is_auto(weighting):
        return [lambda r, lam, g=g: compute_weights(r, g, lam) for g in AUTO_MENUS[weighting]]
    return [lambda r, lam: compute_weights(r, weighting, lam, **params)]


@functools.lru_cache(maxsize=16)
def _compiled_pretrain(static: _Pretrain):
    return jax.jit(jax.vmap(functools.partial(_pretrain_program, static)))


@functools.lru_cache(maxsize=32)
def _compiled(static: _Static):
    return jax.jit(jax.vmap(functools.partial(_epoch_program, static), in_axes=(None, 0, 0)))
