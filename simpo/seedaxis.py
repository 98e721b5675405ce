"""Several seeds in one process: how their pytrees are held, and how one-seed functions run over all of them.

`vmap` stacks every per-seed pytree (agent state, replay buffer, NaN guard, keys) along a leading axis and runs
one batched program. `map` keeps a list of per-seed pytrees and calls the one-seed jitted function
for each: bit-identical to single-seed runs (one seed is always held this way). Under vmap, XLA sums a batched
gradient in another order than the one-seed program, so results agree only to the last bits of a float; RL
training then drifts apart. XLA's `lax.map` is no way out: it peels loop iterations and compiles them differently.
vmapped programs used to hang on a 2-core CPU: the orthogonal init's QR became one batched LAPACK call, which
deadlocks XLA's CPU thread pool when two run at once (fixed in `simpo.networks._kernel_init`). On that CPU vmap
is also slower than map (docs/benchmarks/seeds.md), so `map` is the default and vmap is opt-in.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def stack_trees(trees: list) -> Any:
    """Per-seed pytrees → one pytree with a leading seed axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


class SeedAxis:
    """`axis.jit(fn, shared=k)` turns a one-seed function into one over all seeds (its last `k` arguments
    are shared by all seeds); `axis.stack` / `axis.slice` convert between the held form and single seeds."""

    def __init__(self, num_seeds: int, batching: str):
        self.num_seeds = num_seeds
        self.stacked = num_seeds > 1 and batching == "vmap"

    def jit(self, fn: Callable, shared: int = 0, donate_argnums: tuple[int, ...] = ()) -> Callable:
        if self.stacked:
            def batched(*args):
                n = len(args) - shared
                return jax.vmap(lambda *xs: fn(*xs, *args[n:]))(*args[:n])
            return jax.jit(batched, donate_argnums=donate_argnums)
        one = jax.jit(fn, donate_argnums=donate_argnums)

        def each(*args):
            n = len(args) - shared
            outs = [one(*xs, *args[n:]) for xs in zip(*args[:n])]
            return tuple(map(list, zip(*outs))) if type(outs[0]) is tuple else outs
        return each

    def stack(self, trees: list) -> Any:
        """Per-seed pytrees → the held form."""
        return stack_trees(trees) if self.stacked else list(trees)

    def slice(self, tree: Any, i: int) -> Any:
        """Seed `i` of a held pytree."""
        return jax.tree.map(lambda x: x[i], tree) if self.stacked else tree[i]

    def unstack(self, tree: Any) -> list:
        return [self.slice(tree, i) for i in range(self.num_seeds)]
