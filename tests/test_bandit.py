"""Tests of the bandit suite (SPEC §6): landscapes, the jitted/vmapped bandit loop, the study and its outputs."""

import csv
import json

import jax.numpy as jnp
import numpy as np
import pytest

from simpo.advisor import AUTO_MENUS
from simpo.bandit import (
    DEFAULT_SCHEMES,
    LANDSCAPES,
    BanditConfig,
    estimate_max_reward,
    get_landscape,
    parse_scheme,
    run,
    run_study,
)

# Small and fast, but enough to learn the broad landscape; every test that runs shares these settings and
# epoch count, so the compiled programs are reused (compile time dominates on a small CPU).
TINY = dict(hidden_dims=(16, 16), time_dim=8, steps=4, groups=4, num_candidates=32, pretrain_steps=100,
            temperature_steps=3, snapshots=2)
EPOCHS = 30
BROAD = get_landscape("broad")


def broad_run(weighting="exp", seed=(0, 1, 2), **kw):
    return run(BROAD.reward_fn, 1, weighting, epochs=EPOCHS, seed=seed, max_reward=1.0,
               init_mean=BROAD.init_mean, init_std=BROAD.init_std, **{**TINY, **kw})


@pytest.fixture(scope="module")
def multi():
    return broad_run("exp", seed=[0, 1, 2])


def test_landscape_presets():
    assert {"broad", "sharp", "bad-region"} <= set(LANDSCAPES)
    for name, land in LANDSCAPES.items():
        assert land.source.startswith("designed:") and land.description
        a = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (500, land.action_dim)), jnp.float32)
        r = np.asarray(land.reward_fn(a))
        assert r.shape == (500,) and np.all((r >= 0) & (r <= land.max_reward + 1e-6))
        assert float(land.reward_fn(jnp.asarray([land.argmax], jnp.float32))[0]) == pytest.approx(land.max_reward)
        # the initial policy does not already sit on the optimum
        init = float(land.reward_fn(jnp.asarray([land.init_mean], jnp.float32))[0])
        assert init < 0.5 * land.max_reward, name
    assert LANDSCAPES["bad-region"].action_dim == 2


@pytest.mark.parametrize("name", ["broad", "sharp", "bad-region", "plateau", "cusp", "mesa", "needle", "table",
                                  "spire", "butte", "ridge", "shelf", "thorn", "terrace", "cone", "dais",
                                  "spindle", "lagoon", "crag"])
def test_dense_search_matches_analytic_max(name):
    land = get_landscape(name)
    best, argmax = estimate_max_reward(land.reward_fn, land.action_dim)
    assert best == pytest.approx(land.max_reward, abs=2e-3)
    np.testing.assert_allclose(argmax, land.argmax, atol=0.02)


def test_dense_search_random_in_higher_dims():
    f = lambda a: jnp.exp(-jnp.sum((a - 0.3) ** 2, -1))  # noqa: E731
    best, argmax = estimate_max_reward(f, 3, points=200_000)
    assert best == pytest.approx(1.0, abs=5e-3)
    np.testing.assert_allclose(argmax, 0.3, atol=0.1)


def test_shapes_and_learning(multi):
    s, m = 3, TINY["groups"] * TINY["num_candidates"]
    assert multi.regret.shape == (s, EPOCHS) and multi.initial_regret.shape == (s,)
    assert multi.samples.shape == (s, m, 1) and np.all(np.abs(multi.samples) <= 1)
    assert multi.diagnostics["negative_fraction"].shape == (s, EPOCHS)
    assert multi.seeds == (0, 1, 2) and sorted(multi.snapshots) == [15, 30]
    # exp reweighting must actually learn: the regret falls far below where pretraining left it
    assert np.all(multi.initial_regret > 0.8)
    assert np.all(multi.regret[:, -5:].mean(1) < 0.3), multi.regret[:, -5:]
    # Theorem 3.5: the target improves on π_old, Σ w r ≥ mean r, every epoch
    assert np.all(multi.diagnostics["improvement"] >= -1e-6)


def test_vmapped_seeds_equal_single_seed_runs(multi):
    single = broad_run("exp", seed=1)
    assert single.regret.shape == (EPOCHS,) and single.samples.shape == (TINY["groups"] * TINY["num_candidates"], 1)
    assert single.single_seed and np.ndim(single.final_regret) == 0
    np.testing.assert_allclose(single.initial_regret, multi.initial_regret[1], atol=1e-4)
    np.testing.assert_allclose(single.regret, multi.regret[1], atol=2e-3)


def test_callable_weighting_and_signed_scheme():
    leaky = lambda x: jnp.maximum(x, 0.1 * x)  # noqa: E731
    res = broad_run(leaky, seed=[0, 1])
    assert res.regret.shape == (2, EPOCHS) and np.all(np.isfinite(res.regret))
    assert res.diagnostics["negative_fraction"].mean() > 0  # leaky g gives negative weights
    assert np.all(res.regret[:, -5:].mean(1) < res.initial_regret)


_PLATEAU = lambda a: 1.0 - jnp.mean(a**2, -1)  # noqa: E731  a plateau at the top, a long lower tail: skew < 0
_PEAK = lambda a: jnp.exp(-jnp.sum((a - 0.5) ** 2, -1) / 0.01)  # noqa: E731  a narrow peak: skew > 0


@pytest.mark.parametrize("weighting, reward_fn, expected", [
    ("auto", _PLATEAU, "square"), ("auto", _PEAK, "linear"),
    ("auto_exp", _PLATEAU, "exp"), ("auto_exp", _PEAK, "linear"),
])
def test_auto_applies_the_advisor_rule_online(weighting, reward_fn, expected):
    """`auto`/`auto_exp` (the bandit's --weighting auto, auto_exp) pick by the EMA of the candidates' skew, log it,
    and then compute exactly the weights of the scheme they picked (auto_exp: exp, not square, on flat tops)."""
    kw = dict(epochs=20, seed=[0, 1], max_reward=1.0, **TINY)
    auto, fixed = run(reward_fn, 1, weighting, **kw), run(reward_fn, 1, expected, **kw)
    assert AUTO_MENUS[weighting][auto.diagnostics["auto_choice"][0, 0]] == expected
    assert np.all(auto.diagnostics["auto_choice"] == AUTO_MENUS[weighting].index(expected))
    skew = auto.diagnostics["auto_skew"]
    assert np.all(np.sign(skew) == (1 if expected == "linear" else -1))
    assert np.all(np.abs(skew[:, -1]) > np.abs(skew[:, 0]))  # the EMA grows from 0
    # bit for bit for auto; auto_exp's exp branch compiles inside lax.switch with float32 rounding of its own (1 ulp)
    np.testing.assert_allclose(auto.regret, fixed.regret, rtol=0 if weighting == "auto" else 1e-6, atol=0)
    assert "auto_choice" not in fixed.diagnostics


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weighting="softmax"), "unknown weighting scheme 'softmax'; allowed: exp, linear"),
        (dict(epochs=0), "epochs must be an int >= 1"),
        (dict(seed="0"), "seed must be an int or a non-empty sequence"),
        (dict(seed=[]), "seed must be an int or a non-empty sequence"),
        (dict(bogus=1), "unknown parameter\\(s\\) bogus; allowed: policy, hidden_dims"),
        (dict(weighting="exp", p=2.0), "scheme 'exp' takes no parameters"),
        (dict(weighting="auto", floor=-0.1), "weighting 'auto' takes no scheme parameters, got floor"),
        (dict(weighting="auto_exp", p=2.0), "weighting 'auto_exp' takes no scheme parameters, got p"),
        (dict(weighting="power", p=-1.0), "p=-1.0 must be >= 0.5"),
        (dict(weighting="signed_linear", floor=0.5), "floor=0.5 must be <= 0"),
        (dict(policy="gan"), "policy must be 'flow' or 'diffusion'"),
        (dict(num_candidates=0), "num_candidates must be an int in \\[1, 65536\\]"),
        (dict(temperature=-1.0), "temperature must be a float > 0"),
        (dict(temperature_target="auto"), "temperature target must be one of"),
        (dict(init_std=[1.0, 1.0]), "init_std must be a positive float or 1 of them"),
        (dict(weighting=lambda x: -x), "must be increasing"),
        (dict(temperature_target="ess", ess_target=0.1, num_candidates=8),  # one-hot exp weights: 1/8
         "ess_target 0.1 is unreachable with 8 candidates and weighting exp: .* from 0.125"),
        (dict(weighting="auto", temperature_target="ess", ess_target=0.1, num_candidates=8),
         "ess_target 0.1 is unreachable with 8 candidates and weighting square"),
    ],
)
def test_bad_inputs(kwargs, match):
    kw = dict(weighting="exp", epochs=2, seed=0, max_reward=1.0)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        run(BROAD.reward_fn, 1, **kw)


def test_bad_reward_fn():
    with pytest.raises(ValueError, match="reward_fn must map"):
        run(lambda a: a, 2, max_reward=1.0)  # (M, 2) instead of (M,)
    with pytest.raises(ValueError, match="action_dim must be an int >= 1"):
        run(BROAD.reward_fn, 0)


def test_parse_scheme():
    assert parse_scheme("exp") == ("exp", {})
    assert parse_scheme("power:p=3") == ("power", {"p": 3.0})
    assert parse_scheme(" mygs.sub:leaky ") == ("mygs.sub:leaky", {})  # an import path, loaded by run_study
    assert parse_scheme(" signed_linear:floor=-0.05 ") == ("signed_linear", {"floor": -0.05})
    assert parse_scheme("wd1:negative_mass=0.5") == ("wd1", {"negative_mass": 0.5})
    assert parse_scheme("auto") == ("auto", {}) and parse_scheme("auto_exp") == ("auto_exp", {})
    for spec in DEFAULT_SCHEMES:
        parse_scheme(spec)
    for spec, match in [
        ("softmax", "unknown scheme 'softmax'"),
        ("power:q=3", "scheme 'power' takes p; got 'q'"),
        ("exp:p=1", "scheme 'exp' takes no parameters"),
        ("auto:p=2", "scheme 'auto' takes no parameters"),
        ("power:p", "expected key=value"),
        ("power:p=abc", "must be a number"),
        ("power:p=1,p=2", "given twice"),
        ("", "non-empty string"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_scheme(spec)


def test_run_study_writes_outputs_and_refuses_nonempty_dir(tmp_path, monkeypatch):
    run_dir = tmp_path / "study"
    (tmp_path / "user_gs_bandit.py").write_text("import jax.numpy as jnp\n\n\ndef relu(x):\n"
                                               "    return jnp.maximum(x, 0.0)\n")
    monkeypatch.chdir(tmp_path)  # MODULE:FUNCTION from the current directory: relu is `linear`, ν solved numerically
    schemes = ("linear", "signed_linear:floor=-0.01", "user_gs_bandit:relu")
    cfg = BanditConfig(landscape="bad-region", schemes=schemes, seeds=(0, 1),
                       epochs=6, run_dir=str(run_dir), hidden_dims=(16, 16), steps=4, groups=2, num_candidates=16,
                       pretrain_steps=20)
    assert run_study(cfg, progress=False) == run_dir
    names = {"regret.csv", "regret.png", "landscape.png", "velocity_field.png", "summary.md", "summary.json"}
    assert names <= {p.name for p in run_dir.iterdir()}
    rows = list(csv.DictReader((run_dir / "regret.csv").open()))
    assert set(rows[0]) == {"epoch", "scheme", "seed", "regret"}
    assert len(rows) == 3 * 2 * (6 + 1)  # schemes × seeds × (epochs + the post-pretraining epoch 0)
    regret = {name: np.array([float(r["regret"]) for r in rows if r["scheme"] == name]) for name in schemes}
    np.testing.assert_allclose(regret["user_gs_bandit:relu"], regret["linear"], rtol=1e-3, atol=1e-5)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["winner_final_regret"] in cfg.schemes and set(summary["schemes"]) == set(cfg.schemes)
    assert summary["landscape"]["source"].startswith("designed:")
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    with pytest.raises(ValueError, match="is not empty; pass --overwrite"):
        run_study(cfg, progress=False)
    assert before == {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}  # nothing written


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(landscape="cliff"), "unknown landscape 'cliff'; allowed: broad, sharp, bad-region"),
        (dict(schemes=("exp", "power:z=1")), "scheme 'power' takes p"),
        (dict(schemes=()), "schemes must be a non-empty sequence"),
        (dict(schemes=("exp", "exp")), "duplicates"),
        (dict(epochs=0), "epochs must be an int >= 1"),
        (dict(seeds=()), "seeds must be a non-empty sequence"),
    ],
)
def test_run_study_bad_config(tmp_path, changes, match):
    cfg = BanditConfig(**{"run_dir": str(tmp_path / "x"), **changes})
    with pytest.raises(ValueError, match=match):
        run_study(cfg, progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("epochs, snapshots, expected", [
    (6, 20, (1, 2, 3, 4, 5, 6)), (19, 20, tuple(range(1, 20))), (200, 20, tuple(range(10, 201, 10))), (7, 2, (4, 7)),
    (5, 0, ())])
def test_snapshots_are_spread_over_the_epochs_and_end_at_the_last(epochs, snapshots, expected):
    from simpo.bandit.run import prepare

    plan = prepare(BROAD.reward_fn, 1, "exp", epochs=epochs, max_reward=1.0, snapshots=snapshots)
    assert plan.static.snapshot_epochs == expected
