"""SiMPO: Signed Measure Policy Optimization (Ma, Gao, Chen, Li, Dai; arXiv 2603.10250).

Stage 1 (`simpo.weighting`) turns critic values of N candidate actions into the weights of a
(possibly signed) target measure; Stage 2 (`simpo.matching`) projects that measure back onto a
flow or diffusion policy by reweighted matching.
"""

import os

CPU_VECTOR_FLAG = "--xla_cpu_prefer_vector_width=512"
"""Added to ``XLA_FLAGS`` on import unless the variable already sets ``xla_cpu_prefer_vector_width``.

XLA's CPU compiler emits 256-bit vectors by default, also where AVX-512 is there. At 512 bits the elementwise
passes over the B×N×256 activations (mish, its gradient, bias adds) run up to about 1.8× faster on an AVX-512
Xeon; the `paper` update took 0.91× the time and `fast` 0.97×, with the same values (docs/benchmarks/xla_flags.md). It is a preference:
CPUs without AVX-512 keep their widest vectors, GPUs ignore it. It takes effect only if no JAX computation ran
before simpo was imported; ``XLA_FLAGS=--xla_cpu_prefer_vector_width=256`` restores XLA's default."""
if "xla_cpu_prefer_vector_width" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {CPU_VECTOR_FLAG}".strip()

from simpo.weighting import SCHEMES, compute_weights  # noqa: E402

__all__ = ["CPU_VECTOR_FLAG", "SCHEMES", "compute_weights"]
__version__ = "0.1.0"
