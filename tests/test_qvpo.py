"""The `qvpo` preset as the authors' flow-rl port has it (qvpo.py): the best candidate weighted by its advantage,
the uniform-action term weighted by that advantage, the best-of-k TD target and a best-of-32 evaluation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simpo.agents.simpo_agent import SiMPO, SiMPOConfig
from simpo.train import default_config
from simpo.weighting import best_advantage_weights
from test_train import TINY_POLICY, random_batch


def qvpo_agent(**kw) -> SiMPO:
    config = dataclasses.replace(default_config("qvpo").agent, policy=TINY_POLICY, num_candidates=4,
                                 critic_hidden_dims=(32, 32), **kw)
    return SiMPO(config, obs_dim=5, action_dim=2)


def test_best_advantage_weights_put_the_advantage_on_the_best_candidate():
    q = jnp.array([[1.0, 3.0, 2.0, 0.0], [5.0, 5.0, -1.0, 3.0]])
    expected = [[0.0, 1.5, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]]  # max − mean; ties: the first (argmax)
    np.testing.assert_allclose(best_advantage_weights(q), expected)
    np.testing.assert_allclose(jax.jit(best_advantage_weights)(q[None]), np.asarray(expected)[None])
    assert float(best_advantage_weights(jnp.ones((1, 4))).sum()) == 0.0  # no advantage, no weight


@pytest.mark.parametrize("env,k", [("HalfCheetah-v5", 4), ("Hopper-v5", 1), ("Walker2d-v5", 2)])
def test_qvpo_preset_follows_the_port(env, k):
    for preset in ("paper", "fast"):
        c = default_config("qvpo", preset, env).agent
        assert (c.weighting, c.temperature.target, c.target_candidates, c.eval_candidates) == \
            ("best_advantage", "fixed", k, 32)
        assert (c.old_policy_interval, c.candidate_noise, c.uniform_actions, c.uniform_weight) == (1, 0.0, 10, 0.01)
        assert default_config("simpo", preset, env).agent.target_candidates == 1


def test_uniform_term_is_weighted_by_the_states_advantage():
    """The port weights each uniform action by entropy_coef × the state's advantage, so the whole actor loss is
    linear in the weights; an unweighted uniform term would not double with them."""
    agent, key = qvpo_agent(), jax.random.PRNGKey(0)
    params = agent.init(key).actor_params
    k_obs, k_act, k_q = jax.random.split(jax.random.PRNGKey(1), 3)
    obs = jax.random.normal(k_obs, (8, 5))
    actions = jax.random.uniform(k_act, (8, 4, 2), minval=-1.0, maxval=1.0)
    w = best_advantage_weights(jax.random.normal(k_q, (8, 4)))
    loss = lambda agent, w: float(agent.actor_value_and_grad(params, key, obs, actions, w)[0][0])  # noqa: E731
    assert loss(agent, 2.0 * w) == pytest.approx(2.0 * loss(agent, w), rel=1e-5)
    assert loss(agent, w) > loss(qvpo_agent(uniform_weight=0.0), w) > 0  # the term is there


def test_uniform_actions_are_drawn_from_the_whole_box():
    """QVPO's "entropy" actions are U[−1, 1]^d (SPEC §5, §9: the flow-rl port's [0, 1) is a bug): over 20k draws they
    take both signs, reach near both ends, stay in the box, and have U[−1, 1]'s mean 0 and variance 1/3."""
    agent = qvpo_agent()
    obs, actions = jnp.zeros((1000, 5)), jnp.zeros((1000, 4, 2))
    draws = agent.actor_draws(jax.random.PRNGKey(0), obs, actions)
    u = np.asarray(draws["uniform"])
    assert u.shape == (1000, 10, 2)  # uniform_actions = 10 per state, action_dim 2
    assert u.min() < -0.9 and u.max() > 0.9 and np.all(np.abs(u) <= 1.0)
    assert abs(u.mean()) < 0.02 and u.var() == pytest.approx(1.0 / 3.0, abs=0.01)  # [0, 1): mean 0.5, var 1/12
    assert (u < 0).mean() == pytest.approx(0.5, abs=0.02)
    assert "uniform" not in qvpo_agent(uniform_weight=0.0).actor_draws(jax.random.PRNGKey(0), obs, actions)


def test_stage2_over_slices_of_the_batch_is_the_whole_batchs_up_to_rounding():
    """`matching_slice_rows` splits Stage 2 (here with QVPO's uniform term: 4 + 10 rows per state) into slices of the
    batch; loss, metrics, gradient and the whole update stay those of the unsliced batch, up to float rounding."""
    whole, sliced = qvpo_agent(matching_slice_rows=0), qvpo_agent(matching_slice_rows=28)  # 2 states per slice
    key, batch = jax.random.PRNGKey(0), random_batch(jax.random.PRNGKey(1), batch=8)
    state = whole.init(key)
    actions = jax.random.uniform(jax.random.PRNGKey(2), (8, 4, 2), minval=-1.0, maxval=1.0)
    w = best_advantage_weights(jax.random.normal(jax.random.PRNGKey(3), (8, 4)))
    args = (state.actor_params, key, batch.obs, actions, w)
    assert "scan" in str(jax.make_jaxpr(sliced.actor_value_and_grad)(*args))  # 4 slices, one after another
    assert "scan" not in str(jax.make_jaxpr(whole.actor_value_and_grad)(*args))
    def same_to_rounding(a, b):  # leaf by leaf, relative to each leaf's scale
        assert jax.tree.structure(a) == jax.tree.structure(b)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            assert float(jnp.max(jnp.abs(x - y))) <= 1e-5 * float(jnp.max(jnp.abs(x))), (x, y)

    same_to_rounding(jax.jit(whole.actor_value_and_grad)(*args), jax.jit(sliced.actor_value_and_grad)(*args))
    update = jax.jit(sliced.update)
    same_to_rounding(jax.jit(whole.update)(state, batch, key), update(state, batch, key))
    # and under the seed axis (`--seeds`, vmap): each seed's sliced update is its own
    keys = jax.random.split(key, 2)
    states = jax.vmap(sliced.init)(keys)
    stacked = jax.jit(jax.vmap(sliced.update, in_axes=(0, None, 0)))(states, batch, keys)
    for i in range(2):
        same_to_rounding(update(jax.tree.map(lambda x: x[i], states), batch, keys[i]),
                         jax.tree.map(lambda x: x[i], stacked))


def test_td_target_takes_the_best_of_k_by_min_target_q():
    agent, key = qvpo_agent(target_candidates=3), jax.random.PRNGKey(2)
    state = agent.init(key)
    obs = jax.random.normal(jax.random.PRNGKey(3), (6, 5))
    chosen = agent.best_of(state.actor_params, state.critic.target_params, key, obs, 3)
    samples = agent.policy.sample(state.actor_params, key, (6, 3), cond=obs[:, None, :])
    q = agent.critic.apply(state.critic.target_params, obs[:, None, :], samples).min(axis=0)
    np.testing.assert_array_equal(chosen, samples[jnp.arange(6), jnp.argmax(q, axis=-1)])
    assert len({tuple(np.round(a, 6)) for a in np.asarray(samples[0])}) == 3  # three distinct candidates
    # the update uses it: another TD target than the one-sample update's, from the same state and key
    batch = random_batch(jax.random.PRNGKey(4))
    one = qvpo_agent(target_candidates=1)
    loss_k = agent.update(state, batch, key)[1]["critic_loss"]
    loss_1 = one.update(state, batch, key)[1]["critic_loss"]
    assert float(loss_k) != float(loss_1)


def test_best_advantage_needs_a_fixed_temperature():
    with pytest.raises(ValueError, match="best_advantage has no temperature; set --agent.temperature.target fixed"):
        SiMPOConfig(weighting="best_advantage")


def test_ema_actor_draws_the_td_target_and_follows_the_actor():
    """`target_policy_tau` > 0 (the port's EMA actor): the critic step samples next actions from the EMA copy, which
    then moves towards the updated actor at that rate; 0 keeps no copy and samples from the current actor."""
    tau, key, batch = 0.05, jax.random.PRNGKey(5), random_batch(jax.random.PRNGKey(6))
    ema, plain = qvpo_agent(target_policy_tau=tau), qvpo_agent()
    state = ema.init(key)
    assert plain.init(key).target_actor_params is None
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), state.target_actor_params,
                                     state.actor_params))  # starts as a copy
    other = plain.init(jax.random.PRNGKey(7)).actor_params  # an EMA actor unlike the current one
    state = state._replace(target_actor_params=other)
    new, _ = jax.jit(ema.update)(state, batch, key)
    # the critic step is the one the current-actor agent takes when its actor is the EMA copy
    ref, _ = jax.jit(plain.update)(state._replace(actor_params=other, target_actor_params=None), batch, key)
    close = lambda x, y: jax.tree.all(jax.tree.map(  # noqa: E731
        lambda a, b: bool(jnp.allclose(a, b, rtol=1e-6, atol=1e-7)), x, y))
    assert close(new.critic, ref.critic)
    assert close(new.target_actor_params, jax.tree.map(lambda t, p: (1 - tau) * t + tau * p, other, new.actor_params))
    with pytest.raises(ValueError, match="target_policy_tau must be in \\[0, 1\\]"):
        SiMPOConfig(target_policy_tau=-0.1)
