"""SAC baseline and the shared twin-Q critic: purity, shapes, stability, TD targets, Polyak, config, learning."""

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simpo.agents.base import Batch
from simpo.agents.critic import (
    CriticState,
    DoubleCritic,
    critic_loss,
    critic_step,
    init_critic_state,
    polyak,
    td_target,
)
from simpo.agents.sac import SAC, SACConfig, tanh_gaussian_sample

OBS, ACT = 5, 3
SMALL = SACConfig(actor_hidden_dims=(64, 64), critic_hidden_dims=(64, 64))


BANDIT_DIMS = (2, 2)


@partial(jax.jit, static_argnums=0)
def train(agent, state, data, key, n_steps):
    """``n_steps`` updates on minibatches of 64 drawn from ``data``; returns the state and the last metrics."""

    def body(i, carry):
        state, _ = carry
        k_idx, k_upd = jax.random.split(jax.random.fold_in(key, i))
        idx = jax.random.randint(k_idx, (64,), 0, data.reward.shape[0])
        return agent.update(state, jax.tree.map(lambda x: x[idx], data), k_upd)

    metrics = jax.eval_shape(agent.update, state, jax.tree.map(lambda x: x[:64], data), key)[1]
    metrics = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metrics)
    return jax.lax.fori_loop(0, n_steps, body, (state, metrics))


def random_batch(key, batch=32, obs_dim=OBS, action_dim=ACT):
    k = jax.random.split(key, 5)
    return Batch(
        obs=jax.random.normal(k[0], (batch, obs_dim)),
        action=jax.random.uniform(k[1], (batch, action_dim), minval=-1.0, maxval=1.0),
        reward=jax.random.normal(k[2], (batch,)),
        next_obs=jax.random.normal(k[3], (batch, obs_dim)),
        terminated=(jax.random.uniform(k[4], (batch,)) < 0.2).astype(jnp.float32),
    )


@pytest.fixture(scope="module")
def agent():
    return SAC(SMALL, OBS, ACT)


@pytest.fixture(scope="module")
def state0(agent):
    return agent.init(jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def update(agent):
    return jax.jit(agent.update)


def test_update_is_pure_and_deterministic(agent, update, state0):
    state = state0
    batch, key = random_batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2)
    before = jax.tree.map(np.asarray, state)
    out1 = update(state, batch, key)
    out2 = update(state, batch, key)
    for a, b in zip(jax.tree.leaves(out1), jax.tree.leaves(out2)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state)):  # input state untouched
        np.testing.assert_array_equal(a, b)
    # A different key gives a different update; the agent is hashable (a static jit argument).
    out3 = update(state, batch, jax.random.PRNGKey(3))
    kernel = lambda out: out[0].actor_params["params"]["Dense_0"]["kernel"]
    assert not np.allclose(kernel(out1), kernel(out3))
    assert hash(agent) == hash(SAC(SMALL, OBS, ACT))


def test_shapes_and_metrics(agent, update, state0):
    state = state0
    key = jax.random.PRNGKey(1)
    obs = jax.random.normal(key, (7, OBS))
    for mode in (None, "single", "best_of_n"):
        a = agent.act(state, key, obs, mode)
        assert a.shape == (7, ACT)
        assert np.all(np.abs(np.asarray(a)) <= 1.0)
        assert agent.act(state, key, obs[0], mode).shape == (ACT,)
    with pytest.raises(ValueError, match="eval_mode"):
        agent.act(state, key, obs, "greedy")
    # "single" is deterministic; training samples vary with the key.
    other = jax.random.PRNGKey(9)
    np.testing.assert_array_equal(agent.act(state, key, obs, "single"), agent.act(state, other, obs, "single"))
    assert not np.allclose(agent.act(state, key, obs), agent.act(state, other, obs))

    new_state, metrics = update(state, random_batch(key), key)
    assert set(metrics) == {"critic_loss", "actor_loss", "alpha", "entropy", "q_mean"}
    assert all(m.shape == () for m in metrics.values())
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert int(new_state.step) == 1
    # The critic broadcasts extra leading dims: obs (B, 1, d) against actions (B, N, d) -> (num_qs, B, N).
    q = agent.critic.apply(state.critic.params, obs[:, None], jnp.zeros((7, 4, ACT)))
    assert q.shape == (2, 7, 4)


def test_no_nans_over_200_updates():
    # Random rewards, random terminations, random next observations (a pool of 4096 transitions).
    data = random_batch(jax.random.PRNGKey(1), batch=4096, obs_dim=BANDIT_DIMS[0], action_dim=BANDIT_DIMS[1])
    agent = SAC(SMALL, *BANDIT_DIMS)
    state, metrics = train(agent, agent.init(jax.random.PRNGKey(0)), data, jax.random.PRNGKey(2), 200)
    for leaf in jax.tree.leaves(state) + jax.tree.leaves(metrics):
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert float(metrics["alpha"]) > 0
    assert int(state.step) == 200


def test_tanh_log_prob_is_stable_and_correct():
    # Saturated pre-tanh values: finite log-prob (the naive log(1 - tanh²) gives -inf).
    sample = jax.jit(tanh_gaussian_sample)
    a, lp = sample(jax.random.PRNGKey(0), jnp.full((4, 2), 30.0), jnp.full((4, 2), -5.0))
    assert np.all(np.isfinite(np.asarray(lp)))
    # Moderate values: matches the change-of-variables formula.
    mean, log_std = jnp.array([[0.3, -0.7]]), jnp.array([[-0.5, 0.2]])
    a, lp = sample(jax.random.PRNGKey(1), mean, log_std)
    u = jnp.arctanh(a)
    ref = jax.scipy.stats.norm.logpdf(u, mean, jnp.exp(log_std)).sum(-1) - jnp.log(1 - a**2).sum(-1)
    np.testing.assert_allclose(lp, ref, rtol=1e-4, atol=1e-4)


def test_td_target_terminated_removes_bootstrap():
    r = jnp.array([1.0, 1.0, -2.0])
    term = jnp.array([0.0, 1.0, 1.0])
    next_q = jnp.array([10.0, 10.0, 100.0])
    np.testing.assert_allclose(td_target(r, term, next_q, 0.9), [1.0 + 9.0, 1.0, -2.0], rtol=1e-6)
    # Gradient does not flow through the target.
    g = jax.grad(lambda q: td_target(r, term, q, 0.9).sum())(next_q)
    np.testing.assert_array_equal(g, 0.0)


def test_critic_loss_falls_on_fixed_batch():
    critic, tx = DoubleCritic((64, 64)), optax.adam(1e-3)
    state0 = jax.jit(init_critic_state, static_argnums=(0, 1, 3, 4))(critic, tx, jax.random.PRNGKey(0), OBS, ACT)
    b = random_batch(jax.random.PRNGKey(1), batch=64)
    target = td_target(b.reward, b.terminated, jnp.ones_like(b.reward), 0.99)

    @jax.jit
    def run(state):
        first = critic_loss(critic.apply(state.params, b.obs, b.action), target)
        state = jax.lax.fori_loop(0, 300, lambda i, s: critic_step(critic, tx, s, b.obs, b.action, target)[0], state)
        return state, first, critic_loss(critic.apply(state.params, b.obs, b.action), target)

    state, first, final = run(state0)
    assert float(final) < 0.1 * float(first)
    # critic_step leaves the targets alone (polyak is separate).
    for a, c in zip(jax.tree.leaves(state0.target_params), jax.tree.leaves(state.target_params)):
        np.testing.assert_array_equal(a, c)


def test_critic_loss_value():
    q = jnp.array([[1.0, 2.0], [3.0, 4.0]])  # two critics, batch of two
    np.testing.assert_allclose(critic_loss(q, jnp.array([1.0, 1.0])), 0.5 + 6.5)


def test_polyak():
    target = {"w": jnp.zeros(3), "b": jnp.ones(())}
    params = {"w": jnp.full(3, 2.0), "b": jnp.zeros(())}
    new = polyak(target, params, 0.25)
    np.testing.assert_allclose(new["w"], 0.5)
    np.testing.assert_allclose(new["b"], 0.75)
    copied = polyak(target, params, 1.0)
    np.testing.assert_array_equal(copied["w"], params["w"])


def test_update_applies_polyak_to_targets(agent, update, state0):
    state = state0
    new, _ = update(state, random_batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2))
    expect = polyak(state.critic.target_params, new.critic.params, SMALL.tau)
    for a, b in zip(jax.tree.leaves(expect), jax.tree.leaves(new.critic.target_params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert isinstance(new.critic, CriticState)


TINY = SACConfig(actor_hidden_dims=(16, 16), critic_hidden_dims=(16, 16))


@pytest.fixture(scope="module")
def tiny_state():
    """A fresh TINY state, shared by configs that differ only in what `update` reads (its init compiles once)."""
    return SAC(TINY, OBS, ACT).init(jax.random.PRNGKey(0))


@pytest.mark.parametrize("target_entropy", [None, 3.0 * ACT])
def test_temperature_step_moves_log_alpha_against_the_entropy_gap(tiny_state, target_entropy):
    """α's loss is log α · (H − H_target) (SAC v2, stop-gradient on H): its gradient is H − H_target, so one Adam step
    moves log α by −lr · sign(H − H_target) (Adam's first step is lr · sign(g)). A fresh actor's entropy (≈ −0.4
    nats) is above the default target −action_dim: log α falls; below a target of +3·action_dim: log α rises."""
    agent = SAC(dataclasses.replace(TINY, target_entropy=target_entropy), OBS, ACT)
    state = tiny_state._replace(log_alpha=jnp.float32(math.log(0.5)))
    new, metrics = jax.jit(agent.update)(state, random_batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2))
    gap = float(metrics["entropy"]) - agent.target_entropy
    assert abs(gap) > 1.0  # the premise: the entropy is well above (default) or well below (+9) the target
    assert float(metrics["alpha"]) == pytest.approx(0.5)  # α used in this update: the one before the step
    assert float(new.log_alpha) == pytest.approx(math.log(0.5) - np.sign(gap) * TINY.alpha_lr, abs=1e-6)


@pytest.mark.parametrize("backup_entropy", [True, False])
def test_td_target_has_the_entropy_backup(tiny_state, backup_entropy):
    """The critic's target is y = r + γ (1 − terminated) (min_k Q̄_k(s′, a′) − α log π(a′|s′)), a′ ∼ π(·|s′) (without
    the α log π term when `backup_entropy` is off). The update does not return y, but its `critic_loss` is the
    pre-step MSE Σ_k mean_B (Q_k(s, a) − y)², so it pins y: here computed by hand in float64 from the same a′
    (the update draws it with the first half of `jax.random.split(key)`)."""
    gamma, alpha = 0.9, 2.0
    agent = SAC(dataclasses.replace(TINY, discount=gamma, backup_entropy=backup_entropy), OBS, ACT)
    state, key = tiny_state._replace(log_alpha=jnp.float32(math.log(alpha))), jax.random.PRNGKey(2)
    b = random_batch(jax.random.PRNGKey(1), batch=64)
    assert 0 < float(b.terminated.sum()) < 64  # both kinds of transition
    _, metrics = jax.jit(agent.update)(state, b, key)

    @jax.jit
    def networks(state):  # a′ and log π(a′|s′), Q̄_k(s′, a′), and the online Q_k(s, a) before the step
        next_action, next_log_prob = tanh_gaussian_sample(jax.random.split(key)[0],
                                                          *agent.actor.apply(state.actor_params, b.next_obs))
        return (next_log_prob, agent.critic.apply(state.critic.target_params, b.next_obs, next_action),
                agent.critic.apply(state.critic.params, b.obs, b.action))

    log_pi, q_bar, q = (np.asarray(x, np.float64) for x in networks(state))
    r, term, q_bar = np.asarray(b.reward, np.float64), np.asarray(b.terminated, np.float64), q_bar.min(0)
    soft = q_bar - alpha * log_pi

    def loss(y):
        return ((q - y) ** 2).mean(axis=1).sum()

    right, wrong = (soft, q_bar) if backup_entropy else (q_bar, soft)
    assert float(metrics["critic_loss"]) == pytest.approx(loss(r + gamma * (1 - term) * right), rel=1e-5)
    # the check can tell the alternatives apart: the other backup, α log π with the wrong sign, no (1 − terminated)
    for y in (r + gamma * (1 - term) * wrong, r + gamma * (1 - term) * (q_bar + alpha * log_pi), r + gamma * right):
        assert abs(loss(y) - float(metrics["critic_loss"])) > 1e-3 * float(metrics["critic_loss"])


@pytest.mark.parametrize(
    "field, value",
    [
        ("actor_lr", 0.0),
        ("critic_lr", -1e-3),
        ("alpha_lr", 0.0),
        ("discount", 0.0),
        ("discount", 1.5),
        ("tau", 0.0),
        ("tau", 1.1),
        ("init_alpha", 0.0),
        ("actor_hidden_dims", ()),
        ("critic_hidden_dims", (64, -1)),
        ("activation", "nope"),
        ("num_qs", 0),
        ("log_std_min", 3.0),
        ("best_of_n", 0),
        ("target_entropy", float("nan")),
    ],
)
def test_bad_config_raises(field, value):
    with pytest.raises(ValueError, match=field):
        SACConfig(**{field: value})


def test_bad_dims_raise():
    with pytest.raises(ValueError, match="action_dim"):
        SAC(SACConfig(), 3, 0)
    with pytest.raises(ValueError, match="obs_dim"):
        SAC(SACConfig(), -1, 2)


def test_learns_contextual_bandit():
    """One-step bandit: obs ~ U[-1,1]², reward = −‖a − 0.5·obs‖², terminated = 1; fixed dataset of random actions."""
    n_data, (obs_dim, act_dim) = 4096, BANDIT_DIMS
    k_obs, k_act, k_init, k_train, k_eval = jax.random.split(jax.random.PRNGKey(0), 5)
    obs = jax.random.uniform(k_obs, (n_data, obs_dim), minval=-1.0, maxval=1.0)
    act = jax.random.uniform(k_act, (n_data, act_dim), minval=-1.0, maxval=1.0)

    def reward(o, a):
        return -jnp.sum((a - 0.5 * o) ** 2, axis=-1)

    data = Batch(obs, act, reward(obs, act), obs, jnp.ones(n_data))
    agent = SAC(SMALL, obs_dim, act_dim)
    state0 = agent.init(k_init)
    state, metrics = train(agent, state0, data, k_train, 1500)
    test_obs = jax.random.uniform(k_eval, (1024, obs_dim), minval=-1.0, maxval=1.0)
    r0 = float(reward(test_obs, agent.act(state0, k_eval, test_obs, "single")).mean())
    r1 = float(reward(test_obs, agent.act(state, k_eval, test_obs, "single")).mean())
    r_best = float(reward(test_obs, agent.act(state, k_eval, test_obs, "best_of_n")).mean())
    assert np.isfinite(float(metrics["critic_loss"]))
    print(f"bandit: init {r0:.3f}, trained {r1:.3f}, best-of-n {r_best:.3f}")
    assert r1 > r0 + 0.05, (r0, r1)
    assert r1 > -0.05, (r0, r1)  # optimum is 0; random actions score ≈ −0.83
    assert r_best > -0.15, r_best
