"""The online training loop: env steps on the host, one jitted update per env step (SPEC §5).

    warm-up (uniform random actions) → act (one policy sample) → store → update (sample a batch
    from the buffer and run the agent's whole update, one jit) → evaluate every `eval_interval`
    steps in both modes (best-of-M by Q, and a single sample) → checkpoint.

Every random draw comes from `jax.random.fold_in(key, env_step)`, so a run is a pure function of
its config and seed. The run directory gets config.json, metrics.csv, TensorBoard events (tb/)
and orbax checkpoints (checkpoints/).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simpo.agents.sac import SAC, SACConfig
from simpo.agents.simpo_agent import SiMPO, SiMPOConfig
from simpo.buffer import ReplayBuffer, buffer_add, buffer_init, buffer_sample
from simpo.checkpoint import Checkpointer
from simpo.envs import env_spec, make_env, step_transition
from simpo.evaluation import eval_envs, evaluate, restore_run
from simpo.logger import RunLogger, write_config
from simpo.playground import OnDeviceConfig
from simpo.presets import agent_config
from simpo.progress import TrainingProgress
from simpo.transforms import REWARD_TRANSFORMS


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Every field is a CLI flag; `--algo` and `--preset` pick the defaults."""

    env: str = "HalfCheetah-v5"
    """gymnasium id (MuJoCo v5: HalfCheetah-v5, Hopper-v5, ...), or dmc:DOMAIN-TASK (dmc:cheetah-run)."""
    algo: Literal["simpo", "dpmd", "qvpo", "sac"] = "simpo"
    preset: Literal["paper", "fast"] = "fast"
    seed: int = 0
    total_steps: int = 1_000_000
    """Env steps (not updates)."""
    warmup_steps: int = 5000
    """Uniform random actions, and no updates, for this many env steps."""
    batch_size: int = 256
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
    """Default: runs/ENV/ALGO-WEIGHTING-sSEED."""
    overwrite: bool = False
    """Allow writing into a non-empty run directory (its contents are replaced)."""
    track: bool = False
    """Also log to Weights & Biases (needs `pip install wandb`)."""
    wandb_project: str = "simpo"
    progress: bool = True
    debug_nans: bool = False
    """Turn on JAX's NaN checks (slow: every op is checked; the default guard is a cheap flag)."""
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
                     "keep_checkpoints", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be <= buffer_size ({self.buffer_size})")
        if self.reward_transform not in REWARD_TRANSFORMS:
            raise ValueError(f"unknown reward transform {self.reward_transform!r}; allowed: "
                             f"{', '.join(REWARD_TRANSFORMS)}")

    @property
    def label(self) -> str:
        return "sac" if self.algo == "sac" else f"{self.algo}-{self.agent.weighting}"

    @property
    def resolved_run_dir(self) -> Path:
        return self.run_dir or Path("runs") / self.env.replace(":", "-") / f"{self.label}-s{self.seed}"


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


def check_run_dir(config: TrainConfig) -> Path:
    """Refuse (one-line ValueError, nothing written) a run directory that cannot be used: a file, a non-empty
    directory without --overwrite, or a path that cannot be created or written; and --track without wandb."""
    if config.track and importlib.util.find_spec("wandb") is None:
        raise ValueError("--track needs Weights & Biases: pip install wandb (or drop --track)")
    run_dir = config.resolved_run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run directory {run_dir} exists and is not a directory; choose another --run-dir")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not config.overwrite:
        raise ValueError(f"run directory {run_dir} is not empty; pass --overwrite or choose another --run-dir")
    # The nearest existing ancestor must be a writable directory (and the run dir's parent too, to replace it).
    ancestor = run_dir if run_dir.is_dir() and not config.overwrite else run_dir.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot create run directory {run_dir}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create run directory {run_dir}: {ancestor} is not writable")
    return run_dir


def prepare_run_dir(config: TrainConfig) -> Path:
    run_dir = check_run_dir(config)
    try:
        if run_dir.exists() and config.overwrite:
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create run directory {run_dir}: {err.strerror or err}") from err
    return run_dir


def run_config_dict(config: TrainConfig) -> dict:
    """config.json content: the agent config of the chosen algo only."""
    d = dataclasses.asdict(config)
    d.pop("sac" if config.algo != "sac" else "agent")
    return d


class TrainResult(NamedTuple):
    run_dir: Path
    state: Any  # the final agent state
    buffer: ReplayBuffer


class NonFiniteError(RuntimeError):
    """Training produced a NaN or an infinity; the run stopped and kept its last good checkpoint."""


class Guard(NamedTuple):
    """Device-side NaN guard: all updates finite so far; which quantities failed first, and when."""

    healthy: jax.Array  # () bool
    first_bad: jax.Array  # (len(metrics) + 1,) bool: sorted metric names, then the sampled rewards
    first_bad_step: jax.Array  # () int32: the env step of the first non-finite update


def _guard(guard: Guard, metrics: dict[str, jax.Array], batch, env_step) -> Guard:
    finite = jnp.stack([jnp.all(jnp.isfinite(metrics[k])) for k in sorted(metrics)]
                       + [jnp.all(jnp.isfinite(batch.reward))])
    newly_bad = guard.healthy & ~jnp.all(finite)
    return Guard(guard.healthy & jnp.all(finite), jnp.where(newly_bad, ~finite, guard.first_bad),
                 jnp.where(newly_bad, env_step, guard.first_bad_step))


def _seed(config: TrainConfig, env_step: int, stream: int) -> int:
    """A reset seed that depends only on the run's seed, the env step and a stream id."""
    return (config.seed * 1_000_003 + env_step * 7 + stream) % 2**31


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train one agent; returns the run directory and the final agent state and buffer.

    Exact resume (`resume=True` continues `config.resolved_run_dir` from its newest readable
    checkpoint): a checkpoint holds the agent state (old policy, optimiser and temperature states
    included) and the replay buffer. Everything else is a function of the seed and the env step:
    JAX keys are `fold_in(key, env_step)`, warm-up actions come from `default_rng([seed, step])`,
    evaluation envs are reset with seeds derived from the step, and **the training episode is ended
    at every checkpoint** (a truncation: it bootstraps) and the env reset with a seed derived from
    the step. A resumed run therefore reproduces the uninterrupted one exactly (timing columns aside),
    and an env's internal state never needs to be serialised.

    NaN guard: every update also returns a device-side flag (all losses, Q-values, weight statistics
    and sampled rewards finite), folded into one running flag that the host reads only every
    `log_interval` steps and before each evaluation and checkpoint. Env rewards and observations are
    checked on the host as they arrive. Either way the run stops with `NonFiniteError`, naming the
    quantity and the step, and no checkpoint is written after the problem began.
    """
    if config.debug_nans:
        jax.config.update("jax_debug_nans", True)
    env = make_env(config.env, config.seed, config.reward_transform, max_episode_steps=config.max_episode_steps)
    envs_for_eval = eval_envs(config, config.eval_episodes)
    obs_dim, action_dim = env_spec(env)
    agent = make_agent(config, obs_dim, action_dim)
    key = jax.random.PRNGKey(config.seed)
    k_init, k_act, k_update, k_best, k_single = jax.random.split(key, 5)
    if resume:
        run_dir = config.resolved_run_dir
        state, buffer, meta = restore_run(run_dir, config, agent, obs_dim, action_dim)
        start_step = int(meta["env_step"])
    else:
        run_dir = prepare_run_dir(config)
        write_config(run_dir, run_config_dict(config))
        state = agent.init(k_init)
        buffer = buffer_init(min(config.buffer_size, max(config.total_steps, 1)), obs_dim, action_dim)
        meta, start_step = {}, 0
    act = jax.jit(agent.act, static_argnums=3)

    def sampled_update(state, buffer: ReplayBuffer, key):
        k_batch, k_agent = jax.random.split(key)
        batch = buffer_sample(buffer, k_batch, config.batch_size)
        return (*agent.update(state, batch, k_agent), batch)

    @jax.jit
    def train_step(state, buffer: ReplayBuffer, key, guard, env_step):
        state, metrics, batch = sampled_update(state, buffer, key)
        return state, metrics, _guard(guard, metrics, batch, env_step)

    logger = RunLogger(run_dir, wandb_project=config.wandb_project if config.track else None)
    if resume:
        logger.drop_rows_after(start_step)
    checkpointer = Checkpointer(run_dir, max_to_keep=config.keep_checkpoints)
    obs, _ = env.reset(seed=_seed(config, start_step, 0) if resume else config.seed)
    metrics: dict[str, Any] = {}
    metric_names = sorted(jax.eval_shape(sampled_update, state, buffer, k_update)[1])
    guard = Guard(jnp.asarray(True), jnp.zeros(len(metric_names) + 1, bool), jnp.asarray(-1, jnp.int32))
    start = time.perf_counter() - float(meta.get("wall_time_s", 0.0))  # resumed runs keep their clock
    train_time = float(meta.get("train_time_s", 0.0))

    def stop(problem: str) -> NonFiniteError:
        return NonFiniteError(f"{problem}; stopped. Last good checkpoint: step {checkpointer.latest_step()} "
                              f"in {run_dir}")

    def check() -> None:
        if not bool(guard.healthy):
            bad = [n for n, b in zip([*metric_names, "sampled reward"], np.asarray(guard.first_bad)) if b]
            raise stop(f"non-finite {', '.join(bad)} in the update at env step {int(guard.first_bad_step)}")

    title = f"{config.label} on {config.env}"
    try:
        with TrainingProgress(config.total_steps, enabled=config.progress, title=title) as progress:
            progress.advance(start_step)
            for step in range(start_step, config.total_steps):
                tick = time.perf_counter()
                if step < config.warmup_steps:
                    rng = np.random.default_rng([config.seed, step])
                    action = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
                else:
                    action = np.asarray(act(state, jax.random.fold_in(k_act, step), jnp.asarray(obs)))
                env_step = step + 1
                if not np.all(np.isfinite(action)):
                    check()  # names the update quantity that went non-finite first
                    raise stop(f"the policy produced a non-finite action at env step {env_step}")
                transition, obs, _ = step_transition(env, obs, action)
                if not (np.isfinite(transition.reward) and np.all(np.isfinite(transition.next_obs))):
                    what = "reward" if not np.isfinite(transition.reward) else "observation"
                    raise stop(f"the env returned a non-finite {what} at env step {env_step}")
                buffer = buffer_add(buffer, *transition)
                # the buffer holds min(env_step, capacity) rows: known on the host, no device sync
                if step >= config.warmup_steps and min(env_step, buffer.capacity) >= config.batch_size:
                    state, metrics, guard = train_step(state, buffer, jax.random.fold_in(k_update, step), guard, env_step)
                train_time += time.perf_counter() - tick
                if metrics and env_step % config.log_interval == 0:
                    check()
                    logger.log(env_step, {f"train/{k}": float(v) for k, v in metrics.items()})
                if env_step % config.eval_interval == 0 or env_step == config.total_steps:
                    check()
                    eval_seed = _seed(config, env_step, 1)
                    best = evaluate(state, envs_for_eval, jax.random.fold_in(k_best, env_step), "best_of_n", act,
                                    eval_seed)
                    single = evaluate(state, envs_for_eval, jax.random.fold_in(k_single, env_step), "single", act,
                                      eval_seed)
                    row = {
                        "env_step": env_step,
                        "wall_time_s": time.perf_counter() - start,
                        "eval_return_mean": float(best.mean()),
                        "eval_return_std": float(best.std()),
                        "eval_return_single_mean": float(single.mean()),
                        "eval_return_single_std": float(single.std()),
                        "train_sps": env_step / max(train_time, 1e-9),
                        **{k: float(v) for k, v in metrics.items()},
                    }
                    logger.log_row(row, also_scalars=True)
                    progress.evaluated(row["eval_return_mean"], row["eval_return_single_mean"])
                if env_step % config.checkpoint_interval == 0 or env_step == config.total_steps:
                    check()
                    checkpointer.save(env_step, {"agent": state, "buffer": buffer},
                                      {"env_step": env_step, "wall_time_s": time.perf_counter() - start,
                                       "train_time_s": train_time})
                    obs, _ = env.reset(seed=_seed(config, env_step, 0))  # end the episode: exact resume
                progress.advance(env_step)
    finally:
        checkpointer.close()
        logger.close()
    return TrainResult(run_dir, state, buffer)
