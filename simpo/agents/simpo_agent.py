"""The online SiMPO agent (SPEC §5): double-Q critic, and an actor improved by measure matching.

One update, as one pure function (`SiMPO.update`):
  1. critic:  y = r + γ(1 − terminated)·min_k Q̄_k(s′, a′), a′ ~ π_θ(·|s′) (one sample, or the best of
     `target_candidates` by min_k Q̄_k as QVPO's port does; from an EMA actor if `target_policy_tau` > 0); MSE.
  2. Stage 1: N candidates a_i ~ π_old(·|s) + σ·ξ, clipped to the box; Q_i = mean_k Q_k(s, a_i);
     w = compute_weights(Q, weighting, λ)  — the (signed) target measure μ = Σ_i w_i δ_{a_i}.
  3. Stage 2: the reweighted matching loss of the policy class (flow: CFM; diffusion: ε-MSE), its gradient
     taken over slices of the batch (`matching_slice_rows`).
  4. λ: one tuner step toward its KL / ESS target (or fixed).
  5. targets: Polyak on the critics (and the EMA actor); π_old ← π_θ every `old_policy_interval` updates.
Steps 2–4 (the actor side) run on every `actor_interval`-th update only (a `lax.cond`, so skipped updates cost
the critic's share alone; under `--seed-batching vmap` the batched predicate makes XLA run both branches).
DPMD (weighting `exp`) and QVPO (weighting `best_advantage`, a best-of-k TD target and a uniform-action term, as
the authors' flow-rl port has it) are presets of this agent (simpo.presets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from simpo.advisor import AUTO_EMA_DECAY, AUTO_MENUS, choose_scheme, landscape_stats
from simpo.agents.base import EVAL_MODES, Batch
from simpo.agents.critic import CriticState, DoubleCritic, critic_step, init_critic_state, polyak, td_target
from simpo.agents.simpo_config import SiMPOConfig
from simpo.matching import slice_count, value_and_grad_in_slices
from simpo.policies import make_policy
from simpo.temperature import (
    TemperatureState,
    init_temperature,
    init_temperatures,
    temperature_value,
    update_temperature,
    update_temperatures,
    weight_diagnostics,
)
from simpo.weighting import BEST_ADVANTAGE, best_advantage_weights, compute_weights, is_import_path, load_weighting

__all__ = ["SiMPO", "SiMPOConfig", "SiMPOState"]


class SiMPOState(NamedTuple):
    actor_params: Any
    old_actor_params: Any
    actor_opt_state: Any
    critic: CriticState
    temperature: TemperatureState
    step: jax.Array
    auto_skew: jax.Array = jnp.zeros((), jnp.float32)
    """EMA of the candidate-Q skew (simpo.advisor.landscape_stats) driving `--weighting auto`."""
    actor_metrics: Any = None
    """With `actor_interval` > 1: the metrics of the last update that ran the actor side (None otherwise)."""
    target_actor_params: Any = None
    """With `target_policy_tau` > 0: the EMA actor that draws the TD target's next actions (None otherwise)."""
    auto_steep: jax.Array = jnp.zeros((), jnp.int32)
    """`--weighting auto`: how many actor updates so far used the menu's steep scheme (logged as a share)."""


@dataclass(frozen=True)
class SiMPO:
    """SiMPO agent for `obs_dim`-dimensional states and actions in [-1, 1]^`action_dim`."""

    config: SiMPOConfig
    obs_dim: int
    action_dim: int
    policy: Any = field(init=False, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "policy", make_policy(self.config.policy, self.action_dim))

    @property
    def critic(self) -> DoubleCritic:
        return DoubleCritic(hidden_dims=tuple(self.config.critic_hidden_dims))

    @property
    def actor_tx(self) -> optax.GradientTransformation:
        return optax.adam(self.config.actor_lr)

    @property
    def critic_tx(self) -> optax.GradientTransformation:
        return optax.adam(self.config.critic_lr)

    def init(self, key: jax.Array) -> SiMPOState:
        k_actor, k_critic = jax.random.split(key)
        actor_params = self.policy.init(k_actor, self.obs_dim)
        state = SiMPOState(
            actor_params=actor_params,
            old_actor_params=actor_params,
            actor_opt_state=self.actor_tx.init(actor_params),
            critic=init_critic_state(self.critic, self.critic_tx, k_critic, self.obs_dim, self.action_dim),
            temperature=init_temperatures(self.config.temperature, len(AUTO_MENUS[self.config.weighting]))
            if self.config.weighting in AUTO_MENUS else init_temperature(self.config.temperature),
            step=jnp.zeros((), jnp.int32),
            auto_skew=jnp.zeros((), jnp.float32),
            auto_steep=jnp.zeros((), jnp.int32),
            target_actor_params=actor_params if self.config.target_policy_tau > 0 else None,
        )
        if self.config.actor_interval > 1:  # zeros until the first actor update
            shapes = jax.eval_shape(lambda s: self.actor_step(s, jnp.zeros((1, self.obs_dim)), key, key)[-1], state)
            state = state._replace(actor_metrics=jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes))
        return state

    def act(self, state: SiMPOState, key: jax.Array, obs: jax.Array, eval_mode: str | None = None) -> jax.Array:
        """Training (`eval_mode=None`) and `single`: one policy sample. `best_of_n`: the best of M
        samples by min-Q (the authors' evaluation protocol)."""
        if eval_mode not in (None, *EVAL_MODES):
            raise ValueError(f"eval_mode must be one of {EVAL_MODES} or None, got {eval_mode!r}")
        if eval_mode != "best_of_n":
            return self.policy.sample(state.actor_params, key, obs.shape[:-1], cond=obs)
        return self.best_of(state.actor_params, state.critic.params, key, obs, self.config.eval_candidates)

    def best_of(self, actor_params, critic_params, key: jax.Array, obs: jax.Array, m: int) -> jax.Array:
        """The best of `m` policy samples per state by min-Q of the critics with `critic_params`."""
        cond = obs[..., None, :]
        actions = self.policy.sample(actor_params, key, (*obs.shape[:-1], m), cond=cond)
        q = self.critic.apply(critic_params, cond, actions).min(axis=0)
        best = jnp.argmax(q, axis=-1)
        return jnp.take_along_axis(actions, best[..., None, None], axis=-2)[..., 0, :]

    def candidates(self, state: SiMPOState, key: jax.Array, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Stage-1 inputs: N candidates from π_old (+ jitter, clipped) and their mean-critic Q-values."""
        k_sample, k_noise = jax.random.split(key)
        cond = obs[:, None, :]
        actions = self.policy.sample(state.old_actor_params, k_sample, (obs.shape[0], self.config.num_candidates), cond)
        actions = actions + self.config.candidate_noise * jax.random.normal(k_noise, actions.shape)
        actions = jnp.clip(actions, -1.0, 1.0)
        q = self.critic.apply(state.critic.params, cond, actions).mean(axis=0)
        return actions, q

    def weights(self, state: SiMPOState, q: jax.Array) -> tuple[jax.Array, jax.Array, dict[str, jax.Array], jax.Array]:
        """Stage-1 weights: (weights, auto skew, metrics, every menu scheme's weights or None). `auto` / `auto_exp`:
        an EMA of the candidate-Q skew picks the menu's flat (square / exp) or steep (linear) scheme with the
        advisor's rule (simpo.advisor.choose_scheme; the flat one during `auto_hold`); each scheme has its own λ (simpo.temperature.init_temperatures)
        and its weights are all computed, so every λ can be tuned on its own scheme; the choice is logged."""
        c, lam = self.config, temperature_value(state.temperature)
        if c.weighting == BEST_ADVANTAGE:
            return best_advantage_weights(q), state.auto_skew, {}, None
        if c.weighting not in AUTO_MENUS:
            g = load_weighting(c.weighting) if is_import_path(c.weighting) else c.weighting
            return compute_weights(q, g, lam, **c.weighting_params), state.auto_skew, {}, None
        stats = landscape_stats(jax.lax.stop_gradient(q))
        skew = AUTO_EMA_DECAY * state.auto_skew + (1.0 - AUTO_EMA_DECAY) * stats["skew"]
        choice = choose_scheme(skew)
        if c.auto_hold:  # the flat scheme for the first auto_hold actor updates (this one counted)
            choice = jnp.where((state.step + 1) // c.actor_interval <= c.auto_hold, 0, choice)
        menu = jnp.stack([compute_weights(q, s, lam[m]) for m, s in enumerate(AUTO_MENUS[c.weighting])])
        metrics = {"weighting/auto_choice": choice, "weighting/auto_skew": skew, "weighting/batch_skew": stats["skew"]}
        return menu[choice], skew, metrics, menu

    def actor_draws(self, key: jax.Array, obs: jax.Array, actions: jax.Array) -> dict[str, Any]:
        """Stage 2's random numbers, drawn before the batch is sliced (so slicing does not change them): the
        matching loss's (t, noise) per candidate, and QVPO's uniform actions with theirs."""
        k_match, k_uniform, k_unif_loss = jax.random.split(key, 3)
        draws = {"match": self.policy.draws(k_match, actions.shape)}
        c = self.config
        if c.uniform_actions and c.uniform_weight:
            uniform = jax.random.uniform(k_uniform, (obs.shape[0], c.uniform_actions, self.action_dim), minval=-1.0, maxval=1.0)
            draws |= {"uniform": uniform, "uniform_match": self.policy.draws(k_unif_loss, uniform.shape)}
        return draws

    def actor_loss(self, params, batch):
        """Stage 2, a mean over the states of `batch` = (obs, actions, weights, draws): reweighted matching on the
        candidates, plus QVPO's optional uniform-action term."""
        obs, actions, weights, draws = batch
        cond = obs[:, None, :]
        loss, metrics = self.policy.loss(params, None, actions, weights, cond, draws["match"])
        if "uniform" in draws:
            total = jnp.broadcast_to(jnp.sum(weights, axis=-1, keepdims=True), draws["uniform"].shape[:-1])
            uniform_loss, _ = self.policy.loss(params, None, draws["uniform"], total, cond, draws["uniform_match"])
            loss = loss + self.config.uniform_weight * uniform_loss
        return loss, metrics

    def actor_value_and_grad(self, params, key, obs, actions, weights):
        """((Stage-2 loss, metrics), grads), over slices of the batch of at most `matching_slice_rows` candidate
        rows (simpo.matching.value_and_grad_in_slices: the same values up to float rounding)."""
        c, draws = self.config, self.actor_draws(key, obs, actions)
        rows = c.num_candidates + (c.uniform_actions if "uniform" in draws else 0)  # per state, QVPO's term included
        slices = slice_count(obs.shape[0], rows, c.matching_slice_rows)
        return value_and_grad_in_slices(self.actor_loss, params, slices, (obs, actions, weights, draws))

    def actor_step(self, state: SiMPOState, obs: jax.Array, k_cand: jax.Array, k_actor: jax.Array):
        """Steps 2–4 on the pre-update critics: (actor params, actor optimiser state, λ state, auto skew, auto steep
        count, metrics)."""
        # 2. Stage 1: candidates from π_old, scored by the (pre-update) critics, weighted
        actions, q = self.candidates(state, k_cand, obs)
        weights, auto_skew, auto_metrics, menu = self.weights(state, q)

        # 3. Stage 2: reweighted matching
        (actor_loss, match_metrics), grads = self.actor_value_and_grad(state.actor_params, k_actor, obs, actions, weights)
        updates, actor_opt_state = self.actor_tx.update(grads, state.actor_opt_state, state.actor_params)
        actor_params = optax.apply_updates(state.actor_params, updates)

        # 4. temperature. best_advantage weights are not normalised (all 0 where no candidate stands out): λ and the
        # diagnostics see their shape, the one-hot on the best candidate (`improvement` is then the mean advantage).
        if self.config.weighting == BEST_ADVANTAGE:
            weights = jax.nn.one_hot(jnp.argmax(weights, axis=-1), weights.shape[-1], dtype=weights.dtype)
        auto_steep = state.auto_steep
        if menu is None:
            temperature, temp_metrics = update_temperature(self.config.temperature, state.temperature, weights)
        else:  # every scheme's λ on its own weights; the logged λ is the chosen scheme's
            temperature, per_scheme = update_temperatures(self.config.temperature, state.temperature, menu)
            choice = auto_metrics["weighting/auto_choice"]
            auto_steep = auto_steep + choice
            actor_updates = (state.step + 1) // self.config.actor_interval  # this one included
            auto_metrics["weighting/auto_steep_share"] = auto_steep / jnp.maximum(actor_updates, 1)
            temp_metrics = {k: v[choice] for k, v in per_scheme.items()}
            temp_metrics |= {f"temperature/{s}": per_scheme["temperature"][m]
                             for m, s in enumerate(AUTO_MENUS[self.config.weighting])}
        metrics = {
            "actor_loss": actor_loss,
            "matching_mse": match_metrics["mse"],
            "clip_fraction": match_metrics["clip_frac"],
            "candidate_q_mean": q.mean(),
            "improvement": jnp.mean(jnp.sum(weights * q, axis=-1) - q.mean(axis=-1)),
            **weight_diagnostics(weights),
            **temp_metrics,
            **auto_metrics,
        }
        return actor_params, actor_opt_state, temperature, auto_skew, auto_steep, metrics

    def update(self, state: SiMPOState, batch: Batch, key: jax.Array) -> tuple[SiMPOState, dict[str, jax.Array]]:
        c = self.config
        k_next, k_cand, k_actor = jax.random.split(key, 3)

        # 1. critic
        next_actor = state.target_actor_params if c.target_policy_tau > 0 else state.actor_params
        if c.target_candidates == 1:
            next_action = self.policy.sample(next_actor, k_next, batch.next_obs.shape[:-1], batch.next_obs)
        else:
            next_action = self.best_of(next_actor, state.critic.target_params, k_next, batch.next_obs,
                                       c.target_candidates)
        next_q = self.critic.apply(state.critic.target_params, batch.next_obs, next_action).min(axis=0)
        target = td_target(batch.reward, batch.terminated, next_q, c.discount)
        critic_state, critic_metrics = critic_step(self.critic, self.critic_tx, state.critic, batch.obs, batch.action, target)

        # 2.–4. the actor side, on every `actor_interval`-th update
        step = state.step + 1
        last_actor_metrics = None
        if c.actor_interval == 1:
            *actor, actor_metrics = self.actor_step(state, batch.obs, k_cand, k_actor)
        else:
            def run(state):
                *actor, metrics = self.actor_step(state, batch.obs, k_cand, k_actor)
                return tuple(actor), metrics, jnp.ones(())

            def skip(state):  # λ and the auto EMA change on actor updates only: the stored metrics are current
                return (state.actor_params, state.actor_opt_state, state.temperature, state.auto_skew,
                        state.auto_steep), \
                    state.actor_metrics, jnp.zeros(())

            actor, last_actor_metrics, ran = jax.lax.cond(step % c.actor_interval == 0, run, skip, state)
            actor_metrics = {**last_actor_metrics, "actor_updated": ran}
        actor_params, actor_opt_state, temperature, auto_skew, auto_steep = actor

        # 5. targets
        critic_state = critic_state._replace(target_params=polyak(critic_state.target_params, critic_state.params, c.tau))
        refresh = step % c.old_policy_interval == 0
        old_actor_params = jax.tree.map(lambda new, old: jnp.where(refresh, new, old), actor_params, state.old_actor_params)
        target_actor_params = None
        if c.target_policy_tau > 0:
            target_actor_params = polyak(state.target_actor_params, actor_params, c.target_policy_tau)

        new_state = SiMPOState(actor_params, old_actor_params, actor_opt_state, critic_state, temperature, step,
                               auto_skew, last_actor_metrics, target_actor_params, auto_steep)
        return new_state, {**critic_metrics, **actor_metrics}
