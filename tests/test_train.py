"""The online agents and the training loop, on tiny configs (CPU, seconds each)."""

import csv
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simpo.agents.base import Batch
from simpo.agents.sac import SACConfig
from simpo.agents.simpo_agent import SiMPO
from simpo.evaluation import load_run
from simpo.policies import PolicyConfig
from simpo.train import default_config, train

TINY_POLICY = PolicyConfig(kind="flow", steps=2, hidden_dims=(32, 32), time_dim=8, cond_dims=(16,))
KL_1 = dataclasses.replace(default_config("simpo").agent.temperature, kl_target=1.0)  # reachable with N = 4


def tiny(algo: str, env: str, run_dir: Path, **loop) -> "TrainConfig":  # noqa: F821
    config = default_config(algo, "fast", env)
    agent = dataclasses.replace(config.agent, policy=TINY_POLICY, num_candidates=4, critic_hidden_dims=(32, 32),
                                temperature=dataclasses.replace(config.agent.temperature, kl_target=1.0))  # < log 4
    sac = dataclasses.replace(config.sac, actor_hidden_dims=(32, 32), critic_hidden_dims=(32, 32))
    settings = dict(total_steps=300, warmup_steps=100, batch_size=32, eval_interval=150, eval_episodes=2,
                    max_episode_steps=50, checkpoint_interval=150, run_dir=run_dir, progress=False)
    settings.update(loop)
    return dataclasses.replace(config, agent=agent, sac=sac, **settings)


def read_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def random_batch(key, batch=16, obs_dim=5, action_dim=2) -> Batch:
    k = jax.random.split(key, 4)
    return Batch(jax.random.normal(k[0], (batch, obs_dim)), jax.random.uniform(k[1], (batch, action_dim), minval=-1),
                 jax.random.normal(k[2], (batch,)), jax.random.normal(k[3], (batch, obs_dim)), jnp.zeros(batch))


@pytest.mark.parametrize("weighting", ["exp", "wd1"])
@pytest.mark.parametrize("kind", ["flow", "diffusion"])
def test_update_is_a_pure_function(kind, weighting):
    config = dataclasses.replace(default_config("simpo").agent, weighting=weighting, num_candidates=4,
                                 temperature=KL_1,
                                 policy=dataclasses.replace(TINY_POLICY, kind=kind), old_policy_interval=2)
    agent = SiMPO(config, obs_dim=5, action_dim=2)
    state = agent.init(jax.random.PRNGKey(0))
    batch, key = random_batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2)
    update = jax.jit(agent.update)
    (s1, m1), (s2, m2) = update(state, batch, key), update(state, batch, key)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), (s1, m1), (s2, m2)))
    assert all(math.isfinite(float(v)) for v in m1.values())
    # π_old is a snapshot: unchanged after one update, refreshed after `old_policy_interval` updates
    assert jax.tree.all(jax.tree.map(jnp.array_equal, s1.old_actor_params, state.old_actor_params))
    s3, _ = update(s1, batch, key)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, s3.old_actor_params, s3.actor_params))


@pytest.mark.parametrize("env", ["HalfCheetah-v5", "dmc:cheetah-run"])
@pytest.mark.parametrize("algo", ["simpo", "dpmd", "qvpo", "sac"])
def test_every_algo_trains_without_nan(tmp_path, algo, env):
    result = train(tiny(algo, env, tmp_path / "run"))
    rows = read_rows(result.run_dir)
    assert [int(r["env_step"]) for r in rows] == [150, 300]
    for column in ("eval_return_mean", "eval_return_std", "eval_return_single_mean", "train_sps", "critic_loss"):
        assert math.isfinite(float(rows[-1][column])), column
    assert (result.run_dir / "config.json").is_file() and any((result.run_dir / "tb").iterdir())
    assert jax.tree.all(jax.tree.map(lambda x: bool(jnp.all(jnp.isfinite(x))), result.state))


def test_truncation_bootstraps_and_termination_does_not(tmp_path):
    # Pendulum never terminates: a 10-step time limit truncates, and bootstrapping must continue.
    buffer = train(tiny("sac", "Pendulum-v1", tmp_path / "p", total_steps=60, warmup_steps=60, max_episode_steps=10,
                        eval_interval=60, eval_episodes=1)).buffer
    assert float(buffer.terminated[:60].sum()) == 0.0
    ends = np.arange(9, 59, 10)  # the last step of each truncated episode
    obs, next_obs = np.asarray(buffer.obs), np.asarray(buffer.next_obs)
    assert not np.allclose(next_obs[ends], obs[ends + 1])  # the true final obs, not the reset obs
    np.testing.assert_array_equal(next_obs[:59][np.setdiff1d(np.arange(59), ends)],
                                  obs[1:60][np.setdiff1d(np.arange(59), ends)])
    # Hopper under random actions falls over: those transitions are terminated.
    buffer = train(tiny("sac", "Hopper-v5", tmp_path / "h", total_steps=200, warmup_steps=200, max_episode_steps=1000,
                        eval_interval=200, eval_episodes=1)).buffer
    assert float(buffer.terminated[:200].sum()) >= 1


def test_checkpoint_restores_identical_state_and_buffer(tmp_path):
    result = train(tiny("simpo", "HalfCheetah-v5", tmp_path / "run"))
    config, _, state, env_step = load_run(result.run_dir)
    assert env_step == 300 and config.algo == "simpo" and config.agent.policy == TINY_POLICY
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), state, result.state))


def test_run_directory_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="is not empty; pass --overwrite"):
        train(tiny("sac", "Pendulum-v1", run_dir))
    assert [p.name for p in run_dir.iterdir()] == ["keep.txt"]


def test_simpo_improves_on_a_contextual_bandit(tmp_path):
    """Random actions average about 0.815 (max 1.0); SiMPO's own single-sample return must climb well above."""
    config = tiny("simpo", "simpo:contextual-bandit", tmp_path / "cb", total_steps=1500, warmup_steps=200,
                  batch_size=64, eval_interval=1500, eval_episodes=30)
    agent = dataclasses.replace(config.agent, num_candidates=8, actor_lr=1e-3, old_policy_interval=100,
                                policy=dataclasses.replace(TINY_POLICY, hidden_dims=(64, 64)),
                                temperature=dataclasses.replace(config.agent.temperature, lr=3e-3))
    rows = read_rows(train(dataclasses.replace(config, agent=agent)).run_dir)
    assert float(rows[-1]["eval_return_single_mean"]) > 0.95


def test_cli_train_eval_plot(tmp_path):
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "simpo.cli"]
    tiny_flags = ["--env", "Pendulum-v1", "--total-steps", "120", "--warmup-steps", "60", "--batch-size", "16",
                  "--eval-interval", "60", "--eval-episodes", "1", "--max-episode-steps", "30", "--run-dir", str(run),
                  "--no-progress", "--weighting", "square", "--agent.num-candidates", "4",
                  "--agent.temperature.kl-target", "1",
                  "--agent.policy.steps", "2", "--agent.policy.hidden-dims", "32", "32", "--agent.critic-hidden-dims", "32", "32"]
    done = subprocess.run(cli + ["train", *tiny_flags], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert '"weighting": "square"' in (run / "config.json").read_text()
    done = subprocess.run(cli + ["eval", "--run-dir", str(run), "--episodes", "1"], capture_output=True, text=True)
    assert done.returncode == 0 and '"eval_return_single_mean"' in done.stdout, done.stderr
    done = subprocess.run(cli + ["plot", str(run), "--out", str(tmp_path / "c.png")], capture_output=True, text=True)
    assert done.returncode == 0 and (tmp_path / "c.png").stat().st_size > 5000, done.stderr
    again = subprocess.run(cli + ["train", *tiny_flags], capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("warmup, batch, updates", [(20, 32, 60 - 31), (40, 16, 60 - 40)])
def test_first_update_waits_for_the_warmup_and_a_full_batch(tmp_path, warmup, batch, updates):
    config = tiny("sac", "Pendulum-v1", tmp_path / "run", total_steps=60, warmup_steps=warmup, batch_size=batch,
                  eval_interval=60, eval_episodes=1, checkpoint_interval=60)
    assert config.first_update_step == 60 - updates
    assert int(train(config).state.step) == updates  # one update per env step from first_update_step on


def test_cli_warns_when_no_update_will_run(tmp_path, capsys):
    from simpo.cli import main

    flags = ["--algo", "sac", "--env", "Pendulum-v1", "--total-steps", "40", "--batch-size", "16", "--eval-interval",
             "40", "--eval-episodes", "1", "--no-progress", "--sac.actor-hidden-dims", "32",
             "--sac.critic-hidden-dims", "32"]
    assert main(["train", *flags, "--warmup-steps", "40", "--run-dir", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "simpo train: warning: no update ran" in err and "total_steps=40" in err
    assert (tmp_path / "a" / "metrics.csv").is_file()  # a warning, not an error: the run is still written
    assert main(["train", *flags, "--warmup-steps", "39", "--run-dir", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_sac_config_is_selected_for_sac():
    assert isinstance(default_config("sac").sac, SACConfig)
    assert default_config("dpmd", "paper", "Hopper-v5").agent.temperature.kl_target == 3.0
    assert default_config("simpo", "paper", "Ant-v5").agent.temperature.kl_target == 1.5
    qvpo = default_config("qvpo", "paper").agent
    assert qvpo.weighting == "best_advantage" and qvpo.uniform_actions > 0


class _CorruptReward:
    """Wraps an env so that its reward becomes `value` from env step `after` on."""

    def __init__(self, make_env, value, after):
        self.make_env, self.value, self.after = make_env, value, after

    def __call__(self, *args, **kwargs):
        import gymnasium as gym

        value, after = self.value, self.after

        class Corrupt(gym.Wrapper):
            steps = 0

            def step(self, action):
                obs, reward, terminated, truncated, info = self.env.step(action)
                Corrupt.steps += 1
                return obs, (value if Corrupt.steps > after else reward), terminated, truncated, info

        return Corrupt(self.make_env(*args, **kwargs))


@pytest.mark.parametrize("value,message", [(float("nan"), "non-finite reward at env step 201"),
                                           (3e38, "non-finite critic_loss")])
def test_nan_guard_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, value, message):
    import simpo.train as train_module
    from simpo.checkpoint import Checkpointer

    monkeypatch.setattr(train_module, "make_env", _CorruptReward(train_module.make_env, value, after=200))
    config = tiny("simpo", "Pendulum-v1", tmp_path / "run", total_steps=400, checkpoint_interval=100, log_interval=50)
    with pytest.raises(train_module.NonFiniteError, match=message) as err:
        train(config)
    assert "Last good checkpoint: step 200" in str(err.value)
    assert Checkpointer(tmp_path / "run").all_steps()[-1] == 200


def test_weighting_by_import_path_is_the_users_g_in_training(tmp_path, monkeypatch):
    """`--weighting MODULE:FUNCTION`: a g from a file in the current directory drives Stage 1 and stays text in
    config.json. g(x) = max(x, 0) is `linear` with ν solved numerically instead of in closed form: the same update."""
    (tmp_path / "user_gs_train.py").write_text("import jax.numpy as jnp\n\n\ndef relu(x):\n    return jnp.maximum(x, 0.0)"
                                              "\n\n\ndef leaky(x):\n    return jnp.maximum(x, 0.1 * x)\n")
    monkeypatch.chdir(tmp_path)
    batch, key = random_batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2)
    out = {}
    for weighting in ("linear", "user_gs_train:relu"):
        config = dataclasses.replace(default_config("simpo").agent, weighting=weighting, num_candidates=4,
                                     temperature=KL_1, policy=TINY_POLICY)
        agent = SiMPO(config, obs_dim=5, action_dim=2)
        out[weighting] = jax.jit(agent.update)(agent.init(jax.random.PRNGKey(0)), batch, key)
    (s1, m1), (s2, m2) = out.values()
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.allclose(a, b, atol=1e-5)), s1.actor_params,
                                     s2.actor_params))
    assert abs(float(m1["actor_loss"]) - float(m2["actor_loss"])) < 1e-4 * (1 + abs(float(m1["actor_loss"])))
    run = tiny("simpo", "Pendulum-v1", tmp_path / "run")
    result = train(dataclasses.replace(run, agent=dataclasses.replace(run.agent, weighting="user_gs_train:leaky")))
    assert json.loads((result.run_dir / "config.json").read_text())["agent"]["weighting"] == "user_gs_train:leaky"
    rows = read_rows(result.run_dir)
    assert float(rows[-1]["weights/negative_fraction"]) > 0  # a signed measure: leaky g < 0 below ν
    assert math.isfinite(float(rows[-1]["actor_loss"]))
    # its KL(w̃ ‖ uniform) stops at 1.29 as λ -> 0 with 4 candidates (1.71 with 8): above that, a kl target is refused
    with pytest.raises(ValueError, match=r"kl_target 2 is out of reach for weighting user_gs_train:leaky: .* 1\.71"):
        dataclasses.replace(run.agent, weighting="user_gs_train:leaky", num_candidates=8,
                            temperature=default_config("simpo").agent.temperature)


def test_the_run_is_traced_at_its_matmul_precision(tmp_path, monkeypatch):
    """`train` jits under `config.matmul_precision` (float32: HIGHEST in the lowered dots; tensorfloat32: HIGH),
    and on a CPU the two train bit-identical runs (the TrainConfig docstring's claim)."""
    import simpo.train as train_module

    seen = []
    real = train_module.make_agent

    def spy(config, obs_dim, action_dim):  # lower one dot where train builds its agent, inside the context
        x = jnp.ones((2, 2))
        seen.append("HIGHEST" in jax.jit(lambda a: a @ a).lower(x).as_text())
        return real(config, obs_dim, action_dim)

    monkeypatch.setattr(train_module, "make_agent", spy)
    runs = {p: train(dataclasses.replace(tiny("simpo", "Pendulum-v1", tmp_path / p), matmul_precision=p))
            for p in ("float32", "tensorfloat32")}
    assert seen == [True, False]
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), runs["float32"].state,
                                     runs["tensorfloat32"].state))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("wall_time_s", "train_sps")} for r in rows]  # noqa: E731
    assert strip(read_rows(tmp_path / "float32")) == strip(read_rows(tmp_path / "tensorfloat32"))
    assert json.loads((tmp_path / "float32" / "config.json").read_text())["matmul_precision"] == "float32"
