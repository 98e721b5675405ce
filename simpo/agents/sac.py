"""Soft Actor-Critic with a tanh-Gaussian policy and automatic entropy tuning (the baseline agent).

One :meth:`SAC.update` does, in order:

1. **critic** — ``y = r + γ (1 − terminated) (min_k Q̄_k(s′, a′) − α log π(a′|s′))``, ``a′ ∼ π(·|s′)``; MSE;
2. **actor** — reparameterised ``E[α log π(a|s) − min_k Q_k(s, a)]`` with the freshly updated critics;
3. **temperature** — ``log α`` toward ``target_entropy`` (``−action_dim`` by default);
4. **targets** — Polyak ``τ`` every update.

The agent follows :mod:`simpo.agents.base`: a frozen, hashable dataclass; state is a pytree; ``update`` is pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from simpo.agents.base import EVAL_MODES, Batch
from simpo.agents.critic import CriticState, DoubleCritic, critic_step, init_critic_state, polyak, td_target
from simpo.networks import ACTIVATIONS, MLP
from simpo.policies import positive_int_tuple

__all__ = ["SACConfig", "SACState", "TanhGaussianActor", "tanh_gaussian_sample", "SAC"]


@dataclass(frozen=True)
class SACConfig:
    """SAC hyperparameters (defaults: the usual MuJoCo settings, matching SPEC §5's critic)."""

    actor_hidden_dims: tuple[int, ...] = (256, 256)
    critic_hidden_dims: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    num_qs: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    discount: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    target_entropy: float | None = None  # None: −action_dim
    learn_alpha: bool = True
    backup_entropy: bool = True  # subtract α log π(a′|s′) in the TD target
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    best_of_n: int = 10  # candidates for eval_mode="best_of_n"

    def __post_init__(self) -> None:
        for name in ("actor_hidden_dims", "critic_hidden_dims"):
            object.__setattr__(self, name, positive_int_tuple(name, getattr(self, name), False))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if not isinstance(self.num_qs, int) or self.num_qs < 1:
            raise ValueError(f"num_qs must be a positive int, got {self.num_qs!r}")
        for name in ("actor_lr", "critic_lr", "alpha_lr"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be finite and > 0, got {getattr(self, name)!r}")
        if not 0 < self.discount <= 1:
            raise ValueError(f"discount must be in (0, 1], got {self.discount!r}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {self.tau!r}")
        if not 0 < self.init_alpha < math.inf:
            raise ValueError(f"init_alpha must be finite and > 0, got {self.init_alpha!r}")
        if self.target_entropy is not None and not math.isfinite(self.target_entropy):
            raise ValueError(f"target_entropy must be finite or None, got {self.target_entropy!r}")
        if not (math.isfinite(self.log_std_min) and math.isfinite(self.log_std_max)):
            raise ValueError(f"log_std_min and log_std_max must be finite, got {self.log_std_min!r}, {self.log_std_max!r}")
        if not self.log_std_min < self.log_std_max:
            raise ValueError(f"log_std_min must be < log_std_max, got {self.log_std_min!r} >= {self.log_std_max!r}")
        if not isinstance(self.best_of_n, int) or self.best_of_n < 1:
            raise ValueError(f"best_of_n must be a positive int, got {self.best_of_n!r}")


class SACState(NamedTuple):
    actor_params: Any
    actor_opt_state: Any
    critic: CriticState
    log_alpha: jax.Array  # scalar
    alpha_opt_state: Any
    step: jax.Array  # int32 scalar: updates done


class TanhGaussianActor(nn.Module):
    """``s ↦ (μ, log σ)`` of a Gaussian on pre-tanh actions; ``log σ`` squashed smoothly into ``[min, max]``."""

    action_dim: int
    hidden_dims: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = MLP(tuple(self.hidden_dims), activation=self.activation)(jnp.asarray(obs, jnp.float32))
        mean = nn.Dense(self.action_dim)(h)
        log_std = jnp.tanh(nn.Dense(self.action_dim)(h))
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1.0)
        return mean, log_std


def tanh_gaussian_sample(
    key: jax.Array, mean: jax.Array, log_std: jax.Array, sample_shape: tuple[int, ...] = ()
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised ``a = tanh(μ + σ ξ)`` and its log-density (tanh-corrected), shapes ``(*sample_shape, ...)``.

    ``log(1 − tanh²u) = 2 (log 2 − u − softplus(−2u))`` avoids ``log(0)`` where tanh saturates.
    """
    eps = jax.random.normal(key, (*sample_shape, *mean.shape), mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    log_prob = (-0.5 * eps**2 - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)
    log_prob = log_prob - (2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))).sum(-1)
    return jnp.tanh(u), log_prob


@dataclass(frozen=True)
class SAC:
    """The SAC agent: ``init``, ``act``, ``update`` (see :mod:`simpo.agents.base`)."""

    config: SACConfig
    obs_dim: int
    action_dim: int

    def __post_init__(self) -> None:
        for name in ("obs_dim", "action_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")

    # -- static pieces (cheap to rebuild; all hashable) --------------------------------------------------------
    @property
    def actor(self) -> TanhGaussianActor:
        c = self.config
        return TanhGaussianActor(self.action_dim, c.actor_hidden_dims, c.activation, c.log_std_min, c.log_std_max)

    @property
    def critic(self) -> DoubleCritic:
        c = self.config
        return DoubleCritic(c.critic_hidden_dims, c.activation, c.num_qs)

    @property
    def target_entropy(self) -> float:
        te = self.config.target_entropy
        return -float(self.action_dim) if te is None else float(te)

    def _actor_tx(self) -> optax.GradientTransformation:
        return optax.adam(self.config.actor_lr)

    def _critic_tx(self) -> optax.GradientTransformation:
        return optax.adam(self.config.critic_lr)

    def _alpha_tx(self) -> optax.GradientTransformation:
        return optax.adam(self.config.alpha_lr)

    # -- protocol ----------------------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> SACState:
        """Fresh state (jitted: one compile instead of many eager orthogonal-init ops)."""
        return _init_jit(self, key)

    def _init(self, key: jax.Array) -> SACState:
        k_actor, k_critic = jax.random.split(key)
        actor_params = self.actor.init(k_actor, jnp.zeros((1, self.obs_dim), jnp.float32))
        critic = init_critic_state(self.critic, self._critic_tx(), k_critic, self.obs_dim, self.action_dim)
        log_alpha = jnp.asarray(math.log(self.config.init_alpha), jnp.float32)
        return SACState(
            actor_params=actor_params,
            actor_opt_state=self._actor_tx().init(actor_params),
            critic=critic,
            log_alpha=log_alpha,
            alpha_opt_state=self._alpha_tx().init(log_alpha),
            step=jnp.zeros((), jnp.int32),
        )

    def act(self, state: SACState, key: jax.Array, obs: jax.Array, eval_mode: str | None = None) -> jax.Array:
        """Training (``None``): one tanh-Gaussian sample. ``"single"``: ``tanh(μ)``.

        ``"best_of_n"``: of ``config.best_of_n`` samples, the one with the highest min-Q. ``obs`` may be unbatched.
        """
        if eval_mode not in (None, *EVAL_MODES):
            raise ValueError(f"eval_mode must be one of {EVAL_MODES} or None, got {eval_mode!r}")
        return _act_jit(self, state, key, obs, eval_mode)

    def _act(self, state: SACState, key: jax.Array, obs: jax.Array, eval_mode: str | None) -> jax.Array:
        obs = jnp.asarray(obs, jnp.float32)
        mean, log_std = self.actor.apply(state.actor_params, obs)
        if eval_mode == "single":
            return jnp.tanh(mean)
        if eval_mode is None:
            return tanh_gaussian_sample(key, mean, log_std)[0]
        n = self.config.best_of_n
        actions, _ = tanh_gaussian_sample(key, mean, log_std, (n,))  # (n, ..., d_a)
        q = self.critic.apply(state.critic.params, obs, actions).min(0)  # (n, ...)
        best = jnp.argmax(q, axis=0)  # (...)
        return jnp.take_along_axis(actions, best[None, ..., None], axis=0)[0]

    def update(self, state: SACState, batch: Batch, key: jax.Array) -> tuple[SACState, dict[str, jax.Array]]:
        c = self.config
        actor, critic = self.actor, self.critic
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)

        # 1. critic
        next_mean, next_log_std = actor.apply(state.actor_params, batch.next_obs)
        next_action, next_log_prob = tanh_gaussian_sample(k_next, next_mean, next_log_std)
        next_q = critic.apply(state.critic.target_params, batch.next_obs, next_action).min(0)
        if c.backup_entropy:
            next_q = next_q - alpha * next_log_prob
        target = td_target(batch.reward, batch.terminated, next_q, c.discount)
        critic_state, critic_metrics = critic_step(
            critic, self._critic_tx(), state.critic, batch.obs, batch.action, target
        )

        # 2. actor
        def actor_loss_fn(params):
            mean, log_std = actor.apply(params, batch.obs)
            action, log_prob = tanh_gaussian_sample(k_pi, mean, log_std)
            q = critic.apply(critic_state.params, batch.obs, action).min(0)
            return (alpha * log_prob - q).mean(), -log_prob.mean()

        (actor_loss, entropy), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor_params)
        updates, actor_opt_state = self._actor_tx().update(grads, state.actor_opt_state, state.actor_params)
        actor_params = optax.apply_updates(state.actor_params, updates)

        # 3. temperature: minimise log α · (H − H_target)
        log_alpha, alpha_opt_state = state.log_alpha, state.alpha_opt_state
        if c.learn_alpha:
            alpha_grad = jax.lax.stop_gradient(entropy) - self.target_entropy
            a_updates, alpha_opt_state = self._alpha_tx().update(alpha_grad, alpha_opt_state, log_alpha)
            log_alpha = optax.apply_updates(log_alpha, a_updates)

        # 4. targets
        target_params = polyak(critic_state.target_params, critic_state.params, c.tau)
        critic_state = critic_state._replace(target_params=target_params)

        new_state = SACState(
            actor_params=actor_params,
            actor_opt_state=actor_opt_state,
            critic=critic_state,
            log_alpha=log_alpha,
            alpha_opt_state=alpha_opt_state,
            step=state.step + 1,
        )
        metrics = {
            "critic_loss": critic_metrics["critic_loss"],
            "actor_loss": actor_loss,
            "alpha": alpha,
            "entropy": entropy,
            "q_mean": critic_metrics["q_mean"],
        }
        return new_state, metrics


# Module-level jits keyed on the (hashable) agent: inside an outer jit they simply inline.
_init_jit = jax.jit(SAC._init, static_argnums=0)
_act_jit = jax.jit(SAC._act, static_argnums=(0, 4))
