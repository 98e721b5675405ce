"""Benchmark (not a test): jitted `compute_weights` per scheme against a plain softmax.

    python benchmarks/weighting.py [--shape 256 64] [--repeats 200] [--out docs/benchmarks/weighting.md]

Every scheme is timed in the same process, interleaved round by round, so the ratios to softmax
are measured side by side. Prints a Markdown table and writes it, with the command, commit and
machine, to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402

from simpo.weighting import compute_weights  # noqa: E402

CASES = {
    "softmax (jax.nn.softmax, reference)": lambda q: jax.nn.softmax(q / 0.5, axis=-1),
    "exp": lambda q: compute_weights(q, "exp", 0.5),
    "linear": lambda q: compute_weights(q, "linear", 0.5),
    "square": lambda q: compute_weights(q, "square", 0.5),
    "power p=3 (bisection)": lambda q: compute_weights(q, "power", 0.5, p=3.0),
    "signed_linear (no floor)": lambda q: compute_weights(q, "signed_linear", 0.5),
    "signed_linear floor=-0.01": lambda q: compute_weights(q, "signed_linear", 0.5, floor=-0.01),
    "wd1": lambda q: compute_weights(q, "wd1", 0.5),
    "user g = leaky ReLU (bracket + bisection)": lambda q: compute_weights(
        q, lambda x: jnp.where(x > 0, x, 0.1 * x), 0.5
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=(256, 64), help="states, candidates")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per scheme per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is kept")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/weighting.md"))
    args = parser.parse_args()
    source = provenance()  # taken before the run: the code that is measured

    q = jax.random.normal(jax.random.PRNGKey(0), tuple(args.shape))
    fns = {name: jax.jit(fn) for name, fn in CASES.items()}
    for fn in fns.values():
        fn(q).block_until_ready()  # compile outside the timing

    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(args.repeats):
                out = fn(q)
            out.block_until_ready()
            times[name].append((time.perf_counter() - start) / args.repeats)

    median = {name: float(np.median(t)) for name, t in times.items()}
    base = median[next(iter(CASES))]
    lines = [
        f"# Weighting benchmark: `compute_weights` at shape {tuple(args.shape)}, jitted",
        "",
        source,
        "",
        "| scheme | µs per call (median of rounds) | ratio to softmax |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {t * 1e6:.1f} | {t / base:.2f}× |" for name, t in median.items()]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
