"""Static, hashable policy wrappers: pick a flow or diffusion policy by name (SPEC §4).

A :class:`Policy` bundles a :class:`~simpo.networks.VectorField` with its matching loss and sampler:

* ``kind="flow"``: ``v_θ(x, t, s)``, reweighted CFM (:func:`~simpo.matching.flow_matching_loss`), Euler sampler.
* ``kind="diffusion"``: ``ε_θ(x, t, s)``, reweighted ε-loss (:func:`~simpo.matching.diffusion_loss`), DDPM sampler.

Both classes are frozen dataclasses of hashable fields, so a ``Policy`` can be a static argument of ``jax.jit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp

from simpo import matching
from simpo.networks import ACTIVATIONS, VectorField

__all__ = ["POLICY_KINDS", "PolicyConfig", "Policy", "make_policy"]

POLICY_KINDS = ("flow", "diffusion")


def positive_int_tuple(name: str, value: Any, allow_empty: bool) -> tuple[int, ...]:
    what = "a non-empty tuple of positive ints" if not allow_empty else "a tuple of positive ints"
    try:
        dims = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be {what}, got {value!r}") from None
    if (not dims and not allow_empty) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in dims
    ):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return dims


@dataclass(frozen=True)
class PolicyConfig:
    """Policy class and network hyperparameters (defaults: the authors' network, SPEC §4).

    ``steps`` is the number of Euler steps (flow) or DDPM steps (diffusion; the authors use 20).
    ``error_bound`` clips the per-element squared error of the matching loss (``None``: no clip).
    """

    kind: Literal["flow", "diffusion"] = "flow"
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    time_dim: int = 64
    cond_dims: tuple[int, ...] = (128, 128)
    activation: str = "mish"
    steps: int = 10
    error_bound: float | None = 5.0

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"kind must be one of {POLICY_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "hidden_dims", positive_int_tuple("hidden_dims", self.hidden_dims, False))
        object.__setattr__(self, "cond_dims", positive_int_tuple("cond_dims", self.cond_dims, True))
        if not isinstance(self.time_dim, int) or isinstance(self.time_dim, bool) or self.time_dim < 2 or self.time_dim % 2:
            raise ValueError(f"time_dim must be a positive even int, got {self.time_dim!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(sorted(ACTIVATIONS))}, got {self.activation!r}")
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {self.steps!r}")
        if self.error_bound is not None:
            if isinstance(self.error_bound, bool) or not isinstance(self.error_bound, (int, float)) or not self.error_bound > 0:
                raise ValueError(f"error_bound must be a float > 0 or None, got {self.error_bound!r}")
            object.__setattr__(self, "error_bound", float(self.error_bound))


@dataclass(frozen=True)
class Policy:
    """A flow or diffusion policy over actions in ``[−1, 1]^action_dim``; params are a flax params pytree."""

    config: PolicyConfig
    action_dim: int

    def __post_init__(self) -> None:
        if not isinstance(self.config, PolicyConfig):
            raise ValueError(f"config must be a PolicyConfig, got {type(self.config).__name__}")
        if not isinstance(self.action_dim, int) or isinstance(self.action_dim, bool) or self.action_dim < 1:
            raise ValueError(f"action_dim must be an int >= 1, got {self.action_dim!r}")

    @property
    def network(self) -> VectorField:
        c = self.config
        return VectorField(c.hidden_dims, c.time_dim, c.cond_dims, c.activation)

    def predict(self, params: Any, x: jax.Array, t: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        """``v_θ(x, t, s)`` (flow) or ``ε_θ(x, t, s)`` (diffusion)."""
        return self.network.apply({"params": params}, x, t, cond)

    def init(self, key: jax.Array, cond_dim: int | None) -> Any:
        """Initial params; ``cond_dim=None`` builds a state-less (bandit) network without a condition branch."""
        x = jnp.zeros((1, self.action_dim), jnp.float32)
        t = jnp.zeros((1, 1), jnp.float32)
        cond = None if cond_dim is None else jnp.zeros((1, cond_dim), jnp.float32)
        return self.network.init(key, x, t, cond)["params"]

    def sample(
        self, params: Any, key: jax.Array, shape_prefix: tuple[int, ...], cond: jax.Array | None = None
    ) -> jax.Array:
        """Actions of shape ``(*shape_prefix, action_dim)`` in ``[−1, 1]``; ``cond`` broadcastable to
        ``(*shape_prefix, c)``."""
        shape_prefix = tuple(shape_prefix)
        if cond is not None:  # not broadcast here: the network embeds it at its own shape
            jnp.broadcast_shapes(cond.shape[:-1], shape_prefix)
        sampler = matching.euler_sample if self.config.kind == "flow" else matching.ddpm_sample
        return sampler(self.predict, params, key, (*shape_prefix, self.action_dim), cond, self.config.steps, True)

    def loss(
        self,
        params: Any,
        key: jax.Array | None,
        actions: jax.Array,
        weights: jax.Array,
        cond: jax.Array | None = None,
        draws: tuple[jax.Array, jax.Array] | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Reweighted matching loss (SPEC §3) of candidates ``actions`` ``(..., N, d)`` with ``weights``
        ``(..., N)``; ``cond`` ``(..., N, c)`` or broadcastable (e.g. ``(..., 1, c)``). Its random numbers are
        ``draws`` if given (:meth:`draws`; ``key`` is then unused), else drawn from ``key``."""
        fn = matching.flow_matching_loss if self.config.kind == "flow" else matching.diffusion_loss
        return fn(self.predict, params, key, actions, weights, cond, self.config.error_bound, draws=draws)

    def draws(self, key: jax.Array, shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
        """The random numbers ``(t, noise)`` that :meth:`loss` draws from ``key`` for candidates of ``shape``."""
        t_range = matching.FLOW_T_RANGE if self.config.kind == "flow" else matching.DIFFUSION_T_RANGE
        return matching.matching_draws(key, tuple(shape), t_range)


def make_policy(config: PolicyConfig, action_dim: int) -> Policy:
    """Build the :class:`Policy` named by ``config.kind`` for ``action_dim``-dimensional actions."""
    return Policy(config, action_dim)
