"""Evaluation in both modes, and loading a finished run back from its directory (`simpo eval`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from simpo.agents.base import EVAL_MODES
from simpo.buffer import buffer_init
from simpo.checkpoint import Checkpointer
from simpo.envs import env_spec, make_env
from simpo.logger import read_config



def evaluate(state: Any, envs: list, key: jax.Array, mode: str, act_fn, seed: int = 0, on_frame=None) -> np.ndarray:
    """Run one episode in each env (in lockstep, batched actions); returns the undiscounted returns
    of the env's own reward (a reward transform changes training, not what is reported).

    `mode` is "best_of_n" (the authors' protocol: best of M samples by min-Q) or "single" (one
    policy sample: the policy's own return). Env i starts from `reset(seed=seed + i)`, so an
    evaluation is a pure function of the agent state, `key` and `seed`. `on_frame(envs[0])`, if given, is called
    after env 0's reset and after each of its steps (simpo.video records its episode)."""
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    if on_frame is not None:
        on_frame(envs[0])
    returns = np.zeros(len(envs))
    alive = np.ones(len(envs), bool)
    t = 0
    while alive.any():
        actions = np.asarray(act_fn(state, jax.random.fold_in(key, t), jnp.asarray(obs), mode))
        for i in np.flatnonzero(alive):
            obs[i], reward, terminated, truncated, info = envs[i].step(actions[i])
            returns[i] += info.get("raw_reward", reward)
            alive[i] = not (terminated or truncated)
            if i == 0 and on_frame is not None:
                on_frame(envs[0])
        t += 1
    return returns


def eval_envs(config, count: int, render_size: tuple[int, int] | None = None) -> list:
    """`count` evaluation envs, seeded apart from the training env; the first renders frames of `render_size`.
    Seeds wrap at 2**32 (dm_control's RandomState takes no more)."""
    return [make_env(config.env, (10_000 + config.seed * 100 + i) % 2**32, config.reward_transform,
                     max_episode_steps=config.max_episode_steps, render_size=render_size if i == 0 else None)
            for i in range(count)]


NON_FINITE = ("inf", "-inf", "nan")


def _build(cls, data: dict):
    """Rebuild a (nested) frozen dataclass from `dataclasses.asdict` output, ignoring unknown keys."""
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data or not f.init:
            continue
        value, hint = data[f.name], hints[f.name]
        inner = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
        if dataclasses.is_dataclass(inner) and isinstance(value, dict):
            value = _build(inner, value)
        elif isinstance(value, list):
            value = tuple(value)
        elif value is not None and Path in (inner, *typing.get_args(inner)):  # Path or Path | None
            value = Path(value)
        elif value in NON_FINITE and float in (inner, *typing.get_args(inner)):  # to_jsonable's repr of inf, nan
            value = float(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def read_run_config(run_dir: Path, purpose: str | None = None):
    """The `TrainConfig` saved in `run_dir`, with one-line errors for a missing or broken run directory. With
    `purpose` (e.g. "resuming"), a playground run is refused: resuming and evaluating one need a host-side env."""
    from simpo.train import TrainConfig  # train imports this module

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ValueError(f"run directory {run_dir} does not exist")
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} is not a simpo run directory (no config.json)")
    try:
        data = read_config(run_dir)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"run directory {run_dir} has a corrupted config.json ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"run directory {run_dir} has a corrupted config.json (not a JSON object)")
    try:
        config = _build(TrainConfig, data)
    except (TypeError, AttributeError, ValueError) as err:
        raise ValueError(f"run directory {run_dir} has an invalid config.json ({err})") from None
    if purpose and config.env.startswith("playground:"):
        raise ValueError(f"{run_dir} is a run of the on-device loop ({config.env}); {purpose} a playground run is "
                         "not supported yet (simpo.ondevice)")
    for d in [run_dir / f"seed{s}" for s in config.seeds] or [run_dir]:  # a group of seeds: every seed's dir
        if not (d / "checkpoints").is_dir():
            raise ValueError(f"run directory {d} has no checkpoints/ (was training stopped before the first save?)")
    return config


def restore_run(run_dir: Path, config, agent, obs_dim: int, action_dim: int, step: int | None = None):
    """(agent state, replay buffer, metadata) of checkpoint `step` of a run (default: the newest readable one)."""
    capacity = min(config.buffer_size, max(config.total_steps, 1))
    target = {"agent": agent.init(jax.random.PRNGKey(0)), "buffer": buffer_init(capacity, obs_dim, action_dim)}
    checkpointer = Checkpointer(run_dir)
    try:
        restored, meta = checkpointer.restore(step, target=target)
    finally:
        checkpointer.close()
    return restored["agent"], restored["buffer"], meta


def load_run(run_dir: Path):
    """(config, agent, agent state, env_step) of the newest readable checkpoint in `run_dir`."""
    from simpo.train import make_agent

    config = read_run_config(run_dir, "evaluating")
    if config.seeds:
        raise ValueError(f"{run_dir} holds {len(config.seeds)} seeds; name one of them, e.g. {Path(run_dir) / f'seed{config.seeds[0]}'}")
    env = make_env(config.env, config.seed, config.reward_transform, max_episode_steps=config.max_episode_steps)
    obs_dim, action_dim = env_spec(env)
    agent = make_agent(config, obs_dim, action_dim)
    state, _, meta = restore_run(run_dir, config, agent, obs_dim, action_dim)
    return config, agent, state, int(meta.get("env_step", -1))


def evaluate_run(run_dir: Path, episodes: int = 10, seed: int = 0, video: Path | None = None,
                 video_mode: str = "best_of_n", overwrite: bool = False) -> dict[str, Any]:
    """Evaluate the newest checkpoint of a run in both modes. With `video` (.mp4 or .gif), the first episode of
    the `video_mode` evaluation is also rendered there (simpo.video); its return is `video_return`. An existing
    `video` file is refused unless `overwrite`."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if video_mode not in EVAL_MODES:
        raise ValueError(f"video mode must be one of {', '.join(EVAL_MODES)}, got {video_mode!r}")
    if video is not None:
        from simpo.video import check_video_path, prepare_rendering

        check_video_path(video, overwrite)  # before the run is loaded
        prepare_rendering(read_run_config(run_dir).env)
    config, agent, state, env_step = load_run(run_dir)
    with jax.default_matmul_precision(config.matmul_precision):  # as the run was trained and evaluated
        return _evaluate_run(config, agent, state, env_step, episodes, seed, video, video_mode, overwrite)


def _evaluate_run(config, agent, state, env_step: int, episodes: int, seed: int, video, video_mode: str,
                  overwrite: bool) -> dict:
    if video is not None:
        from simpo.video import RENDER_SIZE, VideoRecorder
    envs = eval_envs(config, episodes, RENDER_SIZE if video is not None else None)
    act = jax.jit(agent.act, static_argnums=3)
    key = jax.random.PRNGKey(seed)
    result: dict[str, Any] = {"env_step": env_step}
    with contextlib.ExitStack() as cleanup:
        for env in envs:
            cleanup.callback(env.close)
        # on any exception, or SIGTERM: no partial video left behind
        recorder = video and cleanup.enter_context(
            VideoRecorder(video, envs[0].unwrapped.metadata.get("render_fps", 30), overwrite))
        for mode in EVAL_MODES:
            on_frame = recorder if mode == video_mode else None
            returns = evaluate(state, envs, jax.random.fold_in(key, EVAL_MODES.index(mode)), mode, act, seed, on_frame)
            suffix = "" if mode == "best_of_n" else "_single"
            result[f"eval_return{suffix}_mean"] = float(returns.mean())
            result[f"eval_return{suffix}_std"] = float(returns.std())
            if on_frame is not None:
                result.update(video=str(recorder.close()), video_frames=recorder.count, video_return=float(returns[0]))
    return result
