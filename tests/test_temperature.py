"""The temperature tuner drives the weights to their KL or ESS target, inside jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simpo.agents.simpo_config import SiMPOConfig
from simpo.temperature import (
    TemperatureConfig,
    check_reachable,
    effective_sample_fraction,
    ess_floor,
    init_temperature,
    init_temperatures,
    kl_cap,
    kl_reachable,
    kl_to_uniform,
    max_kl,
    temperature_value,
    update_temperature,
    update_temperatures,
    weight_diagnostics,
)
from simpo.weighting import compute_weights


def tune(config, scheme, steps=600):
    q = jax.random.normal(jax.random.PRNGKey(0), (64, 32))

    @jax.jit
    def run(state):
        def step(state, _):
            w = compute_weights(q, scheme, temperature_value(state))
            return update_temperature(config, state, w)[0], None

        return jax.lax.scan(step, state, None, length=steps)[0]

    state = run(init_temperature(config))
    return compute_weights(q, scheme, temperature_value(state)), float(temperature_value(state))


@pytest.mark.parametrize("scheme", ["exp", "linear", "square"])
@pytest.mark.parametrize("init", [0.05, 5.0])
def test_kl_target_is_reached(scheme, init):
    config = TemperatureConfig(target="kl", init=init, kl_target=1.0, lr=0.05)
    w, _ = tune(config, scheme)
    assert abs(float(jnp.mean(kl_to_uniform(w))) - 1.0) < 0.1


@pytest.mark.parametrize("scheme", ["exp", "wd1", "signed_linear"])
def test_ess_target_is_reached_for_signed_weights_too(scheme):
    config = TemperatureConfig(target="ess", init=1.0, ess_target=0.3, lr=0.05)
    w, _ = tune(config, scheme)
    assert abs(float(jnp.mean(effective_sample_fraction(w))) - 0.3) < 0.03


def leaky(x):
    return jnp.maximum(x, 0.1 * x)


def test_weights_that_only_grow_as_lambda_falls_cap_the_kl_and_the_agent_refuses_a_target_above_it():
    """Unfloored signed_linear (affine in q/λ) and a leaky-ReLU g keep their shape as λ falls: the normalised
    non-negative part that KL(w̃ ‖ uniform) sees stops changing, at a cap under log N, while a floor, sparsemax or wd1
    go on to one-hot. A `kl` target above the cap would drive λ down for ever: SiMPOConfig refuses it."""
    q = jax.random.normal(jax.random.PRNGKey(1), (256, 64))

    def kl(scheme, lam, **params):
        return float(jnp.mean(kl_to_uniform(compute_weights(q, scheme, lam, **params))))

    for scheme, cap in (("signed_linear", 1.0), (leaky, 2.02)):
        values = [kl(scheme, lam) for lam in (1e-2, 1e-3, 1e-4)]
        assert max(values) - min(values) < 2e-3 and max(values) < cap, (scheme, values)
        assert abs(kl_cap(scheme, 64) - values[-1]) < 0.03  # the reference Q differs from this q
    for scheme, params in (("signed_linear", {"floor": -0.02}), ("linear", {}), ("wd1", {})):
        assert kl(scheme, 1e-4, **params) > 4.1 and kl_cap(scheme, 64, **params) > 4.1  # log 64 = 4.16
    with pytest.raises(ValueError, match=r"kl_target 2 is out of reach for weighting signed_linear: .* stops at 0\.97"):
        SiMPOConfig(weighting="signed_linear")
    for target in (TemperatureConfig(target="ess"), TemperatureConfig(target="kl", kl_target=0.5)):
        SiMPOConfig(weighting="signed_linear", temperature=target)  # ESS is reachable; so is a KL under the cap
    SiMPOConfig(weighting="signed_linear", floor=-0.02)


def test_a_menu_tunes_one_temperature_per_scheme_as_if_each_were_alone():
    """`init_temperatures`/`update_temperatures` (the λs of --weighting auto): entry m follows exactly the path
    `update_temperature` takes with scheme m alone, and exp and linear settle on different scales."""
    config = TemperatureConfig(target="kl", init=1.0, kl_target=1.0, lr=0.05)
    q = jax.random.normal(jax.random.PRNGKey(0), (64, 32))
    schemes = ("exp", "linear")

    def step(state, _):
        lam = temperature_value(state)
        return update_temperatures(config, state, jnp.stack([compute_weights(q, s, lam[m]) for m, s in
                                                             enumerate(schemes)]))[0], None

    menu = jax.jit(lambda s: jax.lax.scan(step, s, None, length=300)[0])(init_temperatures(config, len(schemes)))
    assert menu.log_temperature.shape == (2,)
    for m, scheme in enumerate(schemes):
        _, alone = tune(config, scheme, steps=300)
        assert float(temperature_value(menu)[m]) == pytest.approx(alone, rel=1e-5)
    lam = temperature_value(menu)
    assert float(lam[1]) > 3 * float(lam[0])  # linear's λ is on another scale than exp's: a shared λ misfits one


def test_fixed_temperature_never_moves():
    config = TemperatureConfig(target="fixed", init=0.7)
    _, lam = tune(config, "exp", steps=10)
    assert lam == pytest.approx(0.7)


def test_diagnostics_on_known_weights():
    uniform = jnp.full((2, 4), 0.25)
    one_hot = jnp.array([[1.0, 0.0, 0.0, 0.0]])
    signed = jnp.array([[1.5, -0.5, 0.0, 0.0]])
    np.testing.assert_allclose(kl_to_uniform(uniform), 0.0, atol=1e-6)
    np.testing.assert_allclose(effective_sample_fraction(uniform), 1.0, atol=1e-6)
    np.testing.assert_allclose(effective_sample_fraction(one_hot), 0.25, atol=1e-6)
    assert float(kl_to_uniform(one_hot)[0]) > 1.3  # near log 4 = 1.386
    d = weight_diagnostics(signed)
    assert float(d["weights/negative_fraction"]) == 0.25
    assert float(d["weights/negative_mass"]) == -0.5


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"target": "entropy"}, "temperature target must be one of fixed, kl, ess"),
        ({"init": 0.0}, "init must be finite and > 0"),
        ({"init": float("inf")}, "init must be finite and > 0"),
        ({"ess_target": 1.5}, "ess_target must be in"),
        ({"lr": -1.0}, "lr must be finite and > 0"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemperatureConfig(**kwargs)


def test_a_kl_target_at_or_above_log_n_is_refused():
    """KL(w̃ ‖ uniform) <= log N (one-hot weights): a target at log N or above can never be met, λ would shrink
    towards 0 for ever and every scheme would give argmax weights."""
    weights = jnp.eye(8)[:4]  # one-hot: the largest KL there is at N = 8
    assert float(jnp.max(kl_to_uniform(weights))) < np.log(8)
    check_reachable(TemperatureConfig(target="kl", kl_target=2.0), 8)  # 2.0 < log 8 = 2.079
    check_reachable(TemperatureConfig(target="ess", kl_target=5.0), 8)  # the KL target is not used
    for n, kl in ((8, 2.5), (8, float(np.log(8))), (4, 2.0), (1, 0.1)):
        with pytest.raises(ValueError, match=f"kl_target {kl:g} is unreachable with {n} candidates"):
            check_reachable(TemperatureConfig(target="kl", kl_target=kl), n)


def test_presets_never_ask_for_an_unreachable_kl_target():
    from simpo.presets import ALGOS, PRESETS, agent_config

    for algo in ALGOS[:-1]:  # sac has no λ
        for preset in PRESETS:
            for env in ("HalfCheetah-v5", "Hopper-v5", "Ant-v5", "Walker2d-v5"):
                c = agent_config(algo, preset, env)  # SiMPOConfig checks reachability itself
                assert c.temperature.kl_target < np.log(c.num_candidates)
    assert agent_config("simpo", "fast", "Hopper-v5").temperature.kl_target == 2.0  # authors' 2.5 > log 8
    assert agent_config("dpmd", "paper", "Hopper-v5").temperature.kl_target == 3.0  # < log 64: kept


@pytest.mark.parametrize("n, gap_target", [(8, 2.0794), (4096, 8.3), (65536, 11.0)])
def test_the_kl_bound_is_that_of_one_hot_weights_as_the_tuner_measures_it_not_log_n(n, gap_target):
    """w̃ is clipped at 1e-6, so even one-hot weights measure less than log N (N = 4096: 8.257 vs 8.318): a target in
    between is never met and would drive λ to 0 for ever. The bound is `kl_to_uniform` of one-hot weights itself."""
    one_hot = jnp.zeros((n,), jnp.float32).at[0].set(1.0)
    top = float(kl_to_uniform(one_hot))
    assert max_kl(n) == top and top < gap_target < np.log(n)  # the target lies in the gap
    assert not kl_reachable(gap_target, n) and kl_reachable(top - 1e-3, n)
    with pytest.raises(ValueError, match=rf"kl_target {gap_target:g} is unreachable with {n} candidates: .* at most "
                                         rf"{top:.4f}, the KL of one-hot weights; choose a kl_target below {top:.4f}"):
        check_reachable(TemperatureConfig(target="kl", kl_target=gap_target), n)
    check_reachable(TemperatureConfig(target="kl", kl_target=top - 1e-3), n)


def test_a_kl_target_in_the_gap_is_never_met():
    """At N = 4096 the tuner with target 8.3 (< log N) meets weights that are already one-hot: error stays > 0,
    λ falls step after step."""
    config = TemperatureConfig(target="kl", init=1e-3, kl_target=8.3, lr=0.05)
    q = jnp.arange(4096, dtype=jnp.float32)[None]  # gaps of 1 >> λ: exp weights one-hot
    state = init_temperature(config)
    for _ in range(3):
        lam = float(temperature_value(state))
        state, metrics = update_temperature(config, state, compute_weights(q, "exp", lam))
        assert float(metrics["temperature/error"]) > 0.04 and float(temperature_value(state)) < lam


@pytest.mark.parametrize("scheme, params", [("exp", {}), ("linear", {}), ("square", {}), ("power", {"p": 3.0}),
                                            ("wd1", {"negative_mass": 1.0}), ("wd1", {"negative_mass": 0.3}),
                                            ("signed_linear", {"floor": -0.02}), ("signed_linear", {"floor": 0.0})])
def test_ess_floor_is_the_lambda_to_0_limit(scheme, params):
    """`ess_floor`'s closed forms are the ESS fraction of the λ → 0 weights: 1/N for one-hot ones, lower for signed
    ones (wd1: 1/(N((1 + c)² + c²)), a floor f: 1/(N((1 − (N − 1)f)² + (N − 1)f²))). Q spaced 1 apart, λ = 1e-3."""
    n = 16
    q = jax.random.permutation(jax.random.PRNGKey(0), jnp.arange(n, dtype=jnp.float32))[None]
    limit = float(effective_sample_fraction(compute_weights(q, scheme, 1e-3, **params))[0])
    assert ess_floor(scheme, n, **params) == pytest.approx(limit, rel=1e-4)
    larger = float(effective_sample_fraction(compute_weights(q, scheme, 3.0, **params))[0])
    assert limit < larger < 1  # the fraction rises with λ, towards 1 (uniform) only as λ -> inf
    assert ess_floor(scheme, 1, **params) == 1.0


def test_ess_floor_of_weights_that_grow_as_lambda_falls_is_0():
    q = jax.random.normal(jax.random.PRNGKey(1), (64, 16))
    for lam in (1e-1, 1e-3):  # unfloored signed_linear: Σ w² ~ 1/λ²
        assert float(jnp.max(effective_sample_fraction(compute_weights(q, "signed_linear", lam)))) < 10 * lam**2
    assert ess_floor("signed_linear", 16) == 0.0 and ess_floor(None, 16) == 0.0
    assert 0 < ess_floor(leaky, 16) < 1e-6  # a signed user g: measured
    assert ess_floor(jax.nn.softplus, 16) == 1 / 16  # a non-negative one: 1/N


def test_an_unreachable_ess_target_is_refused_with_the_range():
    """ESS fraction ∈ (ess_floor, 1): a target at or below the λ → 0 limit drives λ to 0 for ever, 1 drives it to
    ∞ (only uniform weights reach it). Before, only (0, 1] was checked."""
    def ess(target):
        return TemperatureConfig(target="ess", ess_target=target)

    for target, scheme, params, low in ((1 / 64, "exp", {}, "0.015625"), (0.01, "square", {}, "0.015625"),
                                        (0.003, "wd1", {"negative_mass": 1.0}, "0.003125"),
                                        (1.0, "exp", {}, "0.015625"), (1.0, "signed_linear", {}, "0"),
                                        (1.0, None, {}, "0")):
        with pytest.raises(ValueError, match=rf"ess_target {target:g} is unreachable with 64 candidates.*"
                                             rf"choose an ess_target in \({low}, 1\)$"):
            check_reachable(ess(target), 64, scheme, **params)
    with pytest.raises(ValueError, match="temperature target ess needs at least 2 candidates"):
        check_reachable(ess(0.5), 1)
    for target, scheme, params in ((0.02, "exp", {}), (0.01, "wd1", {}), (1e-3, "signed_linear", {}),
                                   (0.999, "linear", {}), (0.01, None, {})):
        check_reachable(ess(target), 64, scheme, **params)
    check_reachable(TemperatureConfig(target="kl", ess_target=1.0), 64, "exp")  # the ESS target is not used
    # the agent config checks its own scheme (each scheme of a menu, its λ tuned on its own)
    with pytest.raises(ValueError, match="ess_target 0.1 is unreachable with 8 candidates and weighting exp:"):
        SiMPOConfig(num_candidates=8, temperature=ess(0.1))
    with pytest.raises(ValueError, match=r"with 8 candidates and weighting exp \(of auto_exp\):"):
        SiMPOConfig(weighting="auto_exp", num_candidates=8, temperature=ess(0.1))
    with pytest.raises(ValueError, match="ess_target 1 is unreachable with 64 candidates and weighting wd1"):
        SiMPOConfig(weighting="wd1", temperature=ess(1.0))
    SiMPOConfig(weighting="wd1", num_candidates=8, temperature=ess(0.1))  # wd1's limit is 1/40 at N = 8


def test_wd1_reaches_an_ess_target_below_1_over_n():
    """For signed weights the ESS fraction goes below 1/N, so such a target is reachable (and accepted) there."""
    config = TemperatureConfig(target="ess", init=1.0, ess_target=0.02, lr=0.05)  # 1/32 = 0.031; wd1's floor 1/160
    check_reachable(config, 32, "wd1", negative_mass=1.0)
    w, _ = tune(config, "wd1")
    assert abs(float(jnp.mean(effective_sample_fraction(w))) - 0.02) < 0.002
