"""The bad-input catalogue (issue 7): every bad input ends with ONE line on stderr naming what is wrong and
what is allowed, exit code 2, no traceback, and nothing written or overwritten.

`test_cli_bad_input` runs each CLI case as `python -m simpo.cli ...` in a fresh directory and compares a
snapshot (paths, sizes, mtimes) of that directory and of any run directory the case points at, before and
after. `test_api_bad_input` checks the one-line ValueErrors of the Python API, and
`test_full_disk_while_checkpointing` a simulated ENOSPC during a checkpoint save.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _has_wandb() -> bool:
    import importlib.util

    return importlib.util.find_spec("wandb") is not None


def tiny_config(run_dir: Path, **loop):
    """A Pendulum run of seconds: tiny networks, N = 2 candidates, K = 1 step."""
    from simpo.train import default_config

    config = default_config("simpo", "fast", "Pendulum-v1")
    policy = dataclasses.replace(config.agent.policy, steps=1, hidden_dims=(16,))
    agent = dataclasses.replace(config.agent, policy=policy, num_candidates=2, critic_hidden_dims=(16,),
                                temperature=dataclasses.replace(config.agent.temperature, kl_target=0.5))  # < log 2
    settings = dict(total_steps=60, warmup_steps=30, batch_size=16, eval_interval=60, eval_episodes=1,
                    max_episode_steps=20, run_dir=run_dir, progress=False)
    settings.update(loop)
    return dataclasses.replace(config, agent=agent, **settings)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny real run (4 warm-up steps: an untrained agent, one checkpoint), and broken copies of it: truncated checkpoints, corrupted or foreign config.json,
    no checkpoints/."""
    from simpo.train import train

    base = tmp_path_factory.mktemp("runs")
    config = tiny_config(base / "run", total_steps=4, warmup_steps=4, eval_interval=4, max_episode_steps=5)
    good = train(config).run_dir
    dirs = {"run": good}
    for name in ("bad_ckpt", "bad_json", "json_list", "no_ckpt"):
        dirs[name] = base / name
        shutil.copytree(good, dirs[name])
    for state in (dirs["bad_ckpt"] / "checkpoints").glob("*/state"):
        for f in state.rglob("*"):
            if f.is_file():
                f.write_bytes(b"")
    (dirs["bad_json"] / "config.json").write_text('{"env": "Pendulum-v1", "algo": ')
    (dirs["json_list"] / "config.json").write_text("[1, 2, 3]\n")
    shutil.rmtree(dirs["no_ckpt"] / "checkpoints")
    return dirs


# ----------------------------------------------------------------------------------------------- CLI table


class Case(NamedTuple):
    id: str
    argv: list[str]  # "{run}", "{bad_ckpt}", ...: the dirs of the `runs` fixture
    expect: str  # a substring of the one stderr line
    setup: Callable[[Path], None] | None = None  # prepares the case's fresh working directory
    skip: str | None = None


SAFE_TRAIN = {"--env": "Pendulum-v1", "--total-steps": "20", "--warmup-steps": "20", "--batch-size": "16",
              "--buffer-size": "1000", "--eval-episodes": "1", "--max-episode-steps": "5"}


def train_args(*flags: str) -> list[str]:
    """`train` with `flags`, plus tiny defaults for the flags not given (so a missed check costs seconds)."""
    extra = [x for k, v in SAFE_TRAIN.items() if k not in flags for x in (k, v)]
    return ["train", *flags, *extra, "--no-progress"]


BANDIT_TINY = ["--schemes", "exp", "--seeds", "0", "--epochs", "1"]


def _file(cwd: Path) -> None:
    (cwd / "somefile.txt").write_text("not a directory\n")


def _read_only(cwd: Path) -> None:
    (cwd / "ro").mkdir()
    (cwd / "ro").chmod(0o500)


def _empty(cwd: Path) -> None:
    (cwd / "empty").mkdir()


def _video(cwd: Path) -> None:
    (cwd / "old.gif").write_bytes(b"last week's video")


def _notes(cwd: Path) -> None:
    (cwd / "notes").mkdir()
    (cwd / "notes" / "thesis.txt").write_text("months of work\n")


ROOT_SKIP = "root ignores directory permissions (the somefile.txt/... cases cover root)" if IS_ROOT else None
NO_TRACK_SKIP = "wandb is installed" if _has_wandb() else None

CASES = [
    # unknown names
    Case("unknown-subcommand", ["frobnicate"], "unknown command 'frobnicate'; allowed: train, eval, plot, bandit"),
    Case("unknown-env", train_args("--env", "HalfCheeta-v5"), "did you mean: HalfCheetah-v5"),
    Case("unknown-algo", train_args("--algo", "foo"), "unknown algo 'foo'; allowed: simpo, dpmd, qvpo, sac"),
    Case("unknown-preset", train_args("--preset", "foo"), "unknown preset 'foo'; allowed: paper, fast"),
    Case("unknown-weighting", train_args("--weighting", "foo"), "unknown weighting 'foo'; allowed: exp, linear"),
    Case("weighting-module-missing", train_args("--weighting", "no_such_module_here:g"),
         "weighting 'no_such_module_here:g': cannot import no_such_module_here"),
    Case("unknown-reward-transform", train_args("--reward-transform", "foo"),
         "unknown reward transform 'foo'; allowed: none, flat"),
    Case("unknown-landscape", ["bandit", "--landscape", "foo"], "unknown landscape 'foo'; allowed: broad, sharp"),
    Case("unknown-bandit-scheme", ["bandit", "--schemes", "foo", "exp"], "unknown scheme 'foo' in 'foo'; allowed: exp"),
    Case("unknown-flag", train_args("--bogus", "1"), "bogus"),
    # out-of-range numbers
    Case("temperature-not-positive", train_args("--agent.temperature.init", "0"), "init must be finite and > 0, got 0"),
    Case("N-below-1", train_args("--agent.num-candidates", "0"), "num_candidates must be an int in [1, 65536], got 0"),
    Case("kl-target-unreachable", train_args("--agent.num-candidates", "4"),
         "temperature kl_target 2 is unreachable with 4 candidates: KL(weights || uniform) <= log N = 1.386"),
    Case("kl-target-in-the-clip-gap",
         train_args("--agent.num-candidates", "4096", "--agent.temperature.kl-target", "8.3"),
         "kl_target 8.3 is unreachable with 4096 candidates: KL(weights || uniform) <= log N = 8.318, and as the "
         "tuner measures it (weights clipped at 1e-6) at most 8.2573"),
    Case("ess-target-at-one-hot", train_args("--agent.temperature.target", "ess", "--agent.temperature.ess-target",
                                             "0.125"),  # fast: N = 8, exp
         "ess_target 0.125 is unreachable with 8 candidates and weighting exp: the ESS fraction 1/(N sum w^2) runs "
         "from 0.125"),
    Case("ess-target-1", train_args("--weighting", "wd1", "--agent.temperature.target", "ess",
                                    "--agent.temperature.ess-target", "1"),
         "choose an ess_target in (0.025, 1)"),
    Case("auto-one-candidate", train_args("--weighting", "auto_exp", "--agent.num-candidates", "1",
                                          "--agent.temperature.target", "fixed"),
         "weighting auto_exp needs num_candidates >= 2: its rule reads the skew of each state's candidate Q-values"),
    Case("K-below-1", train_args("--agent.policy.steps", "0"), "steps must be an int >= 1, got 0"),
    Case("slice-rows-negative", train_args("--agent.matching-slice-rows", "-1"),
         "matching_slice_rows must be an int >= 0 (0: no slicing), got -1"),
    Case("batch-over-buffer", train_args("--batch-size", "512", "--buffer-size", "100"),
         "batch_size (512) must be <= buffer_size (100)"),
    Case("episode-limit-0", train_args("--max-episode-steps", "0"), "max_episode_steps must be >= 1 (or unset"),
    Case("negative-steps", train_args("--total-steps", "-5"), "total_steps must be >= 0, got -5"),
    Case("power-p-not-positive", train_args("--weighting", "power", "--agent.power-p", "0"), "p=0.0 must be >= 0.5"),
    Case("signed-linear-floor-positive", train_args("--weighting", "signed_linear", "--agent.floor", "0.5"),
         "floor=0.5 must be <= 0"),
    Case("signed-linear-unfloored-kl", train_args("--weighting", "signed_linear"),
         "kl_target 2 is out of reach for weighting signed_linear: as λ -> 0 its weights never become one-hot"),
    Case("bandit-negative-seed", ["bandit", *BANDIT_TINY, "--seeds", "-2"],
         "seed must be an int or a non-empty sequence of ints, each in [0, 2**32), got [-2]"),
    Case("advise-one-candidate", ["advise", "--env", "Pendulum-v1", "--candidates", "1"],
         "--candidates must be an int in [2, 65536], got 1"),
    Case("eval-episodes-0", ["eval", "--run-dir", "{run}", "--episodes", "0"], "episodes must be >= 1, got 0"),
    # malformed flags (argparse-level: one line too, not argparse's usage block)
    Case("flag-without-value", ["train", "--env"], "argument --env: expected one argument (see simpo train --help)"),
    Case("resume-without-dir", ["train", "--resume"], "argument --resume: expected one argument"),
    Case("eval-episodes-not-an-int", ["eval", "--run-dir", "empty", "--episodes", "x"],
         "argument --episodes: invalid int value: 'x' (see simpo eval --help)"),
    Case("plot-without-run-dirs", ["plot"], "the following arguments are required: run_dirs"),
    Case("study-seeds-without-values", ["study", "bandits", "--seeds"], "argument --seeds: expected at least one"),
    Case("advise-without-env", ["advise"], "one of the arguments --env --landscape is required"),
    # envs
    Case("discrete-action-env", train_args("--env", "CartPole-v1"),
         "env CartPole-v1 has a Discrete action space; simpo needs a continuous Box"),
    Case("old-gymnasium-version", train_args("--env", "HalfCheetah-v2"),
         "env HalfCheetah-v2 cannot be made here (The mujoco v2 and v3 based environments have been moved"),
    # eval on broken run directories
    Case("eval-missing-dir", ["eval", "--run-dir", "nope"], "run directory nope does not exist"),
    Case("eval-no-config", ["eval", "--run-dir", "empty"], "empty is not a simpo run directory (no config.json)",
         setup=_empty),
    Case("eval-corrupted-checkpoints", ["eval", "--run-dir", "{bad_ckpt}", "--episodes", "1"],
         "no readable checkpoint in"),
    Case("eval-corrupted-config-json", ["eval", "--run-dir", "{bad_json}"], "has a corrupted config.json"),
    Case("eval-config-json-not-object", ["eval", "--run-dir", "{json_list}"],
         "has a corrupted config.json (not a JSON object)"),
    Case("eval-no-checkpoints", ["eval", "--run-dir", "{no_ckpt}"], "has no checkpoints/"),
    # where output goes
    Case("run-dir-not-empty", train_args("--run-dir", "{run}"), "is not empty; pass --overwrite"),
    Case("run-dir-is-a-file", train_args("--run-dir", "somefile.txt"), "exists and is not a directory",
         setup=_file),
    Case("overwrite-the-working-directory", train_args("--run-dir", ".", "--overwrite"),
         "--overwrite would delete ., which holds the current directory", setup=_file),
    Case("overwrite-a-folder-that-is-no-run", train_args("--run-dir", "notes", "--overwrite"),
         "run directory notes is not empty and holds no simpo run (no config.json)", setup=_notes),
    Case("plot-out-over-a-run-file", ["plot", "{run}", "--out", "{run}/metrics.csv"],
         "metrics.csv exists and is not a .png; the plot would replace it"),
    Case("run-dir-parent-is-a-file", train_args("--run-dir", "somefile.txt/run"),
         "cannot create run directory somefile.txt/run", setup=_file),
    Case("run-dir-read-only", train_args("--run-dir", "ro/run"), "is not writable", setup=_read_only,
         skip=ROOT_SKIP),
    Case("track-without-wandb", train_args("--track"), "--track needs Weights & Biases", skip=NO_TRACK_SKIP),
    Case("plot-missing-run", ["plot", "nope", "--out", "c.png"], "nope is not a directory"),
    Case("plot-out-parent-is-a-file", ["plot", "{run}", "--out", "somefile.txt/c.png"],
         "cannot write somefile.txt/c.png", setup=_file),
    Case("plot-out-read-only", ["plot", "{run}", "--out", "ro/c.png"], "is not writable", setup=_read_only,
         skip=ROOT_SKIP),
    Case("plot-out-is-a-directory", ["plot", "{run}", "--out", "{run}"], "is a directory; give a file name"),
    Case("bandit-run-dir-not-empty", ["bandit", "--run-dir", "{run}", *BANDIT_TINY],
         "is not empty; pass --overwrite"),
    Case("bandit-run-dir-is-a-file", ["bandit", "--run-dir", "somefile.txt", *BANDIT_TINY],
         "exists and is not a directory", setup=_file),
    Case("advise-run-dir-not-empty", ["advise", "--env", "Pendulum-v1", "--run-dir", "{run}"],
         "is not empty; advise never overwrites: choose another --run-dir"),
    Case("eval-negative-seed", ["eval", "--run-dir", "{run}", "--seed", "-1"],
         "argument --seed: seed must be in [0, 2**32), got -1"),
    Case("study-reps-0", ["study", "bandits", "--out", "st", "--reps", "0"], "reps must be an int >= 1, got 0"),
    Case("seed-beyond-32-bits", train_args("--seed", "4294967296"), "seed must be an integer in [0, 2**32), got 4294967296"),
    Case("bandit-repeated-seed", ["bandit", "--schemes", "exp", "--seeds", "0", "0", "--epochs", "1"],
         "seeds must be distinct, got [0, 0]"),
    Case("N-beyond-the-cap", train_args("--agent.num-candidates", "99999999999999"),
         "num_candidates must be an int in [1, 65536], got 99999999999999"),
    Case("advise-N-beyond-the-cap", ["advise", "--landscape", "sharp", "--candidates", "99999999999999"],
         "--candidates must be an int in [2, 65536], got 99999999999999"),
    Case("advise-bad-bandit-parameter", ["advise", "--landscape", "sharp", "--jitter", "-1"],
         "jitter >= 0 and probe_epochs >= 0, got 16, -1.0, 50"),
    Case("advise-playground-env", ["advise", "--env", "playground:CheetahRun"],
         "playground:CheetahRun is a playground env, which it does not support"),
    Case("eval-video-bad-suffix", ["eval", "--run-dir", "{run}", "--video", "v.avi"], "ending in .mp4 or .gif"),
    Case("eval-video-missing-folder", ["eval", "--run-dir", "{run}", "--video", "nope/v.gif"], "does not exist"),
    Case("eval-video-exists", ["eval", "--run-dir", "{run}", "--video", "old.gif"],
         "--video old.gif exists; pass --overwrite to replace it", setup=_video),
    Case("eval-overwrite-without-video", ["eval", "--run-dir", "{run}", "--overwrite"], "it needs --video"),
    Case("eval-video-on-a-directory", ["eval", "--run-dir", "{run}", "--video", "empty"],
         "ending in .mp4 or .gif", setup=_empty),
    # flags that the chosen algo / env / seeds would ignore
    Case("bandit-p-without-power", ["bandit", "--schemes", "exp", "linear", "--p", "3", "--seeds", "0", "--epochs", "1"],
         "--p would be ignored: it sets power's p and no scheme in exp linear takes it"),
    Case("sac-with-agent-flag", train_args("--algo", "sac", "--agent.actor-lr", "1e-3"),
         "--agent.actor-lr would be ignored: --algo sac does not use the SiMPO/DPMD/QVPO options"),
    Case("sac-with-weighting", train_args("--algo", "sac", "--weighting", "square"), "--weighting would be ignored"),
    Case("simpo-with-sac-flag", train_args("--sac.actor-lr", "1e-3"),
         "--sac.actor-lr would be ignored: --algo simpo does not use SAC's options"),
    # the other algorithm's flag is named before its value is checked (N = 4 cannot reach SiMPO's KL target 2)
    Case("sac-with-invalid-agent-flag", train_args("--algo", "sac", "--agent.num-candidates", "4"),
         "--agent.num-candidates would be ignored: --algo sac does not use"),
    Case("simpo-with-invalid-sac-flag", train_args("--sac.actor-lr", "-1"), "--sac.actor-lr would be ignored"),
    Case("ondevice-flag-on-host-env", train_args("--ondevice.num-envs", "4"),
         "--ondevice.num-envs would be ignored: --ondevice.* applies to playground:NAME envs only"),
    Case("seed-beside-seeds", train_args("--seeds", "1", "2", "--seed", "5"),
         "--seed would be ignored: --seeds overrides --seed"),
    Case("seed-batching-with-one-seed", train_args("--seed-batching", "vmap"), "--seed-batching would be ignored"),
    Case("power-p-under-exp", train_args("--agent.power-p", "3"),
         "--agent.power-p would be ignored: weighting exp does not take it"),
    Case("ess-target-under-kl", train_args("--agent.temperature.ess-target", "0.5"),
         "--agent.temperature.ess-target would be ignored: the temperature target is kl"),
    Case("wandb-project-without-track", train_args("--wandb-project", "x"),
         "--wandb-project would be ignored: --wandb-project applies with --track only"),
]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of everything under `root`, `root` itself included."""
    entries = {".": (0, root.stat().st_mtime_ns)}
    for path in root.rglob("*"):
        st = path.lstat()
        entries[str(path.relative_to(root))] = (st.st_size if path.is_file() else 0, st.st_mtime_ns)
    return entries


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_bad_input(case: Case, request, tmp_path):
    if case.skip:
        pytest.skip(case.skip)
    runs = request.getfixturevalue("runs") if any("{" in a for a in case.argv) else {}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    if case.setup:
        case.setup(cwd)
    argv = [a.format(**{k: str(v) for k, v in runs.items()}) for a in case.argv]
    watched = {cwd} | {d for name, d in runs.items() if "{" + name + "}" in case.argv}
    before = {d: snapshot(d) for d in watched}
    try:
        done = subprocess.run([sys.executable, "-m", "simpo.cli", *argv], cwd=cwd, capture_output=True,
                              text=True, timeout=300)
    finally:
        if (cwd / "ro").exists():
            (cwd / "ro").chmod(0o700)  # let pytest clean up
    lines = done.stderr.splitlines()
    assert done.returncode == 2, f"exit {done.returncode}; stderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].strip(), f"want one stderr line, got:\n{done.stderr}"
    assert lines[0].startswith("simpo"), lines[0]
    assert case.expect in lines[0], f"{case.expect!r} not in {lines[0]!r}"
    for d in watched:  # (chmod changes ctime only, not the sizes and mtimes compared)
        assert snapshot(d) == before[d], f"{d} changed"


# ----------------------------------------------------------------------------------------------- API table


def _compute_weights(scheme, temperature=1.0, **params):
    import jax.numpy as jnp

    from simpo.weighting import compute_weights

    return lambda: compute_weights(jnp.asarray([[0.0, 1.0, 2.0, 3.0]]), scheme, temperature, **params)


def _bandit(**kwargs):
    import jax.numpy as jnp

    from simpo import bandit

    return lambda: bandit.run(lambda a: -jnp.sum(a**2, axis=-1), 2, epochs=1, seed=0, **kwargs)


def _make(factory: str, **kwargs):
    def build():
        if factory == "SiMPOConfig":
            from simpo.agents.simpo_agent import SiMPOConfig as cls
        elif factory == "PolicyConfig":
            from simpo.policies import PolicyConfig as cls
        elif factory == "TemperatureConfig":
            from simpo.temperature import TemperatureConfig as cls
        elif factory == "TrainConfig":
            from simpo.train import TrainConfig as cls
        else:
            from simpo.envs import make_env as cls
        return cls(**kwargs)

    return build


API_CASES = [
    ("compute_weights-g-decreasing", _compute_weights(lambda x: -x), "must be increasing"),
    ("compute_weights-unknown-scheme", _compute_weights("foo"), "allowed"),
    ("compute_weights-temperature-0", _compute_weights("exp", 0.0), "temperature must be finite and > 0"),
    ("compute_weights-power-p-0", _compute_weights("power", p=0.0), "p=0.0 must be >= 0.5"),
    ("bandit.run-g-decreasing", _bandit(weighting=lambda x: -x), "must be increasing"),
    ("bandit.run-unknown-scheme", _bandit(weighting="foo"), "unknown weighting scheme 'foo'; allowed: exp"),
    ("bandit.run-floor-positive", _bandit(weighting="signed_linear", floor=0.5), "floor=0.5 must be <= 0"),
    ("SiMPOConfig-N-0", _make("SiMPOConfig", num_candidates=0), "num_candidates must be an int in [1, 65536]"),
    ("SiMPOConfig-unknown-weighting", _make("SiMPOConfig", weighting="foo"), "allowed: exp, linear"),
    ("SiMPOConfig-auto-one-candidate-ess", lambda: _make("SiMPOConfig", weighting="auto_exp", num_candidates=1,
                                                          temperature=_make("TemperatureConfig", target="ess")())(),
     "weighting auto_exp needs num_candidates >= 2"),
    ("SiMPOConfig-ess-target-unreachable", lambda: _make("SiMPOConfig", num_candidates=8, temperature=_make(
        "TemperatureConfig", target="ess", ess_target=0.1)())(), "choose an ess_target in (0.125, 1)"),
    ("PolicyConfig-K-0", _make("PolicyConfig", steps=0), "steps must be an int >= 1"),
    ("SiMPOConfig-actor-lr-inf", _make("SiMPOConfig", actor_lr=float("inf")), "actor_lr must be finite and > 0"),
    ("SiMPOConfig-candidate-noise-nan", _make("SiMPOConfig", candidate_noise=float("nan")),
     "candidate_noise, uniform_actions and uniform_weight must be finite and >= 0"),
    ("SiMPOConfig-critic-dims-negative", _make("SiMPOConfig", critic_hidden_dims=(-5,)),
     "critic_hidden_dims must be a non-empty tuple of positive ints"),
    ("compute_weights-negative-mass-inf", _compute_weights("wd1", negative_mass=float("inf")), "must be >= 0 and finite"),
    ("TemperatureConfig-init-0", _make("TemperatureConfig", init=0.0), "must be finite and > 0"),
    ("TrainConfig-batch-over-buffer", _make("TrainConfig", batch_size=512, buffer_size=100),
     "batch_size (512) must be <= buffer_size (100)"),
    ("TrainConfig-negative-steps", _make("TrainConfig", total_steps=-5), "total_steps must be >= 0"),
    ("make_env-discrete", _make("make_env", env_id="CartPole-v1", seed=0), "simpo needs a continuous Box"),
    ("make_env-unknown", _make("make_env", env_id="Pendulm-v1", seed=0), "did you mean: Pendulum-v1"),
]


@pytest.mark.parametrize("call, expect", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_bad_input(call, expect):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert expect in message, message
    assert "\n" not in message.strip(), message


# ----------------------------------------------------------------------------------------------- full disk


def test_full_disk_while_checkpointing(tmp_path, monkeypatch, capsys):
    """A checkpoint save that hits ENOSPC stops `train` with one CheckpointError line, which the CLI prints
    as one line with exit code 2."""
    import orbax.checkpoint as ocp

    import simpo.train
    from simpo.checkpoint import CheckpointError
    from simpo.cli import main

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ocp.CheckpointManager, "save", no_space)
    run_dir = tmp_path / "run"
    config = tiny_config(run_dir, total_steps=2, warmup_steps=2, batch_size=2, buffer_size=10, eval_interval=2,
                         max_episode_steps=3)
    with pytest.raises(CheckpointError) as info:
        simpo.train.train(config)
    message = str(info.value)
    assert "\n" not in message and "saving step 2" in message and "No space left on device" in message, message
    assert not any(p.name.startswith("2") for p in (run_dir / "checkpoints").iterdir())  # nothing half-written

    def train_hits_full_disk(config):
        raise info.value

    monkeypatch.setattr(simpo.train, "train", train_hits_full_disk)
    capsys.readouterr()
    assert main(["train", "--env", "Pendulum-v1", "--total-steps", "2", "--run-dir", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("simpo train: error: saving step 2"), err
    assert "No space left on device" in err and "Traceback" not in err
