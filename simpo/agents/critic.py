"""The twin-Q critic shared by SAC and SiMPO (SPEC §5 step 2).

* :class:`DoubleCritic` — ``num_qs`` MLPs ``Q_k(s, a)`` run as one ``nn.vmap`` ensemble; output ``(num_qs, ...)``.
* :class:`CriticState` — ``(params, target_params, opt_state)``, a pytree.
* :func:`td_target` — ``y = r + γ (1 − terminated) · next_q`` (pass ``min_k Q̄_k(s′, a′)``, minus ``α log π`` for SAC).
* :func:`critic_loss` — MSE to a fixed target, averaged over the batch, summed over the ensemble.
* :func:`critic_step` — one optimiser step of the online critics toward a target (targets untouched).
* :func:`polyak` — ``θ̄ ← τ θ + (1 − τ) θ̄`` via ``optax.incremental_update``.

Truncation is not termination: only ``terminated`` removes the bootstrap (SPEC §9).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from simpo.networks import MLP

__all__ = [
    "DoubleCritic",
    "CriticState",
    "init_critic_state",
    "td_target",
    "critic_loss",
    "critic_step",
    "polyak",
]


class DoubleCritic(nn.Module):
    """An ensemble of ``num_qs`` Q-networks ``MLP([obs, action]) -> 1``, ensemble axis first.

    ``obs`` ``(..., obs_dim)`` and ``action`` ``(..., action_dim)`` broadcast over their leading dims
    (e.g. obs ``(B, 1, d_s)`` with actions ``(B, N, d_a)``); returns ``(num_qs, *leading)``.
    """

    hidden_dims: tuple[int, ...] = (256, 256)
    activation: str | Callable[[jax.Array], jax.Array] = "relu"
    num_qs: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        obs = jnp.asarray(obs, jnp.float32)
        action = jnp.asarray(action, jnp.float32)
        lead = jnp.broadcast_shapes(obs.shape[:-1], action.shape[:-1])
        x = jnp.concatenate(
            [jnp.broadcast_to(obs, (*lead, obs.shape[-1])), jnp.broadcast_to(action, (*lead, action.shape[-1]))],
            axis=-1,
        )
        # The input is broadcast along the ensemble axis (a cheap copy: its last dim is small) instead of
        # `in_axes=None`, so every layer is a batched dot whose output is already ensemble-major; with in_axes=None
        # XLA transposes the first layer's (rows, num_qs, 256) output in the activation's fusion. Same forward
        # values bit for bit, gradients to float rounding (3e-7 relative). The fused updates, old layout against this
        # one (benchmarks/critic_layout.py, docs/benchmarks/critic_layout.md): SAC faster (median 0.88x, noisy),
        # SiMPO `fast` and `paper` unchanged (XLA ran the copy beside other work).
        x = jnp.broadcast_to(x, (self.num_qs, *x.shape))
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=0,
            out_axes=0,
            axis_size=self.num_qs,
        )
        q = ensemble(hidden_dims=tuple(self.hidden_dims), activation=self.activation, output_dim=1)(x)
        return q[..., 0]


class CriticState(NamedTuple):
    """Online params, target params (Polyak-averaged), and the optimiser state of the online params."""

    params: Any
    target_params: Any
    opt_state: Any


def init_critic_state(
    critic: DoubleCritic, tx: optax.GradientTransformation, key: jax.Array, obs_dim: int, action_dim: int
) -> CriticState:
    """Fresh critic params; the targets start as an exact copy."""
    params = critic.init(key, jnp.zeros((1, obs_dim), jnp.float32), jnp.zeros((1, action_dim), jnp.float32))
    return CriticState(params=params, target_params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params))


def td_target(reward: jax.Array, terminated: jax.Array, next_q_min: jax.Array, discount: float) -> jax.Array:
    """``y = r + γ (1 − terminated) · next_q_min`` (no gradient flows through it)."""
    return jax.lax.stop_gradient(reward + discount * (1.0 - terminated) * next_q_min)


def critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """Squared error of every critic ``q`` ``(num_qs, B...)`` to ``target`` ``(B...)``: batch mean, ensemble sum."""
    return ((q - target) ** 2).mean(axis=tuple(range(1, q.ndim))).sum()


def critic_step(
    critic: DoubleCritic,
    tx: optax.GradientTransformation,
    state: CriticState,
    obs: jax.Array,
    action: jax.Array,
    target: jax.Array,
) -> tuple[CriticState, dict[str, jax.Array]]:
    """One optimiser step of the online critics toward ``target``; targets are left for :func:`polyak`.

    Metrics: ``critic_loss`` and ``q_mean`` (mean online Q on the batch, before the step).
    """

    def loss_fn(params):
        q = critic.apply(params, obs, action)
        return critic_loss(q, target), q.mean()

    (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state._replace(params=params, opt_state=opt_state), {"critic_loss": loss, "q_mean": q_mean}


def polyak(target_params: Any, params: Any, tau: float) -> Any:
    """``θ̄ ← τ θ + (1 − τ) θ̄`` (``tau = 1`` copies ``params``)."""
    return optax.incremental_update(params, target_params, tau)
