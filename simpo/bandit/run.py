"""The state-less bandit (SPEC §6): a flow or diffusion policy over [−1, 1]^d improved by SiMPO reweighting.

One epoch, for every seed at once (``jax.vmap``) and every epoch in one ``lax.scan`` under one ``jax.jit``:

1. π_old = the current policy; draw ``groups × num_candidates`` candidates from it (``groups`` plays the
   role of states: the weights are normalised per group of ``num_candidates``), add ``jitter``·N(0, I) and
   clip to the box;
2. rewards r_i = reward_fn(a_i); weights w = compute_weights(r per group, weighting, λ, **scheme params)
   (Stage 1); λ fixed or tuned every epoch (``temperature_target``);
3. ``steps_per_epoch`` Adam steps on the reweighted matching loss ``policy.loss`` (Stage 2).

Regret = max r − E_π[r]. E_π[r] is the mean reward of the ``groups × num_candidates`` fresh, un-jittered
samples the next epoch draws from the updated policy anyway (the last epoch draws one extra batch), so
evaluation costs no extra sampling. Before epoch 1 the policy is pretrained by plain CFM (uniform weights) on
the clipped Gaussian N(init_mean, init_std²) (default N(0, I): a standard-normal-clipped policy).

Defaults (:data:`DEFAULTS`) are sized for [0, 1]-scaled rewards and for speed on a small CPU:

- λ is tuned every epoch, as the authors tune it, towards KL(w̃ ‖ uniform) = ``kl_target`` = 1.0 (the authors
  use 2.0 for MuJoCo; 1.0 moves the bandit policy less greedily), by ``temperature_steps`` = 10 Adam steps
  (lr 0.1) on log λ against this epoch's rewards, warm-started from the last λ (initially 0.1) and kept in
  [1e-4, 10]. Matching the KL puts all schemes at the same concentration, so they differ in the *shape* of
  g. ``temperature_target="fixed"`` keeps λ = ``temperature`` (at equal λ, sparsemax-type schemes are about N
  times more aggressive than exp, since g′ ≈ 1 against exp's 1/N near uniform weights).
- ``jitter`` = 0.2: the authors' additive exploration noise on candidates (SPEC §5).
- 16 groups × 64 candidates, 2 Adam steps (1e-3) per epoch; an MLP (64, 64), silu, 8-dim time embedding and
  8 Euler steps; 300 pretraining steps (Adam 3e-3, batch 256).

Compilation dominates the cost on a CPU: a study (:func:`merge_plans`) compiles one program for all its schemes
(``lax.switch`` on a runtime scheme index) and one pretraining program, shared by every scheme, so all schemes
start from the same pretrained policy per seed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from simpo.advisor import AUTO_MENUS
from simpo.bandit.landscapes import estimate_max_reward
from simpo.bandit.program import _compiled, _compiled_pretrain, _Pretrain, _Static
from simpo.policies import Policy, PolicyConfig, make_policy
from simpo.temperature import TemperatureConfig, check_reachable
from simpo.weighting import SCHEME_PARAMETER, SCHEMES, check_candidates, compute_weights

__all__ = ["BanditResult", "DEFAULTS", "SCHEME_PARAMS", "execute", "merge_plans", "prepare", "run"]

#: Bandit parameters accepted by :func:`run` (through ``**params``) and their defaults.
DEFAULTS: dict[str, Any] = {
    "policy": "flow",  # "flow" | "diffusion"
    "hidden_dims": (64, 64),
    "time_dim": 8,
    "activation": "silu",
    "steps": 8,  # Euler (flow) or DDPM (diffusion) sampling steps
    "error_bound": 5.0,  # clip of the per-element squared error (SPEC §3)
    "num_candidates": 64,  # N per group
    "groups": 16,  # independent groups ("states") per epoch
    "steps_per_epoch": 2,
    "lr": 1e-3,
    "temperature": 0.1,  # λ (initial λ when tuned)
    "temperature_target": "kl",  # "fixed" | "kl" | "ess"
    "kl_target": 1.0,
    "ess_target": 0.25,
    "temperature_lr": 0.1,  # Adam on log λ
    "temperature_steps": 10,  # Adam steps on log λ per epoch (tuned targets only)
    "jitter": 0.2,  # the authors' additive exploration noise (SPEC §5)
    "init_mean": None,  # default 0 (landscape presets pass theirs)
    "init_std": None,  # default 1
    "pretrain_steps": 300,
    "pretrain_batch": 256,
    "pretrain_lr": 3e-3,
    "snapshots": 20,  # params kept after this many evenly spaced epochs (e.g. 10, 20, …, 200)
}
#: Scheme parameters, passed on to :func:`simpo.weighting.compute_weights`.
SCHEME_PARAMS: dict[str, str] = {name: scheme for scheme, name in SCHEME_PARAMETER.items()}


@dataclass(frozen=True)
class BanditResult:
    """Output of :func:`run`. Arrays have a leading seed axis when ``seed`` was a sequence.

    ``regret`` ``([S,] epochs)``: after each epoch; ``initial_regret`` ``([S])``: after pretraining;
    ``samples`` ``([S,] M, d)``: final policy samples; ``diagnostics``: per-epoch arrays ``([S,] epochs)``
    (weight KL/ESS/negative fraction and mass, temperature, loss, mean candidate reward, and ``improvement`` =
    Σ w r − mean r per group, ≥ 0 by Theorem 3.5); ``params``: final policy params (seed axis first);
    ``snapshots``: ``{epoch: params}`` after a few evenly spaced epochs (``snapshots`` parameter).
    """

    regret: np.ndarray
    initial_regret: np.ndarray
    samples: np.ndarray
    diagnostics: dict[str, np.ndarray]
    params: Any
    snapshots: dict[int, Any]
    policy: Policy
    weighting: str | Callable
    scheme_params: dict[str, float]
    seeds: tuple[int, ...]
    max_reward: float
    settings: dict[str, Any]
    elapsed_s: float
    single_seed: bool = field(default=True)

    @property
    def final_regret(self) -> np.ndarray:
        """Regret after the last epoch (a float for one seed, ``(S,)`` otherwise)."""
        return self.regret[..., -1]

    def seed_params(self, i: int = 0, epoch: int | None = None) -> Any:
        """Params of the i-th seed (for ``policy.sample``/``policy.predict``): final ones, or those after
        ``epoch`` (one of ``snapshots``)."""
        if epoch is None:
            params = self.params
        elif epoch in self.snapshots:
            params = self.snapshots[epoch]
        else:
            raise ValueError(f"no snapshot after epoch {epoch}; available: {sorted(self.snapshots)}")
        return params if self.single_seed else jax.tree.map(lambda x: x[i], params)


def _positive_int(name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def _float(name, v, ok=lambda x: True, rule=""):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not ok(float(v)):
        raise ValueError(f"{name} must be a float{rule}, got {v!r}")
    return float(v)


def _per_dim(name, v, d, default, positive):
    v = default if v is None else v
    arr = np.broadcast_to(np.asarray(v, np.float64), (d,)) if np.ndim(v) == 0 else np.asarray(v, np.float64)
    if arr.shape != (d,) or not np.all(np.isfinite(arr)) or (positive and not np.all(arr > 0)):
        raise ValueError(f"{name} must be a {'positive ' if positive else ''}float or {d} of them, got {v!r}")
    return tuple(float(x) for x in arr)


def _seeds(seed) -> tuple[tuple[int, ...], bool]:
    single = isinstance(seed, (int, np.integer))
    seeds = (seed,) if single else seed
    if isinstance(seed, (str, bytes, bool)) or not isinstance(seeds, Sequence) or len(seeds) == 0 or not all(
        isinstance(x, (int, np.integer)) and not isinstance(x, bool) and 0 <= x < 2**32 for x in seeds
    ):
        raise ValueError(f"seed must be an int or a non-empty sequence of ints, each in [0, 2**32), got {seed!r}")
    if len(set(seeds)) != len(seeds):  # a repeated seed would be trained and counted twice
        raise ValueError(f"seeds must be distinct, got {list(seeds)!r}")
    return tuple(int(x) for x in seeds), single


@dataclass(frozen=True)
class _Plan:
    """A validated run: the compiled program's static config plus what the result reports."""

    static: _Static
    seeds: tuple[int, ...]
    single: bool
    settings: dict[str, Any] = field(hash=False, compare=False)
    scheme_params: dict[str, float] = field(hash=False, compare=False)
    scheme_index: int = 0  # entry of static.menu to run


def prepare(
    reward_fn: Callable,
    action_dim: int,
    weighting: str | Callable = "exp",
    epochs: int = 200,
    seed: int | Sequence[int] = 0,
    max_reward: float | None = None,
    **params,
) -> _Plan:
    """Validate the arguments of :func:`run` eagerly (one-line ValueErrors) without running anything."""
    if not callable(reward_fn):
        raise ValueError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
    d = _positive_int("action_dim", action_dim)
    epochs = _positive_int("epochs", epochs)
    seeds, single = _seeds(seed)
    if not callable(weighting) and weighting not in (*SCHEMES, *AUTO_MENUS):
        raise ValueError(f"unknown weighting scheme {weighting!r}; allowed: {', '.join((*SCHEMES, *AUTO_MENUS))}, "
                         "or a callable g")
    unknown = sorted(set(params) - set(DEFAULTS) - set(SCHEME_PARAMS))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(DEFAULTS)}, and scheme params "
            + ", ".join(f"{k} ({v})" for k, v in SCHEME_PARAMS.items())
        )
    scheme_params = {k: _float(k, v) for k, v in params.items() if k in SCHEME_PARAMS}
    if isinstance(weighting, str) and weighting in AUTO_MENUS and scheme_params:
        raise ValueError(f"weighting {weighting!r} takes no scheme parameters, got {', '.join(scheme_params)}")
    cfg = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}

    if cfg["policy"] not in ("flow", "diffusion"):
        raise ValueError(f"policy must be 'flow' or 'diffusion', got {cfg['policy']!r}")
    policy = make_policy(
        PolicyConfig(kind=cfg["policy"], hidden_dims=cfg["hidden_dims"], time_dim=cfg["time_dim"],
                     activation=cfg["activation"], steps=cfg["steps"], error_bound=cfg["error_bound"]), d)
    cfg["hidden_dims"] = policy.config.hidden_dims
    cfg["num_candidates"] = check_candidates("num_candidates", cfg["num_candidates"])
    for name in ("groups", "steps_per_epoch", "pretrain_batch", "temperature_steps"):
        cfg[name] = _positive_int(name, cfg[name])
    cfg["pretrain_steps"] = _positive_int("pretrain_steps", cfg["pretrain_steps"], 0)
    cfg["snapshots"] = _positive_int("snapshots", cfg["snapshots"], 0)
    count = min(cfg["snapshots"], epochs)  # evenly spread, the last at the final epoch
    snapshot_epochs = tuple(sorted({max(1, round(epochs * (i + 1) / count)) for i in range(count)}))
    for name in ("lr", "pretrain_lr", "temperature_lr"):
        cfg[name] = _float(name, cfg[name], lambda x: 0 < x < math.inf, " > 0")
    cfg["jitter"] = _float("jitter", cfg["jitter"], lambda x: 0 <= x < math.inf, " >= 0")
    temp = TemperatureConfig(
        target=cfg["temperature_target"],
        init=_float("temperature", cfg["temperature"], lambda x: 0 < x < math.inf, " > 0"),
        kl_target=_float("kl_target", cfg["kl_target"]), ess_target=_float("ess_target", cfg["ess_target"]),
        lr=cfg["temperature_lr"])
    for scheme in (AUTO_MENUS.get(weighting) if isinstance(weighting, str) else None) or (weighting,):  # a menu: each
        own = {k: v for k, v in scheme_params.items() if isinstance(scheme, str) and k == SCHEME_PARAMETER.get(scheme)}
        check_reachable(temp, cfg["num_candidates"], scheme, **own)  # its λ -> 0 limit bounds an ess target
    init_mean = _per_dim("init_mean", cfg["init_mean"], d, 0.0, False)
    init_std = _per_dim("init_std", cfg["init_std"], d, 1.0, True)

    # Eager checks on concrete values: the reward's shape, then the weighting (scheme params, or a callable g
    # that must be increasing and normalisable) on a sample; under jit a bad g would only give NaN.
    probe = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (64, d)), jnp.float32)
    try:
        r_probe = jnp.asarray(reward_fn(probe))
    except Exception as e:  # noqa: BLE001 - report any failure of user code in one line
        raise ValueError(f"reward_fn failed on a (64, {d}) batch of actions: {type(e).__name__}: {e}") from None
    if r_probe.shape != (64,) or not bool(jnp.all(jnp.isfinite(r_probe))):
        raise ValueError(f"reward_fn must map (M, {d}) actions to (M,) finite rewards, got shape {r_probe.shape}")
    for g in AUTO_MENUS.get(weighting, (weighting,)) if isinstance(weighting, str) else (weighting,):
        compute_weights(r_probe[None], g, temp.init, **scheme_params)

    if max_reward is None:
        max_reward, _ = estimate_max_reward(reward_fn, d)
    max_reward = _float("max_reward", max_reward, math.isfinite, " (finite)")

    pretrain = _Pretrain(policy=policy, init_mean=init_mean, init_std=init_std, steps=cfg["pretrain_steps"],
                         batch=cfg["pretrain_batch"], lr=cfg["pretrain_lr"])
    static = _Static(
        reward_fn=reward_fn, policy=policy, menu=((weighting, tuple(sorted(scheme_params.items()))),),
        epochs=epochs, groups=cfg["groups"], num_candidates=cfg["num_candidates"],
        steps_per_epoch=cfg["steps_per_epoch"], lr=cfg["lr"], jitter=cfg["jitter"], temperature=temp,
        temperature_steps=cfg["temperature_steps"], max_reward=max_reward, pretrain=pretrain,
        snapshot_epochs=snapshot_epochs)
    settings = {**cfg, "init_mean": init_mean, "init_std": init_std, "epochs": epochs}
    return _Plan(static, seeds, single, settings, scheme_params)


def merge_plans(plans: Sequence[_Plan]) -> list[_Plan]:
    """Plans that differ only in their weighting, rewritten to share one compiled program (one menu)."""
    plans = list(plans)
    first = plans[0].static
    menu = tuple(dict.fromkeys(p.static.menu[0] for p in plans))
    merged = []
    for p in plans:
        if dataclasses.replace(p.static, menu=first.menu) != first or p.seeds != plans[0].seeds:
            raise ValueError("plans can only be merged when they differ in nothing but the weighting")
        merged.append(dataclasses.replace(p, static=dataclasses.replace(p.static, menu=menu),
                                          scheme_index=menu.index(p.static.menu[0])))
    return merged


def execute(plan: _Plan) -> BanditResult:
    """Run a validated plan: pretraining, then one jitted call (seeds vmapped, epochs scanned), in true fp32 (on a
    GPU, JAX's default matmuls would be TF32; simpo train's --matmul-precision)."""
    t0 = time.perf_counter()
    s = plan.static
    with jax.default_matmul_precision("float32"):
        keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(plan.seeds, jnp.uint32))
        k_pre, k_run = jnp.split(jax.vmap(lambda k: jax.random.split(k))(keys), 2, axis=1)
        params0 = _compiled_pretrain(s.pretrain)(k_pre[:, 0])
        out = _compiled(s)(jnp.asarray(plan.scheme_index, jnp.int32), k_run[:, 0], params0)
    regret, initial, samples, diag, final_params, snaps = jax.device_get(out)
    # snapshots: {epoch: params}, each with the seed axis first (dropped for one seed)
    snapshots = {e: jax.tree.map(lambda x, i=i: x[:, i], snaps) for i, e in enumerate(s.snapshot_epochs)}
    if plan.single:
        regret, initial, samples = regret[0], initial[0], samples[0]
        diag = {k: v[0] for k, v in diag.items()}
        final_params = jax.tree.map(lambda x: x[0], final_params)
        snapshots = {e: jax.tree.map(lambda x: x[0], p) for e, p in snapshots.items()}
    return BanditResult(
        regret=np.asarray(regret), initial_regret=np.asarray(initial), samples=np.asarray(samples),
        diagnostics={k: np.asarray(v) for k, v in diag.items()}, params=final_params, snapshots=snapshots,
        policy=s.policy,
        weighting=s.menu[plan.scheme_index][0], scheme_params=dict(plan.scheme_params), seeds=plan.seeds, max_reward=s.max_reward,
        settings=dict(plan.settings), elapsed_s=time.perf_counter() - t0, single_seed=plan.single)


def run(
    reward_fn: Callable,
    action_dim: int,
    weighting: str | Callable = "exp",
    epochs: int = 200,
    seed: int | Sequence[int] = 0,
    max_reward: float | None = None,
    **params,
) -> BanditResult:
    """Run the SiMPO bandit for one or many seeds (vmapped) and return a :class:`BanditResult`.

    ``reward_fn`` maps actions ``(M, action_dim)`` in ``[−1, 1]`` to rewards ``(M,)`` (jnp, jittable).
    ``weighting`` is a scheme name (``simpo.weighting.SCHEMES``), ``"auto"`` or ``"auto_exp"`` (the advisor's rule
    applied online, as that ``--weighting``: see :mod:`simpo.bandit.program`) or an increasing callable g.
    ``seed`` is an int or a sequence of ints (all run at once). ``max_reward`` ``None`` estimates it by dense search.
    ``**params``: the bandit parameters in :data:`DEFAULTS` and the scheme parameters ``p`` (power), ``floor``
    (signed_linear), ``negative_mass`` (wd1). Invalid input raises a one-line ValueError before any work.
    """
    return execute(prepare(reward_fn, action_dim, weighting, epochs, seed, max_reward, **params))
