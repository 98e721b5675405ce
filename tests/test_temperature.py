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
    init_temperature,
    init_temperatures,
    kl_cap,
    kl_to_uniform,
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
