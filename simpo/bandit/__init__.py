"""State-less bandits for SiMPO (SPEC §6): designed reward landscapes, the jitted/vmapped bandit loop,
and the scheme study with its plots."""

from simpo.bandit.landscapes import LANDSCAPES, Landscape, estimate_max_reward, get_landscape
from simpo.bandit.run import DEFAULTS, SCHEME_PARAMS, BanditResult, run
from simpo.bandit.study import DEFAULT_SCHEMES, BanditConfig, parse_scheme, run_study

__all__ = ["LANDSCAPES", "Landscape", "estimate_max_reward", "get_landscape", "DEFAULTS", "SCHEME_PARAMS",
           "BanditResult", "run",
           "DEFAULT_SCHEMES", "BanditConfig", "parse_scheme", "run_study"]
