"""What every agent provides: a pytree state and pure, jittable functions over it.

An agent is a frozen (hashable) dataclass holding its config and the env's dimensions, so it can be
a static argument of `jax.jit`. Its state is a pytree (params, optimiser states, RNG-free), and

    state            = agent.init(key)
    actions          = agent.act(state, key, obs)              # training: one policy sample
    actions          = agent.act(state, key, obs, eval_mode)   # eval_mode: "single" | "best_of_n"
    state, metrics   = agent.update(state, batch, key)         # one full update, pure

`update` is the whole update step (critic, actor, temperature, targets) in one function; the
training loop jits it once. `metrics` is a flat dict of scalar arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax


#: Evaluation modes of `Agent.act`: the authors' best-of-M by Q, and one policy sample.
EVAL_MODES = ("best_of_n", "single")


class Batch(NamedTuple):
    """A minibatch of transitions. `terminated` (not `done`): truncation still bootstraps (SPEC §9)."""

    obs: jax.Array  # (B, obs_dim)
    action: jax.Array  # (B, action_dim), in [-1, 1]
    reward: jax.Array  # (B,)
    next_obs: jax.Array  # (B, obs_dim): the true final observation at episode ends
    terminated: jax.Array  # (B,) float32, 1.0 where the MDP terminated


class Agent(Protocol):
    obs_dim: int
    action_dim: int

    def init(self, key: jax.Array) -> Any: ...

    def act(self, state: Any, key: jax.Array, obs: jax.Array, eval_mode: str | None = None) -> jax.Array: ...

    def update(self, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, dict[str, jax.Array]]: ...
