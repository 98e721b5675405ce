"""SiMPO: Signed Measure Policy Optimization (Ma, Gao, Chen, Li, Dai; arXiv 2603.10250).

Stage 1 (`simpo.weighting`) turns critic values of N candidate actions into the weights of a
(possibly signed) target measure; Stage 2 (`simpo.matching`) projects that measure back onto a
flow or diffusion policy by reweighted matching.
"""

from simpo.weighting import SCHEMES, compute_weights

__all__ = ["SCHEMES", "compute_weights"]
__version__ = "0.1.0"
