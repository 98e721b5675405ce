"""The fully on-device training loop: MuJoCo Playground (MJX) envs stepped in batch inside one jitted `lax.scan`.

    simpo train --env playground:CheetahRun --ondevice.num-envs 1      # what `simpo train` runs for playground:*

The same steps as the host loop (simpo.train), E envs at a time (`--ondevice.num-envs`), with no host round trip:

    one scan iteration: act (uniform in [-1, 1] during warm-up, else one policy sample per env) → step the E envs
    (auto-reset) → add E rows to the replay buffer → `updates_per_iteration` updates (default E × updates_per_step)

A chunk of training, up to the next evaluation or checkpoint, is one call of one jitted function (a `lax.scan`
over its iterations; equal-length chunks reuse one compilation). The host runs only between chunks: evaluation in
both modes (itself one jitted scan per mode, on device), the metrics.csv row (same columns as the host loop), the
training metrics of the last update to TensorBoard, checkpoints, the progress bar.

Semantics kept from simpo.train: warm-up steps act uniformly and do not update (E steps at a time, so with
`warmup_steps` not a multiple of E the warm-up ends at the next multiple: 5,120 for 5,000 and E = 256); updates start
once the buffer holds a batch (both rules: `TrainConfig.first_update_step`, also read by `simpo train`'s "no
update ran" warning); the buffer stores `terminated`, not `done`, and truncations bootstrap from the true final
observation (SPEC §9); every random draw is `fold_in(key, iteration)`; the NaN guard is a device flag (the
update's metrics and sampled rewards, plus the actions, env rewards and observations) read once per chunk; the
guard that tripped first is reported, and a failure in the env loop is placed in the E env steps of its iteration.
The reward transform is applied on device (simpo.playground.jax_reward_transform); evaluation reports the env's
own reward. An eval or checkpoint interval at or past total_steps fires at the end only, so it need not be a
multiple of E.

Not (yet) supported here: `--resume`, and `simpo eval` of a playground run (both need a host-side env).
`--log-interval` is not used: the training metrics of a chunk's last update go to TensorBoard once per chunk.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simpo import provenance
from simpo.buffer import ReplayBuffer, buffer_add_batch, buffer_init, buffer_sample
from simpo.checkpoint import Checkpointer
from simpo.logger import RunLogger, write_config
from simpo.playground import (OnDeviceConfig, default_episode_length, episode_returns, jax_reward_transform,
                              load_env, reset_envs, step_envs)
from simpo.progress import TrainingProgress
from simpo.guard import Guard, NonFiniteError, _guard, guard_init, guard_problem
from simpo.rundir import prepare_run_dir, run_config_dict
from simpo.train import TrainConfig, at_matmul_precision, make_agent

__all__ = ["OnDeviceConfig", "OnDeviceResult", "build_loop", "train_on_device"]

ENV_CHECKS = ("action", "observation")  # the env guard's entries (then the env reward), as simpo.guard orders them


class OnDeviceResult(NamedTuple):
    run_dir: Path
    state: Any  # the final agent state
    buffer: ReplayBuffer
    chunk_traces: int  # how often the chunk function was traced (once per distinct chunk length)
    updates: int  # agent updates run


class Carry(NamedTuple):
    """Everything a chunk carries from one iteration to the next."""

    state: Any  # agent state
    buffer: ReplayBuffer
    envs: Any  # simpo.playground.EnvBatch
    metrics: dict[str, jax.Array]  # of the last update
    updates: jax.Array  # () int32: updates so far
    guard: Guard  # the update's NaN guard (simpo.train)
    env_guard: Guard  # non-finite actions, observations, rewards


def _env_problem(guard: Guard, n_envs: int) -> str | None:
    """None if every action, observation and env reward so far was finite, else which one was not, and when: the
    guard holds the end step N of the iteration, whose E envs took env steps N − E + 1 to N."""
    if bool(guard.healthy):
        return None
    bad = [n for n, b in zip([*ENV_CHECKS, "reward"], np.asarray(guard.first_bad)) if b]
    end = int(guard.first_bad_step)
    when = f"at env step {end}" if n_envs == 1 else \
        f"in env steps {end - n_envs + 1}-{end} (one step of the {n_envs} envs)"
    return f"non-finite {', '.join(bad)} from the env loop {when}"


def _first_problem(carry: Carry, metric_names: list[str], n_envs: int) -> str | None:
    """None if both guards are healthy, else the problem of the one that tripped first, as the host loop names the
    update quantity that went non-finite before the action it made non-finite. Both guards hold the end step of
    their iteration; on a tie the env loop's comes first, since an iteration acts and steps its envs before it
    updates (so its updates may have sampled the env's non-finite rows, and the host loop stops before them)."""
    env, update = carry.env_guard, carry.guard
    if not bool(update.healthy) and (bool(env.healthy) or int(update.first_bad_step) < int(env.first_bad_step)):
        return guard_problem(update, metric_names)
    return _env_problem(env, n_envs)


def _validate(config: TrainConfig) -> None:
    if config.seeds:
        raise ValueError("--seeds is not supported with playground: envs yet; train one --seed per run")
    e, total = config.ondevice.num_envs, config.total_steps
    if total % e:
        raise ValueError(f"total_steps ({total}) must be a multiple of ondevice.num_envs ({e}); "
                         f"change --total-steps or --ondevice.num-envs")
    for name in ("eval_interval", "checkpoint_interval"):  # one at or past the end fires at the end only
        value = getattr(config, name)
        if value < total and value % e:
            raise ValueError(f"{name} ({value}) must be a multiple of ondevice.num_envs ({e}) or at least "
                             f"total_steps ({total}); change --{name.replace('_', '-')} or --ondevice.num-envs")


def _boundaries(config: TrainConfig) -> list[int]:
    """Env steps at which a chunk ends: every evaluation and checkpoint, and the end."""
    total = config.total_steps
    ends = {total} | set(range(config.eval_interval, total, config.eval_interval))
    return sorted(ends | set(range(config.checkpoint_interval, total, config.checkpoint_interval)))


class Loop(NamedTuple):
    """The compiled pieces of an on-device run (`build_loop`); nothing is written until they exist."""

    agent: Any
    carry: Carry  # the initial carry
    chunk: Any  # chunk(carry, first_iteration, length) -> carry: `length` iterations, one jitted scan
    evaluate: Any  # evaluate(state, key, mode, env_key) -> (eval_episodes,) returns, one jitted scan
    metric_names: list[str]
    eval_keys: tuple[jax.Array, jax.Array, jax.Array]  # best-of-n, single, env resets
    traces: list[int]  # [how often `chunk` was traced]


def build_loop(config: TrainConfig, env: Any = None) -> Loop:
    """Validate `config`, load the env and build the agent, its initial carry and the jitted chunk and evaluation.
    `env`, if given, is used instead of loading `config.env`: anything with a Playground env's `reset(key)`,
    `step(state, action)` (states with `obs`, `reward`, `done`), `observation_size` and `action_size` (the tests'
    mock env; then set `max_episode_steps`)."""
    _validate(config)
    if env is None:
        env = load_env(config.env, config.ondevice.impl)  # validates the name (and that Playground is installed)
    transform = jax_reward_transform(config.reward_transform)
    episode_length = config.max_episode_steps or default_episode_length(config.env)
    n_envs = config.ondevice.num_envs
    n_updates = config.ondevice.updates_per_iteration or n_envs * config.updates_per_step
    obs_dim, action_dim = int(env.observation_size), int(env.action_size)
    agent = make_agent(config, obs_dim, action_dim)

    key = jax.random.PRNGKey(config.seed)
    k_init, k_act, k_update, k_best, k_single, k_env, k_warm, k_eval_env = jax.random.split(key, 8)
    capacity = min(config.buffer_size, max(config.total_steps, 1))
    buffer = buffer_init(capacity, obs_dim, action_dim)
    state = agent.init(k_init)

    def sampled_update(state, buffer: ReplayBuffer, key):
        k_batch, k_agent = jax.random.split(key)
        batch = buffer_sample(buffer, k_batch, config.batch_size)
        return (*agent.update(state, batch, k_agent), batch)

    shapes = jax.eval_shape(sampled_update, state, buffer, k_update)[1]
    metric_names = sorted(shapes)

    def iteration(c: Carry, i: jax.Array) -> tuple[Carry, None]:
        step0, env_step = i * n_envs, (i + 1) * n_envs
        obs = c.envs.state.obs
        action = jax.lax.cond(
            step0 < config.warmup_steps,
            lambda: jax.random.uniform(jax.random.fold_in(k_warm, i), (n_envs, action_dim), minval=-1.0, maxval=1.0),
            lambda: agent.act(c.state, jax.random.fold_in(k_act, i), obs))
        envs, tr = step_envs(env, c.envs, action, jax.random.fold_in(k_env, i), episode_length)
        buffer = buffer_add_batch(c.buffer, tr.obs, action, transform(tr.reward), tr.next_obs, tr.terminated)
        env_guard = _guard(c.env_guard, {"action": action, "observation": tr.next_obs}, tr, env_step)

        def update(carry, j):
            state, metrics, guard = carry
            state, metrics, batch = sampled_update(state, buffer, jax.random.fold_in(k_update, i * n_updates + j))
            return (state, metrics, _guard(guard, metrics, batch, env_step)), None

        ready = env_step > config.first_update_step  # warmed up, and the buffer holds a batch
        state, metrics, guard = jax.lax.cond(
            ready, lambda a: jax.lax.scan(update, a, jnp.arange(n_updates))[0], lambda a: a,
            (c.state, c.metrics, c.guard))
        updates = c.updates + jnp.where(ready, n_updates, 0)
        return Carry(state, buffer, envs, metrics, updates, guard, env_guard), None

    traces = [0]

    @partial(jax.jit, static_argnums=2, donate_argnums=0)
    def chunk(carry: Carry, first: jax.Array, length: int) -> Carry:
        traces[0] += 1  # runs only while tracing
        return jax.lax.scan(iteration, carry, first + jnp.arange(length))[0]

    @partial(jax.jit, static_argnums=2)
    def evaluate(state, key, mode: str, env_key) -> jax.Array:
        """Returns of `eval_episodes` episodes in `mode`, one jitted scan; both modes start from `env_key`'s
        states, as the host loop seeds both modes' evaluation envs alike."""
        policy = lambda obs, k: agent.act(state, k, obs, mode)  # noqa: E731
        return episode_returns(env, policy, env_key, key, config.eval_episodes, episode_length)

    carry = Carry(state, buffer, reset_envs(env, k_env, n_envs),
                  {k: jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}, jnp.zeros((), jnp.int32),
                  guard_init(metric_names), guard_init(list(ENV_CHECKS)))
    # Distinct buffers to donate (init shares the actor and old-actor params), and strong types, so that every
    # chunk of one length reuses one compilation (a weakly typed leaf would come back strong and retrace).
    carry = jax.tree.map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), carry)
    return Loop(agent, carry, chunk, evaluate, metric_names, (k_best, k_single, k_eval_env), traces)


@at_matmul_precision
def train_on_device(config: TrainConfig, env: Any = None) -> OnDeviceResult:
    """Train one agent on a `playground:NAME` env with the whole loop on device; same run directory as `train`.
    `env`: as in `build_loop`."""
    if config.debug_nans:
        jax.config.update("jax_debug_nans", True)
    loop = build_loop(config, env)
    carry, n_envs = loop.carry, config.ondevice.num_envs
    k_best, k_single, k_eval_env = loop.eval_keys
    run_dir = prepare_run_dir(config)
    write_config(run_dir, run_config_dict(config))
    provenance.record(run_dir, 0)
    logger = RunLogger(run_dir, wandb_project=config.wandb_project if config.track else None)
    checkpointer = Checkpointer(run_dir, max_to_keep=config.keep_checkpoints)

    def check(carry: Carry) -> None:
        problem = _first_problem(carry, loop.metric_names, n_envs)
        if problem:
            raise NonFiniteError(f"{problem}; stopped. Last good checkpoint: step {checkpointer.latest_step()} "
                                 f"in {run_dir}")

    start, train_time, done = time.perf_counter(), 0.0, 0
    title = f"{config.label} on {config.env} (on device, {n_envs} envs)"
    try:
        with TrainingProgress(config.total_steps, enabled=config.progress, title=title) as progress:
            for env_step in _boundaries(config):
                tick = time.perf_counter()
                carry = loop.chunk(carry, jnp.asarray(done // n_envs, jnp.int32), (env_step - done) // n_envs)
                jax.block_until_ready(carry.updates)
                train_time += time.perf_counter() - tick
                done = env_step
                check(carry)
                trained = int(carry.updates) > 0
                if trained:
                    logger.log(env_step, {f"train/{k}": float(v) for k, v in carry.metrics.items()})
                if env_step % config.eval_interval == 0 or env_step == config.total_steps:
                    env_key = jax.random.fold_in(k_eval_env, env_step)
                    best, single = (np.asarray(loop.evaluate(carry.state, jax.random.fold_in(k, env_step), mode,
                                                             env_key))
                                    for k, mode in ((k_best, "best_of_n"), (k_single, "single")))
                    row = {"env_step": env_step, "wall_time_s": time.perf_counter() - start,
                           "eval_return_mean": float(best.mean()), "eval_return_std": float(best.std()),
                           "eval_return_single_mean": float(single.mean()),
                           "eval_return_single_std": float(single.std()),
                           "train_sps": env_step / max(train_time, 1e-9),
                           **({k: float(v) for k, v in carry.metrics.items()} if trained else {})}
                    logger.log_row(row, also_scalars=True)
                    progress.evaluated(row["eval_return_mean"], row["eval_return_single_mean"], at=env_step)
                if env_step % config.checkpoint_interval == 0 or env_step == config.total_steps:
                    checkpointer.save(env_step, {"agent": carry.state, "buffer": carry.buffer},
                                      {"env_step": env_step, "wall_time_s": time.perf_counter() - start,
                                       "train_time_s": train_time})
                progress.advance(env_step)
    finally:
        checkpointer.close()
        logger.close()
    return OnDeviceResult(run_dir, carry.state, carry.buffer, loop.traces[0], int(carry.updates))

