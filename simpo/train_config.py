"""`TrainConfig`, one training run's settings (every field a `simpo train` flag), and the agent it builds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from simpo.agents.sac import SAC, SACConfig
from simpo.agents.simpo_agent import SiMPO, SiMPOConfig
from simpo.playground import OnDeviceConfig, first_update_step
from simpo.presets import agent_config
from simpo.transforms import REWARD_TRANSFORMS


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Every field is a CLI flag; `--algo` and `--preset` pick the defaults."""

    env: str = "HalfCheetah-v5"
    """gymnasium id (MuJoCo v5: HalfCheetah-v5, Hopper-v5, ...), dmc:DOMAIN-TASK (dmc:cheetah-run),
    playground:NAME (MuJoCo Playground, the whole loop on device: playground:CheetahRun), or
    simpo:contextual-bandit (a one-step test env)."""
    algo: Literal["simpo", "dpmd", "qvpo", "sac"] = "simpo"
    preset: Literal["paper", "fast"] = "fast"
    seed: int = 0
    seeds: tuple[int, ...] = ()
    """Train several seeds in one process (--seeds 0 1 2 3 4; overrides --seed), the envs stepped together (see
    --seed-batching). Writes one ordinary run directory per seed, RUN_DIR/seed{K}/."""
    seed_batching: Literal["map", "vmap"] = "map"
    """How --seeds share the jitted step. map: the one-seed program per seed, bit-identical to single-seed runs.
    vmap: one batched program; it differs from single runs in the last bits of a float (XLA sums a batched gradient
    in another order, then training drifts apart), and on a 2-core CPU it ran slower than map
    (docs/benchmarks/seeds.md)."""
    total_steps: int = 1_000_000
    """Env steps (not updates)."""
    warmup_steps: int = 5000
    """Uniform random actions, and no updates, for this many env steps."""
    batch_size: int = 256
    updates_per_step: int = 1
    """Updates per env step (UTD ratio). k > 1 samples the k batches at once and runs the k updates in one lax.scan."""
    buffer_size: int = 1_000_000
    eval_interval: int = 10_000
    eval_episodes: int = 10
    checkpoint_interval: int = 100_000
    """Save a checkpoint every this many env steps (and at the end)."""
    keep_checkpoints: int = 3
    log_interval: int = 1000
    """Write training metrics to TensorBoard every this many env steps."""
    reward_transform: str = "none"
    """Reward transform by name (the reward-landscape study): see simpo.transforms."""
    max_episode_steps: int | None = None
    run_dir: Path | None = None
    """Default: runs/ENV/ALGO-WEIGHTING-sSEED (with --seeds: runs/ENV/ALGO-WEIGHTING-sA-B-C)."""
    overwrite: bool = False
    """Allow writing into a non-empty run directory (its contents are replaced)."""
    track: bool = False
    """Also log to Weights & Biases (needs `pip install wandb`)."""
    wandb_project: str = "simpo"
    progress: bool = True
    debug_nans: bool = False
    """Turn on JAX's NaN checks (slow: every op is checked; the default guard is a cheap flag)."""
    matmul_precision: Literal["float32", "tensorfloat32"] = "float32"
    """Matmuls and convolutions of 32-bit inputs (jax.default_matmul_precision, set for the run's jitted code).
    float32: true fp32 everywhere. tensorfloat32: JAX's own default on NVIDIA GPUs since Ampere (10-bit mantissa
    products, faster); no effect on a CPU, where both are fp32 (bit-identical updates, checked)."""
    agent: SiMPOConfig = field(default_factory=SiMPOConfig)
    """SiMPO / DPMD / QVPO hyperparameters (--agent.weighting has the alias --weighting)."""
    sac: SACConfig = field(default_factory=SACConfig)
    ondevice: OnDeviceConfig = field(default_factory=OnDeviceConfig)
    """The on-device loop for playground:NAME envs (simpo.ondevice)."""

    def __post_init__(self):
        for name in ("total_steps", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "buffer_size", "eval_interval", "eval_episodes", "checkpoint_interval",
                     "keep_checkpoints", "log_interval", "updates_per_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 (or unset: the env's own limit), "
                             f"got {self.max_episode_steps}")
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be <= buffer_size ({self.buffer_size})")
        if self.reward_transform not in REWARD_TRANSFORMS:
            raise ValueError(f"unknown reward transform {self.reward_transform!r}; allowed: "
                             f"{', '.join(REWARD_TRANSFORMS)}")
        if len(set(self.seeds)) != len(self.seeds) or any(not 0 <= s < 2**32 for s in self.seeds):
            raise ValueError(f"seeds must be distinct integers in [0, 2**32), got {' '.join(map(str, self.seeds))}")
        if not 0 <= self.seed < 2**32:  # JAX keys take 32 bits: a larger seed would alias a smaller one
            raise ValueError(f"seed must be an integer in [0, 2**32), got {self.seed}")

    @property
    def first_update_step(self) -> int:
        """The env step (0-based) of the first update: the warm-up is over and the buffer holds a batch. On device
        (playground:NAME) E envs step at a time, and the warm-up ends at a multiple of E (simpo.playground's
        first_update_step, which the on-device loop uses too)."""
        if self.env.startswith("playground:"):
            return first_update_step(self.warmup_steps, self.batch_size, self.ondevice.num_envs)
        return max(self.warmup_steps, self.batch_size - 1)

    @property
    def label(self) -> str:
        return "sac" if self.algo == "sac" else f"{self.algo}-{self.agent.weighting}"

    @property
    def resolved_run_dir(self) -> Path:
        seeds = "-".join(map(str, self.seeds or (self.seed,)))
        return self.run_dir or Path("runs") / self.env.replace(":", "-") / f"{self.label}-s{seeds}"


def default_config(algo: str = "simpo", preset: str = "fast", env: str = TrainConfig.env) -> TrainConfig:
    """The defaults for `algo` × `preset` on `env` (presets are data: simpo.presets)."""
    agent = agent_config(algo, preset, env)
    if isinstance(agent, SACConfig):
        return TrainConfig(env=env, algo=algo, preset=preset, sac=agent)
    return TrainConfig(env=env, algo=algo, preset=preset, agent=agent)


def make_agent(config: TrainConfig, obs_dim: int, action_dim: int) -> SiMPO | SAC:
    if config.algo == "sac":
        return SAC(config.sac, obs_dim, action_dim)
    return SiMPO(config.agent, obs_dim, action_dim)
