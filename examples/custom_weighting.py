"""Bring your own weighting: an increasing g, its normaliser ν solved numerically, on a bandit landscape.

SiMPO's target measure is μ(a) = π_old(a)·g((Q(a) − ν)/λ) for any increasing g (SPEC §2); `compute_weights`
solves ν for a callable g by bisection under jit, so a new scheme is just a function. Here:

- ``leaky_relu``: g(x) = max(x, 0.1·x), a linear scheme whose "floor" is soft: candidates below ν get a small
  *negative* weight (a signed measure), like the leaky-ReLU variants tried in the authors' fork (slope 0.1);
- ``softplus``: g(x) = log(1 + eˣ)/2, a smooth, non-negative scheme between exp and linear.

They run against the built-in ``exp`` (DPMD) on the ``bad-region`` landscape, 3 seeds at once (vmapped).
Run:  python examples/custom_weighting.py [landscape] [epochs]
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from simpo.bandit import get_landscape, run


def leaky_relu(x):
    return jnp.maximum(x, 0.1 * x)


def softplus(x):
    return 0.5 * jax.nn.softplus(x)


def main(landscape_name: str = "bad-region", epochs: int = 100) -> None:
    land = get_landscape(landscape_name)
    print(f"{land.name}: {land.description}\n({land.source})\n")
    seeds = [0, 1, 2]
    for name, weighting in [("exp (built-in)", "exp"), ("leaky_relu", leaky_relu), ("softplus", softplus)]:
        t0 = time.perf_counter()
        res = run(land.reward_fn, land.action_dim, weighting, epochs=epochs, seed=seeds,
                  max_reward=land.max_reward, init_mean=land.init_mean, init_std=land.init_std)
        final = res.final_regret
        neg = float(np.mean(res.diagnostics["negative_fraction"]))
        print(f"{name:15s} final regret {final.mean():.4f} ± {final.std(ddof=1):.4f} "
              f"(initial {res.initial_regret.mean():.3f}; negative weights {neg:.1%}; {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["bad-region"]), *([int(sys.argv[2])] if len(sys.argv) > 2 else []))
