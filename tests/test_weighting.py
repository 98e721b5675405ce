"""Stage 1 properties of `compute_weights`, for every built-in scheme and user-supplied g."""

import re
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from simpo.weighting import SCHEMES, compute_weights


def user_exp(x):
    return jnp.exp(x)


def user_leaky(x):  # signed, increasing: a leaky-ReLU weighting as the authors' fork tried
    return jnp.where(x > 0, x, 0.1 * x)


def user_power(x):
    return jnp.maximum(x, 0.0) ** 1.5


CASES = [
    ("exp", ()),
    ("linear", ()),
    ("square", ()),
    ("power", (("p", 0.5),)),
    ("power", (("p", 1.0),)),
    ("power", (("p", 3.0),)),
    ("signed_linear", ()),
    ("signed_linear", (("floor", -0.02),)),
    ("wd1", ()),
    ("wd1", (("negative_mass", 0.3),)),
    (user_exp, ()),
    (user_leaky, ()),
    (user_power, ()),
]
IDS = [f"{getattr(s, '__name__', s)}{dict(p) or ''}" for s, p in CASES]
SIGNED = {"signed_linear", "wd1", user_leaky}


@lru_cache(maxsize=None)
def jitted(scheme, params):
    return jax.jit(lambda q, lam: compute_weights(q, scheme, lam, **dict(params)))


def weights(q, scheme, params, lam=1.0):
    return np.asarray(jitted(scheme, params)(jnp.asarray(q, jnp.float32), jnp.float32(lam)))


q_batches = st.sampled_from([(1, 1), (1, 2), (3, 7), (2, 64)]).flatmap(
    lambda shape: st.lists(
        st.floats(-10, 10, width=32), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]
    ).map(lambda xs: np.asarray(xs, np.float32).reshape(shape))
)
temperatures = st.floats(0.3, 3.0)
FAST = settings(max_examples=25, deadline=None)


def assert_sums_to_one(w):
    scale = np.maximum(1.0, np.abs(w).sum(-1))
    np.testing.assert_array_less(np.abs(w.sum(-1) - 1.0), 2e-5 * scale)


@pytest.mark.parametrize("scheme,params", CASES, ids=IDS)
@FAST
@given(q=q_batches, lam=temperatures)
def test_weights_sum_to_one_and_sign(scheme, params, q, lam):
    w = weights(q, scheme, params, lam)
    assert w.shape == q.shape and np.all(np.isfinite(w))
    assert_sums_to_one(w)
    if scheme not in SIGNED:
        assert np.all(w >= 0)


@pytest.mark.parametrize("scheme,params", CASES, ids=IDS)
@FAST
@given(q=q_batches, lam=temperatures, shift=st.floats(-100, 100))
def test_invariant_to_adding_a_constant(scheme, params, q, lam, shift):
    np.testing.assert_allclose(
        weights(q + np.float32(shift), scheme, params, lam), weights(q, scheme, params, lam), atol=3e-3
    )


@pytest.mark.parametrize("scheme,params", CASES, ids=IDS)
@FAST
@given(q=q_batches, lam=temperatures, scale=st.floats(1e-3, 1e3))
def test_invariant_to_scaling_q_and_temperature(scheme, params, q, lam, scale):
    scaled = weights(q * np.float32(scale), scheme, params, lam * scale)
    # For p < 1, g' is unbounded at 0: a float32 error ε in ν moves a weight by ~ε^p (6e-8^0.5 = 2.4e-4).
    atol = 1e-3 if dict(params).get("p", 1.0) < 1 else 2e-4
    np.testing.assert_allclose(scaled, weights(q, scheme, params, lam), atol=atol)


@pytest.mark.parametrize("scheme,params", CASES, ids=IDS)
@FAST
@given(q=q_batches, lam=temperatures, bump=st.floats(0.01, 5.0), index=st.integers(0, 63))
def test_monotone_in_own_q(scheme, params, q, lam, bump, index):
    i = index % q.shape[-1]
    raised = q.copy()
    raised[:, i] += np.float32(bump)
    assert np.all(weights(raised, scheme, params, lam)[:, i] >= weights(q, scheme, params, lam)[:, i] - 1e-5)


@pytest.mark.parametrize("scheme,params", CASES, ids=IDS)
@FAST
@given(q=q_batches, lam=temperatures)
def test_policy_improvement_theorem_3_5(scheme, params, q, lam):
    """Thm 3.5: with g increasing, E_w[Q] >= E_uniform[Q] for the empirical target measure."""
    w = weights(q, scheme, params, lam)
    improvement = (w * q).sum(-1) - q.mean(-1)
    assert np.all(improvement >= -1e-4 * (1 + np.abs(q).max()))


@pytest.mark.parametrize("scheme,params", CASES, ids=IDS)
def test_degenerate_inputs_are_well_defined(scheme, params):
    equal = np.full((2, 5), 3.0, np.float32)
    np.testing.assert_allclose(weights(equal, scheme, params), 0.2, atol=1e-5)
    np.testing.assert_allclose(weights(np.array([[7.0]]), scheme, params), [[1.0]], atol=1e-6)
    top_heavy = np.array([[0.0, -1e6, -2e6, 5e5]], np.float32)
    w = weights(top_heavy, scheme, params, lam=1.0)
    assert np.all(np.isfinite(w)) and w[0, 3] == w.max()
    extremes = np.array([[3e38, -3e38, 0.0, 1e30, -1e-38]], np.float32)
    for lam in (1e-30, 1.0, 1e30):
        w = weights(extremes, scheme, params, lam)
        assert np.all(np.isfinite(w)), (lam, w)
        assert w[0, 0] == w.max()
    tiny = np.array([[1e-30, 2e-30, 0.0]], np.float32)
    assert np.all(np.isfinite(weights(tiny, scheme, params, lam=1e-38)))


def reference_weights(q, g, lam):
    """float64 reference: brentq for ν with Σ g(q/λ − ν) = 1."""
    z = q.astype(np.float64) / lam
    out = []
    for row in z:
        total = lambda nu: np.sum(g(row - nu)) - 1.0
        lo, hi = row.max() - 1.0, row.max() + 1.0
        while total(lo) < 0:
            lo -= 2 * (hi - lo)
        while total(hi) > 0:
            hi += 2 * (hi - lo)
        nu = brentq(total, lo, hi, xtol=1e-14)
        out.append(g(row - nu))
    return np.asarray(out)


@pytest.mark.parametrize(
    "scheme,params,g",
    [
        ("exp", {}, np.exp),
        ("linear", {}, lambda x: np.maximum(x, 0)),
        ("square", {}, lambda x: np.maximum(x, 0) ** 2),
        ("power", {"p": 0.5}, lambda x: np.maximum(x, 0) ** 0.5),
        ("power", {"p": 3.0}, lambda x: np.maximum(x, 0) ** 3),
        ("signed_linear", {}, lambda x: x),
        ("signed_linear", {"floor": -0.05}, lambda x: np.maximum(x, -0.05)),
        (user_leaky, {}, lambda x: np.where(x > 0, x, 0.1 * x)),
    ],
)
def test_normaliser_matches_float64_reference(scheme, params, g):
    q = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (16, 32)) * 2.0)
    for lam in (0.1, 1.0, 10.0):
        ours = np.asarray(compute_weights(jnp.asarray(q), scheme, lam, **params))
        np.testing.assert_allclose(ours, reference_weights(q, g, lam), rtol=1e-4, atol=2e-5)


def test_wd1_equals_our_softmax_form_on_unshifted_q_and_has_negative_weights():
    """`wd1` is (1 + c)·softmax(q/λ) − c·softmax(−q/λ), computed here directly on q/λ (the code works on the shifted
    u = (q − max q)/λ). This is our own form, not a check against the paper: its Example 3.4 text was not recovered
    (docs/paper_notes.md), so this pins the form we chose and that the shift changes nothing."""
    q = jax.random.normal(jax.random.PRNGKey(1), (4, 9))
    c, lam = 0.7, 0.5
    expected = (1 + c) * jax.nn.softmax(q / lam) - c * jax.nn.softmax(-q / lam)
    np.testing.assert_allclose(compute_weights(q, "wd1", lam, negative_mass=c), expected, atol=1e-6)
    assert np.all(np.asarray(compute_weights(q, "wd1", lam)).min(-1) < 0)


def test_wd1_masses_are_1_plus_c_and_c_only_as_lambda_goes_to_0():
    """The two softmaxes overlap at finite λ and cancel: the negative mass is c only in the λ → 0 limit (c = 1, N = 64:
    1.0 at λ = 0.1, 0.56 at λ = 1, 2e-5 at λ = 10), while Σ w = 1 throughout."""
    q = jax.random.normal(jax.random.PRNGKey(0), (256, 64))
    negative = {}
    for lam in (0.1, 1.0, 10.0):
        w = np.asarray(compute_weights(q, "wd1", lam, negative_mass=1.0))
        negative[lam] = -float(np.minimum(w, 0).sum(-1).mean())
        assert float(np.maximum(w, 0).sum(-1).mean()) == pytest.approx(1 + negative[lam], abs=1e-4)
    assert negative[0.1] == pytest.approx(1.0, abs=1e-3)
    assert 0.4 < negative[1.0] < 0.7 and negative[10.0] < 1e-3


def test_saturating_u_is_exact_only_for_weights_that_reach_a_constant():
    """u = (q − max q)/λ is clamped at −finfo.max/(4N). Weights that tend to a constant as u → −∞ (exp: 0, a floor)
    are unchanged by it; wd1's negative part (and weights affine in u) treat all clamped candidates as equal."""
    q = jnp.array([[0.0, 1.0, 2.0, 3.0]])
    for lam in (1e-3, 1e-38):  # 1e-38: all three lower candidates clamped
        np.testing.assert_allclose(compute_weights(q, "exp", lam), [[0, 0, 0, 1]], atol=1e-7)
        np.testing.assert_allclose(compute_weights(q, "signed_linear", lam, floor=-0.1), [[-0.1, -0.1, -0.1, 1.3]],
                                   atol=1e-6)
    np.testing.assert_allclose(compute_weights(q, "wd1", 1e-3), [[-1, 0, 0, 2]], atol=1e-6)  # the λ → 0 limit
    np.testing.assert_allclose(compute_weights(q, "wd1", 1e-38), [[-1 / 3, -1 / 3, -1 / 3, 2]], atol=1e-6)  # not it


def test_signed_linear_closed_form_and_floor():
    q = jax.random.normal(jax.random.PRNGKey(2), (5, 12))
    lam = 0.8
    z = q / lam
    np.testing.assert_allclose(
        compute_weights(q, "signed_linear", lam), z - z.mean(-1, keepdims=True) + 1 / 12, atol=1e-6
    )
    floored = compute_weights(q, "signed_linear", lam, floor=-0.01)
    assert float(floored.min()) >= -0.01 - 1e-7  # clipped at the same floor ν was solved for
    assert_sums_to_one(np.asarray(floored))


def test_per_state_temperature_and_vmap():
    q = jax.random.normal(jax.random.PRNGKey(4), (6, 10))
    lam = jnp.linspace(0.2, 2.0, 6)
    batched = compute_weights(q, "square", lam)
    rows = jax.vmap(lambda qi, li: compute_weights(qi, "square", li))(q, lam)
    np.testing.assert_allclose(batched, rows, atol=1e-6)
    for i in range(6):
        np.testing.assert_allclose(batched[i], compute_weights(q[i], "square", float(lam[i])), atol=1e-6)


def test_every_builtin_scheme_is_covered():
    assert {s for s, _ in CASES if isinstance(s, str)} == set(SCHEMES)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda q: compute_weights(q, "softmaxx"), "unknown weighting scheme 'softmaxx'; allowed: exp"),
        (lambda q: compute_weights(q, "power", p=0.0), "p=0.0 must be >= 0.5"),
        (lambda q: compute_weights(q, "power", p=-1.0), "must be >= 0.5"),
        (lambda q: compute_weights(q, "power", p=0.2), "p=0.2 must be >= 0.5 and finite (smaller p: float32 cannot resolve"),
        (lambda q: compute_weights(q, "signed_linear", floor=0.1), "floor=0.1 must be <= 0"),
        (lambda q: compute_weights(q, "wd1", negative_mass=-1.0), "must be >= 0"),
        (lambda q: compute_weights(q, "exp", p=2.0), "scheme 'exp' takes no parameters; got p"),
        (lambda q: compute_weights(q, "exp", 0.0), "temperature must be finite and > 0"),
        (lambda q: compute_weights(q, "exp", -1.0), "temperature must be finite and > 0"),
        (lambda q: compute_weights(q, "exp", float("inf")), "temperature must be finite and > 0"),
        (lambda q: compute_weights(q, lambda x: -x), "must be increasing"),
        (lambda q: compute_weights(q, jnp.cos, 0.05), "must be increasing"),
        (lambda q: compute_weights(q, lambda x: 0.001 * jnp.tanh(x)), "no normaliser"),
        (lambda q: compute_weights(q[:, :0]), "N >= 1"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message):
    q = jax.random.normal(jax.random.PRNGKey(0), (3, 8))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(q)


def test_non_increasing_user_g_gives_nan_under_jit():
    q = jax.random.normal(jax.random.PRNGKey(0), (3, 8))
    w = jax.jit(lambda q: compute_weights(q, lambda x: -x))(q)
    assert np.all(np.isnan(w))


def test_load_weighting_by_import_path_and_its_errors(tmp_path, monkeypatch):
    from simpo.weighting import is_import_path, load_weighting

    (tmp_path / "user_gs_weighting.py").write_text(
        "import jax.numpy as jnp\n\n\ndef square(x):\n    return jnp.maximum(x, 0.0) ** 2\n\n\n"
        "def falling(x):\n    return -x\n\n\ndef negative(x):\n    return jnp.zeros_like(x) - 1.0\n\n\nN = 3\n\n\n"
        "def broken(x):\n    raise RuntimeError('boom inside g')\n")
    (tmp_path / "user_gs_exits.py").write_text("import sys\n\nsys.exit()\n")
    monkeypatch.chdir(tmp_path)  # a file in the current directory is importable
    q = jnp.array([[0.3, -1.2, 2.0, 0.7, 1.9]])
    g = load_weighting("user_gs_weighting:square")
    np.testing.assert_allclose(compute_weights(q, g, 0.5), compute_weights(q, "square", 0.5), atol=1e-6)
    assert is_import_path("pkg.mod:obj.fn") and not is_import_path("signed_linear:floor=-0.02")
    assert not is_import_path("square") and not is_import_path("power:p")  # a scheme's parameter, malformed
    for path, message in [("user_gs_weighting:falling", "must be increasing"),
                          ("user_gs_weighting:negative", "no normaliser"),
                          ("user_gs_weighting:N", "is a int, not a function"),
                          ("user_gs_weighting:nope", "has no attribute nope"),
                          ("user_gs_weighting:broken", "g failed on test values (RuntimeError: boom inside g)"),
                          ("user_gs_exits:g", "cannot import user_gs_exits (SystemExit"),
                          ("no_such_module_here:g", "cannot import no_such_module_here (ModuleNotFoundError")]:
        with pytest.raises(ValueError, match=re.escape(f"weighting {path!r}: ") + ".*" + re.escape(message)):
            load_weighting(path)


def test_scheme_flags_match_the_schemes():
    """Every scheme that takes a parameter has exactly one --agent.* flag, and the flag lands in that parameter:
    the ignored-flag check (simpo.flags) and the config (weighting_params) share SCHEME_FIELDS."""
    from simpo.agents.simpo_config import SCHEME_FIELDS
    from simpo.cli import parse_config
    from simpo.flags import SCHEME_OPTIONS
    from simpo.train import TrainConfig
    from simpo.weighting import _PARAMS

    assert {s for s, params in _PARAMS.items() if params} == set(SCHEME_FIELDS) == set(SCHEME_OPTIONS.values())
    for flag, scheme in SCHEME_OPTIONS.items():
        (param,) = _PARAMS[scheme]
        agent = parse_config(TrainConfig, ["--weighting", scheme, flag, "-0.25" if scheme == "signed_linear" else "0.75",
                                           "--agent.temperature.target", "ess"], "simpo train").agent
        assert agent.weighting_params == {param: -0.25 if scheme == "signed_linear" else 0.75}
