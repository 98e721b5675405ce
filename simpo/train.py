"""The online training loop: env steps on the host, one jitted update per env step (SPEC §5).

    warm-up (uniform random actions) → act (one policy sample) → store → update (sample a batch
    from the buffer and run the agent's whole update, one jit) → evaluate every `eval_interval`
    steps in both modes (best-of-M by Q, and a single sample) → checkpoint.

Every random draw comes from `jax.random.fold_in(key, env_step)`, so a run is a pure function of
its config and seed. The run directory gets config.json, metrics.csv, TensorBoard events (tb/)
and orbax checkpoints (checkpoints/). With `--seeds`, S seeds train in one process: the agent
states, replay buffers and NaN guards carry a leading seed axis, one jitted call acts and one
updates for all seeds, and each seed writes its own run directory (simpo.rundir).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from simpo import provenance
from simpo.buffer import ReplayBuffer, buffer_add, buffer_init, buffer_sample, buffer_sample_many
from simpo.checkpoint import CheckpointError, Checkpointer
from simpo.envs import env_spec, make_env, step_transition
from simpo.evaluation import eval_envs, evaluate, restore_run
from simpo.guard import Guard, NonFiniteError, _guard, guard_init, guard_problem
from simpo.logger import RunLogger, write_config
from simpo.progress import TrainingProgress
from simpo.rundir import check_run_dir, prepare_run_dir, run_config_dict, seed_configs
from simpo.seedaxis import SeedAxis, stack_trees
from simpo.train_config import TrainConfig, default_config, make_agent

__all__ = ["TrainConfig", "TrainResult", "NonFiniteError", "Guard", "default_config", "make_agent", "train",
           "check_run_dir", "prepare_run_dir", "run_config_dict", "seed_configs"]


class TrainResult(NamedTuple):
    run_dir: Path
    state: Any  # the final agent state (with --seeds: a leading seed axis on every leaf)
    buffer: ReplayBuffer  # likewise
    start_step: int = 0  # the env step it started from: a resumed run's checkpoint step, else 0


def _seed(config: TrainConfig, env_step: int, stream: int) -> int:
    """A reset seed that depends only on the run's seed, the env step and a stream id."""
    return (config.seed * 1_000_003 + env_step * 7 + stream) % 2**31


def _restore(runs: list[TrainConfig], agent, obs_dim: int, action_dim: int):
    """Per-seed agent states and buffers, and the metadata, of the newest checkpoint step every seed can read."""
    if len(runs) == 1:
        state, buffer, meta = restore_run(runs[0].resolved_run_dir, runs[0], agent, obs_dim, action_dim)
        return [state], [buffer], meta
    def saved(run_dir: Path) -> set[int]:
        with Checkpointer(run_dir) as checkpointer:
            return set(checkpointer.all_steps())

    steps = set.intersection(*(saved(c.run_dir) for c in runs))
    for step in sorted(steps, reverse=True):
        try:
            restored = [restore_run(c.run_dir, c, agent, obs_dim, action_dim, step=step) for c in runs]
        except CheckpointError:
            continue
        return [r[0] for r in restored], [r[1] for r in restored], restored[0][2]
    raise CheckpointError(f"the seeds in {runs[0].run_dir.parent} have no readable checkpoint step in common")


def at_matmul_precision(fn):
    """Run `fn(config, ...)` under `jax.default_matmul_precision(config.matmul_precision)`: every function it
    jits is traced, cached and run at that precision."""

    @functools.wraps(fn)
    def wrapped(config, *args, **kwargs):
        with jax.default_matmul_precision(config.matmul_precision):
            return fn(config, *args, **kwargs)

    return wrapped


@at_matmul_precision
def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train one agent, or one per seed of `config.seeds`; returns the run directory, final agent state and buffer.

    Exact resume (`resume=True` continues `config.resolved_run_dir` from its newest readable
    checkpoint, for all seeds of a group the newest step they share): a checkpoint holds the agent
    state (old policy, optimiser and temperature states included) and the replay buffer. Everything
    else is a function of the seed and the env step: JAX keys are `fold_in(key, env_step)`, warm-up
    actions come from `default_rng([seed, step])`, evaluation envs are reset with seeds derived from
    the step, and **the training episode is ended at every checkpoint** (a truncation: it bootstraps)
    and the env reset with a seed derived from the step. A resumed run therefore reproduces the
    uninterrupted one exactly (timing columns aside), and an env's internal state never needs to be
    serialised.

    NaN guard (simpo.guard): every update also returns a device-side flag, folded into one running
    flag per seed that the host reads only every `log_interval` steps and before each evaluation and
    checkpoint. Env rewards and observations are checked on the host as they arrive. Either way the
    run stops with `NonFiniteError`, naming the quantity, the step (and the seed), and no checkpoint
    is written after the problem began.
    """
    if config.debug_nans:
        jax.config.update("jax_debug_nans", True)
    runs = seed_configs(config)
    envs = [make_env(c.env, c.seed, c.reward_transform, max_episode_steps=c.max_episode_steps) for c in runs]
    envs_for_eval = [eval_envs(c, c.eval_episodes) for c in runs]
    obs_dim, action_dim = env_spec(envs[0])
    agent = make_agent(config, obs_dim, action_dim)
    axis = SeedAxis(len(runs), config.seed_batching)
    keys = [jax.random.split(jax.random.PRNGKey(c.seed), 5) for c in runs]
    k_init, k_act, k_update, k_best, k_single = (axis.stack([k[j] for k in keys]) for j in range(5))
    capacity = min(config.buffer_size, max(config.total_steps, 1))
    if resume:
        states, buffers, meta = _restore(runs, agent, obs_dim, action_dim)
        state, buffer, start_step = axis.stack(states), axis.stack(buffers), int(meta["env_step"])
    else:
        prepare_run_dir(config)
        for c in [config, *runs] if config.seeds else runs:
            c.resolved_run_dir.mkdir(exist_ok=True)
            write_config(c.resolved_run_dir, run_config_dict(c))
        init = jax.jit(agent.init)  # per seed, as a single run does: the same initial weights under vmap too
        state = axis.stack([init(axis.slice(k_init, i)) for i in range(len(runs))])
        buffer = axis.stack([buffer_init(capacity, obs_dim, action_dim) for _ in runs])
        meta, start_step = {}, 0
    if resume and start_step >= config.total_steps:  # complete already: nothing to train, log or record
        return _result(config, axis, state, buffer, start_step)
    info = provenance.code_and_machine()
    for c in runs:
        provenance.record(c.resolved_run_dir, start_step, info)
    act_one = jax.jit(agent.act, static_argnums=3)
    act = axis.jit(lambda state, key, obs, step: agent.act(state, jax.random.fold_in(key, step), obs), shared=1)
    add = axis.jit(buffer_add, donate_argnums=(0,))
    k, B = config.updates_per_step, config.batch_size

    def sampled_update(state, buffer: ReplayBuffer, key, guard, step):
        """`k` updates on `k` batches sampled at once (a lax.scan when k > 1); the last update's metrics."""
        k_batch, k_agent, env_step = *jax.random.split(jax.random.fold_in(key, step)), step + 1
        if k == 1:
            batch = buffer_sample(buffer, k_batch, B)
            state, metrics = agent.update(state, batch, k_agent)
            return state, metrics, _guard(guard, metrics, batch, env_step)

        def one(carry, xs):
            state, guard = carry
            state, metrics = agent.update(state, xs[0], xs[1])
            return (state, _guard(guard, metrics, xs[0], env_step)), metrics

        batches = buffer_sample_many(buffer, k_batch, k, B)
        (state, guard), metrics = jax.lax.scan(one, (state, guard), (batches, jax.random.split(k_agent, k)))
        return state, jax.tree.map(lambda m: m[-1], metrics), guard

    train_step = axis.jit(sampled_update, shared=1)
    one_state, one_buffer = axis.slice(state, 0), axis.slice(buffer, 0)
    metric_names = sorted(jax.eval_shape(lambda s, b, key: agent.update(s, buffer_sample(b, key, B), key)[1],
                                         one_state, one_buffer, k_update[0]))
    guard = axis.stack([guard_init(metric_names) for _ in runs])
    loggers = [RunLogger(c.resolved_run_dir, wandb_project=config.wandb_project if config.track else None,
                         purge_step=start_step + 1 if resume else None) for c in runs]
    checkpointers = [Checkpointer(c.resolved_run_dir, max_to_keep=config.keep_checkpoints) for c in runs]
    if resume:
        for logger in loggers:
            logger.drop_rows_after(start_step)
    obs = [env.reset(seed=_seed(c, start_step, 0) if resume else c.seed)[0] for c, env in zip(runs, envs)]
    metrics: dict[str, Any] = {}
    start = time.perf_counter() - float(meta.get("wall_time_s", 0.0))  # resumed runs keep their clock
    train_time = float(meta.get("train_time_s", 0.0))
    which = lambda i: f" (seed {runs[i].seed})" if config.seeds else ""  # noqa: E731

    def stop(problem: str, i: int) -> NonFiniteError:
        return NonFiniteError(f"{problem}{which(i)}; stopped. Last good checkpoint: step "
                              f"{checkpointers[i].latest_step()} in {runs[i].resolved_run_dir}")

    def check() -> None:
        for i in range(len(runs)):
            problem = guard_problem(axis.slice(guard, i), metric_names)
            if problem:
                raise stop(problem, i)

    title = f"{config.label} on {config.env}" + (f" x {len(runs)} seeds" if config.seeds else "")
    try:
        with TrainingProgress(config.total_steps, enabled=config.progress, title=title) as progress:
            progress.advance(start_step)
            for step in range(start_step, config.total_steps):
                tick = time.perf_counter()
                if step < config.warmup_steps:
                    actions = np.stack([np.random.default_rng([c.seed, step]).uniform(-1.0, 1.0, action_dim)
                                        for c in runs]).astype(np.float32)
                else:
                    actions = np.stack(jax.device_get(act(state, k_act, axis.stack(obs), step)))
                env_step = step + 1
                transitions = []
                for i, env in enumerate(envs):
                    if not np.all(np.isfinite(actions[i])):
                        check()  # names the update quantity that went non-finite first
                        raise stop(f"the policy produced a non-finite action at env step {env_step}", i)
                    transition, obs[i], _ = step_transition(env, obs[i], actions[i])
                    if not (np.isfinite(transition.reward) and np.all(np.isfinite(transition.next_obs))):
                        what = "reward" if not np.isfinite(transition.reward) else "observation"
                        raise stop(f"the env returned a non-finite {what} at env step {env_step}", i)
                    transitions.append(transition)
                buffer = add(buffer, *(axis.stack(list(xs)) for xs in zip(*transitions)))
                if step >= config.first_update_step:  # a host-side count: no device sync
                    state, metrics, guard = train_step(state, buffer, k_update, guard, step)
                train_time += time.perf_counter() - tick
                if metrics and env_step % config.log_interval == 0:
                    check()
                    for i, logger in enumerate(loggers):
                        logger.log(env_step, {f"train/{k}": float(v) for k, v in axis.slice(metrics, i).items()})
                if env_step % config.eval_interval == 0 or env_step == config.total_steps:
                    check()
                    means = []
                    for i, c in enumerate(runs):
                        returns = [evaluate(axis.slice(state, i), envs_for_eval[i], jax.random.fold_in(axis.slice(key, i), env_step),
                                            mode, act_one, _seed(c, env_step, 1))
                                   for key, mode in ((k_best, "best_of_n"), (k_single, "single"))]
                        row = {
                            "env_step": env_step,
                            "wall_time_s": time.perf_counter() - start,
                            "eval_return_mean": float(returns[0].mean()),
                            "eval_return_std": float(returns[0].std()),
                            "eval_return_single_mean": float(returns[1].mean()),
                            "eval_return_single_std": float(returns[1].std()),
                            "train_sps": env_step / max(train_time, 1e-9),
                            **({k: float(v) for k, v in axis.slice(metrics, i).items()} if metrics else {}),
                        }
                        loggers[i].log_row(row, also_scalars=True)
                        means.append((row["eval_return_mean"], row["eval_return_single_mean"]))
                    progress.evaluated(*np.mean(means, axis=0), at=env_step)
                if env_step % config.checkpoint_interval == 0 or env_step == config.total_steps:
                    check()
                    info = {"env_step": env_step, "wall_time_s": time.perf_counter() - start,
                            "train_time_s": train_time}
                    for i, (c, env) in enumerate(zip(runs, envs)):
                        loggers[i].flush()  # TensorBoard holds what a resume from this checkpoint keeps
                        checkpointers[i].save(env_step, {"agent": axis.slice(state, i),
                                                         "buffer": axis.slice(buffer, i)}, info)
                        obs[i], _ = env.reset(seed=_seed(c, env_step, 0))  # end the episode: exact resume
                progress.advance(env_step)
    finally:
        for closable in [*checkpointers, *loggers]:
            closable.close()
    return _result(config, axis, state, buffer, start_step)


def _result(config: TrainConfig, axis: SeedAxis, state, buffer, start_step: int) -> TrainResult:
    """`train`'s result: the state and buffer with a leading seed axis for `--seeds`, without one otherwise."""
    if config.seeds:
        state, buffer = (stack_trees(axis.unstack(t)) for t in (state, buffer))
    else:
        state, buffer = state[0], buffer[0]
    return TrainResult(config.resolved_run_dir, state, buffer, start_step)
