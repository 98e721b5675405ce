"""The weighting advisor (simpo.advisor): scale-free landscape statistics, the documented flat/steep rule,
`simpo advise` end to end, `--weighting auto` logging its choice and checkpointing its EMA, and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from simpo.advisor import (ADVICE_MENU, AUTO_MENUS, STEEP_SKEW, advise_bandit, choose_scheme, kl_target_for,
                           landscape_stats, recommend)
from simpo.cli import parse_config
from simpo.train import TrainConfig


def _simpo(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simpo.cli", *args], capture_output=True, text=True, cwd=cwd)


def _flat(rng, b=32, n=64):
    """A plateau: many candidates clipped at the same top value, a long lower tail."""
    return np.minimum(rng.normal(size=(b, n)), 0.3)


def _steep(rng, b=32, n=64):
    """One candidate per state far above the rest."""
    q = rng.normal(size=(b, n))
    q[:, 0] += 8.0
    return q


@pytest.mark.parametrize("scale, shift", [(1e-3, 0.0), (7.0, -50.0), (1e4, 1e3)])
def test_stats_are_scale_and_shift_invariant(scale, shift):
    q = np.random.default_rng(0).gamma(2.0, size=(16, 32))
    base, moved = landscape_stats(q), landscape_stats(scale * q + shift)
    for k in base:
        np.testing.assert_allclose(float(moved[k]), float(base[k]), rtol=1e-3, atol=1e-3, err_msg=k)


def test_flat_gives_the_menus_flat_scheme_and_steep_gives_linear():
    rng = np.random.default_rng(1)
    flat, steep = landscape_stats(_flat(rng)), landscape_stats(_steep(rng))
    assert float(flat["skew"]) < STEEP_SKEW < float(steep["skew"])
    assert float(flat["near_max"]) > 0.3 > float(steep["near_max"])
    assert float(steep["top_gap"]) > 3 > float(flat["top_gap"])
    assert recommend(flat, menu="auto").scheme == "square" and recommend(steep, menu="auto").scheme == "linear"
    assert recommend(flat).scheme == "exp" and recommend(steep).scheme == "linear"  # the advice's menu: auto_exp
    with pytest.raises(ValueError, match="unknown menu"):
        recommend(flat, menu="paper")


def test_rule_is_pinned_and_same_under_jit():
    assert AUTO_MENUS == {"auto": ("square", "linear"), "auto_exp": ("exp", "linear")} and STEEP_SKEW == 0.0
    assert ADVICE_MENU == "auto_exp"
    assert int(choose_scheme(0.0)) == 0 and int(choose_scheme(1e-3)) == 1 and int(choose_scheme(-5.0)) == 0
    jitted = jax.jit(lambda q: choose_scheme(landscape_stats(q)["skew"]))
    rng = np.random.default_rng(2)
    for q in (_flat(rng), _steep(rng)):
        for menu, schemes in AUTO_MENUS.items():
            assert schemes[int(jitted(q))] == recommend(landscape_stats(q), menu=menu).scheme


def test_constant_q_is_flat_and_finite():
    stats = {k: float(v) for k, v in landscape_stats(np.full((4, 8), 3.0)).items()}
    assert stats == {"skew": 0.0, "kurtosis": 0.0, "top_gap": 0.0, "top_z": 0.0, "near_max": 1.0}
    assert recommend(stats, menu="auto").scheme == "square" and recommend(stats).scheme == "exp"


def test_recommendation_reasons_and_kl_target():
    assert kl_target_for(64) == pytest.approx(2.0) and kl_target_for(8) == pytest.approx(1.0)
    advice = recommend(landscape_stats(_steep(np.random.default_rng(3))), num_candidates=8, jitter=0.0)
    assert advice.kl_target == pytest.approx(1.0) and advice.signed_alternative is None
    assert any("skew" in r and "> 0" in r for r in advice.reasons)
    assert "--weighting linear" in advice.flags()
    flat = landscape_stats(_flat(np.random.default_rng(3)))
    assert recommend(flat, jitter=0.2).signed_alternative == "signed_linear:floor=-0.02"  # the bandits' N = 64
    advice = recommend(flat, num_candidates=8, jitter=0.2)
    assert advice.signed_alternative == "signed_linear:floor=-0.16"  # -1.28/N
    flags = advice.flags(advice.signed_alternative)
    assert flags == "--weighting signed_linear --agent.floor -0.16 --agent.temperature.kl-target 1"
    agent = parse_config(TrainConfig, flags.split() + ["--agent.power-p", "3"], "simpo train").agent  # real flags
    assert (agent.weighting, agent.floor, agent.temperature.kl_target, agent.power_p) == ("signed_linear", -0.16, 1, 3)


def test_a_scaled_kl_target_the_tuner_cannot_reach_is_refused():
    """kl_target_for scales the N = 64 reference by log N / log 64, but the tuner's KL tops out at the one-hot value,
    which falls behind log N (N = 4096: 8.257 vs 8.318): 4.15 at N = 64 (reachable there) scales to 8.3 at 4096,
    never met. The authors' targets (<= 3.0) stay reachable at every N up to the cap."""
    from simpo.temperature import kl_reachable, max_kl

    assert kl_reachable(4.15, 64)
    with pytest.raises(ValueError, match=r"KL target 8\.3 = 4\.15 x log\(4096\) / log\(64\) is unreachable with 4096 "
                                         r"candidates: .* at most 8\.2573"):
        kl_target_for(4096, 4.15)
    with pytest.raises(ValueError, match="is unreachable with 4096 candidates"):
        recommend(landscape_stats(_flat(np.random.default_rng(0))), num_candidates=4096, reference_kl=4.15)
    for n in (2, 8, 64, 4096, 2**16):
        assert kl_target_for(n, 3.0) < max_kl(n)


def test_advise_scales_the_authors_n64_target_for_the_env_not_the_presets(monkeypatch):
    """`advise` trains with the `fast` preset (N = 8), whose Hopper target is 2.0 (the authors' 2.5 is out of reach at
    N = 8); the advice's reference is the authors' N = 64 target for the env, 2.5, scaled to 2.5 x log 8 / log 64."""
    import simpo.advisor as advisor

    assert advisor.reference_kl_for("Hopper-v5") == 2.5 and advisor.reference_kl_for("Ant-v5") == 1.5
    assert advisor.reference_kl_for("Pendulum-v1") == 2.0  # no per-env target: the paper preset's
    seen = {}

    def spy(stats, num_candidates, jitter, reference_kl, menu):
        seen.update(num_candidates=num_candidates, reference_kl=reference_kl)
        return recommend(stats, num_candidates, jitter, reference_kl=reference_kl, menu=menu)

    monkeypatch.setattr(advisor, "recommend", spy)
    advice = advisor.advise("Hopper-v5", warmup_steps=16, train_steps=0, num_candidates=4, batch=8)
    assert seen == {"num_candidates": 8, "reference_kl": 2.5}
    assert advice.kl_target == pytest.approx(1.25)


def test_bandit_advice_and_bad_input():
    advice = advise_bandit("broad", groups=4, probe_epochs=0, menu="auto")
    assert advice.scheme in AUTO_MENUS["auto"] and np.isfinite(list(advice.stats.values())).all()
    assert advice.reasons[0] == "measured at the initial policy"
    with pytest.raises(ValueError, match="unknown landscape"):
        advise_bandit("nope")
    with pytest.raises(ValueError, match="probe_epochs >= 0"):
        advise_bandit("broad", probe_epochs=-1)
    with pytest.raises(ValueError, match="unknown menu 'paper'"):
        advise_bandit("broad", menu="paper")


def test_the_probe_sees_the_top_that_the_initial_policy_cannot():
    """`broad` is one wide hill: from the initial policy (on its rising tail) the candidates look steep (a few far
    above the rest); after early training they bunch under the wide top (flat), and the advice turns to exp."""
    start = advise_bandit("broad", groups=8, probe_epochs=0)
    probed = advise_bandit("broad", groups=8, probe_epochs=30)
    assert start.stats["skew"] > 0.5 and start.scheme == "linear"
    assert probed.stats["skew"] < -0.5 and probed.scheme == "exp"
    assert probed.reasons[0].startswith("measured after 30 epochs of exp")
    with pytest.raises(ValueError, match=r"shape \(B, N\)"):
        landscape_stats(np.zeros((3, 1)))


def test_cli_advise_end_to_end_and_bad_env(tmp_path, capsys, monkeypatch):
    from simpo.cli import main

    out = _simpo("advise", "--env", "Pendulum-v1", "--warmup-steps", "40", "--train-steps", "10",
                 "--candidates", "4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "recommendation:" in out.stdout and "because:" in out.stdout and "skew" in out.stdout
    assert "or online: simpo train --weighting auto_exp" in out.stdout  # the online option that passed its check
    out = _simpo("advise", "--landscape", "sharp", "--probe-epochs", "3", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["scheme"] in AUTO_MENUS[ADVICE_MENU] and json.loads(out.stdout)["online"] == "auto_exp"
    monkeypatch.chdir(tmp_path)
    for bad in (["--env", "NoSuchEnv-v0"], ["--env", "Pendulum-v1", "--reward-transform", "wobbly"],
                ["--landscape", "nope"], ["--landscape", "sharp", "--probe-epochs", "-1"]):
        code, err = main(["advise", *bad]), capsys.readouterr().err  # in-process: the same main() as the CLI's
        assert code == 2, (bad, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("simpo advise: error:"), err
    assert not list(tmp_path.iterdir())  # nothing written: the warm-up run went to a temporary directory


def test_train_weighting_auto_logs_choice_and_checkpoints_ema(tmp_path):
    from simpo.cli import main
    from simpo.evaluation import load_run

    run_dir = tmp_path / "auto"
    code = main(["train", "--env", "Pendulum-v1", "--weighting", "auto", "--total-steps", "120",
                 "--warmup-steps", "40", "--batch-size", "16", "--eval-interval", "120", "--eval-episodes", "1",
                 "--max-episode-steps", "30", "--log-interval", "40", "--agent.num-candidates", "4",
                 "--agent.temperature.kl-target", "1",
                 "--agent.policy.steps", "2", "--agent.policy.hidden-dims", "32", "--agent.critic-hidden-dims", "32",
                 "--run-dir", str(run_dir), "--no-progress"])
    assert code == 0
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert rows and all(float(r["weighting/auto_choice"]) in (0.0, 1.0) for r in rows)
    last = rows[-1]
    assert float(last["weighting/auto_choice"]) == float(choose_scheme(float(last["weighting/auto_skew"])))
    config, _, state, step = load_run(run_dir)
    assert config.label == "simpo-auto" and step == 120
    assert float(state.auto_skew) == pytest.approx(float(last["weighting/auto_skew"]), rel=1e-5)
    assert float(state.auto_skew) != 0.0  # the EMA moved and was saved with the agent state
