"""Named configurations: algorithms × presets, as data (SPEC §5).

- `paper`: the authors' hyperparameters (flow-rl `gempo_*.yaml` / `dpmd.yaml` / `qvpo.yaml`): diffusion
  policy, DDPM K=20, N=64 candidates, jitter 0.2, π_old refreshed every 1000 updates, KL target 2.0
  (Hopper 2.5, Ant 1.5; DPMD: Hopper 3.0, Ant 1.0), 5k warm-up steps, batch 256, buffer 1M.
- `fast`: a 2-step flow policy, N=8 candidates, and the actor side (Stage 1 + 2, λ) on every 2nd update only
  (`actor_interval=2`; the critic on every update). Chosen by benchmarks/fast_sweep.py (docs/benchmarks/
  fast_sweep.md): 2.5–3.0× SAC's wall-clock per env step instead of 4.9–5.4×, with no return difference
  detectable at 20k env steps × 3 seeds; at 100k × 3 on HalfCheetah-v5 it reached 0.80× SAC's return. KL targets
  as `paper`, except where one is unreachable at N = 8 (at or above the one-hot KL 2.079, just under log 8:
  Hopper's 2.5, DPMD's 3.0): there 2.0.

The baselines are presets of the same agent. `dpmd` = weighting `exp` (the authors' dpmd.py). `qvpo` = the authors'
flow-rl port of QVPO (qvpo.py): candidates from the current policy without jitter, weighting `best_advantage` (the
best candidate only, weighted by Q_best − mean Q; no temperature), each state's TD target from the best of
`target_candidates` policy samples by min target-Q (4 on HalfCheetah, 1 on Hopper, else 2), the entropy term (10
actions drawn uniformly from [−1, 1]^d, not the port's [0, 1): a bug, each weighted 0.01 × the state's advantage)
and a best-of-32 evaluation. One difference stays: the port draws the TD target's actions from an EMA copy of the
actor (τ = 0.005), this preset from the current actor. `--agent.target-policy-tau 0.005` turns the EMA actor on; the
preset keeps 0 because every QVPO number in docs/results.md was trained without it, and no run has compared the two.
"""

from __future__ import annotations

import dataclasses

from simpo.agents.sac import SACConfig
from simpo.agents.simpo_agent import SiMPOConfig
from simpo.policies import PolicyConfig
from simpo.temperature import kl_reachable

ALGOS = ("simpo", "dpmd", "qvpo", "sac")
PRESETS = ("paper", "fast")

SIMPO_PRESETS: dict[str, SiMPOConfig] = {
    "paper": SiMPOConfig(),
    "fast": SiMPOConfig(
        policy=PolicyConfig(kind="flow", steps=2, hidden_dims=(256, 256), time_dim=32, cond_dims=(128,)),
        num_candidates=8,
        actor_interval=2,
        actor_lr=3e-4,
    ),
}

ALGO_OVERRIDES: dict[str, dict] = {
    "simpo": {},  # the authors' launcher default is gempo_exp; choose any scheme with --weighting
    "dpmd": {"weighting": "exp"},
    "qvpo": {
        "weighting": "best_advantage",  # reweight="adv"
        "old_policy_interval": 1,  # QVPO samples its candidates from the current policy
        "candidate_noise": 0.0,
        "uniform_actions": 10,
        "uniform_weight": 0.01,  # QVPO's entropy_coef
        "eval_candidates": 32,  # num_evaluate_samples
        "target_candidates": 2,  # num_behavior_samples (the port's default; per env below)
    },
}
# QVPO's num_behavior_samples_dict: the TD target's best-of-k where it differs from the default above.
TARGET_CANDIDATES: dict[str, dict[str, int]] = {"qvpo": {"HalfCheetah-v5": 4, "Hopper-v5": 1}}

# Per-env KL targets of the temperature tuner (authors' target_kl_dict, for N = 64); default: the preset's own 2.0.
# simpo.advisor scales the simpo ones to other N as its N = 64 reference (advisor.reference_kl_for).
TEMPERATURE_TARGETS: dict[str, str] = {"qvpo": "fixed"}  # QVPO has no temperature (`best_advantage` ignores λ)
KL_TARGETS: dict[str, dict[str, float]] = {
    "simpo": {"Hopper-v5": 2.5, "Ant-v5": 1.5},
    "dpmd": {"Hopper-v5": 3.0, "Ant-v5": 1.0},
}
# Each preset keeps the targets its N can reach (simpo.temperature.kl_reachable: below the KL of one-hot weights as the
# tuner measures it, simpo.temperature.max_kl, 2.079 at N = 8, just under log 8): at `fast`'s N = 8
# Hopper's 2.5 (DPMD 3.0) drops out and the preset's 2.0 applies, as on HalfCheetah; kept, it would drive λ to 0
# and every scheme would give argmax weights.
PRESET_KL_TARGETS: dict[str, dict[str, dict[str, float]]] = {
    preset: {algo: {env: kl for env, kl in targets.items() if kl_reachable(kl, SIMPO_PRESETS[preset].num_candidates)}
             for algo, targets in KL_TARGETS.items()}
    for preset in PRESETS
}


def agent_config(algo: str, preset: str, env: str) -> SiMPOConfig | SACConfig:
    """The agent config for `algo` × `preset` on `env` (SAC has one config for both presets)."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; allowed: {', '.join(ALGOS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    if algo == "sac":
        return SACConfig()
    base = SIMPO_PRESETS[preset]
    temperature = dataclasses.replace(
        base.temperature, target=TEMPERATURE_TARGETS.get(algo, base.temperature.target),
        kl_target=PRESET_KL_TARGETS[preset].get(algo, {}).get(env, base.temperature.kl_target))
    per_env = {"target_candidates": TARGET_CANDIDATES[algo][env]} if env in TARGET_CANDIDATES.get(algo, {}) else {}
    return dataclasses.replace(base, temperature=temperature, **{**ALGO_OVERRIDES[algo], **per_env})

