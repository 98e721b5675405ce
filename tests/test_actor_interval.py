"""`actor_interval` (issue #5, item 4): the actor side of a SiMPO update (Stage 1, Stage 2, the λ step) runs on every
k-th update only; the critic, its targets and the π_old schedule run on every update. k = 1 is the old update.
Also the actor side's λ state under `--weighting auto`: one λ per menu scheme."""

import dataclasses
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simpo.advisor import AUTO_EMA_DECAY, AUTO_MENUS, choose_scheme
from simpo.agents.critic import critic_step, polyak, td_target
from simpo.agents.simpo_agent import SiMPO, SiMPOConfig
from simpo.temperature import temperature_value, update_temperature, weight_diagnostics
from simpo.weighting import compute_weights
from simpo.train import default_config, train
from test_train import KL_1, TINY_POLICY, random_batch, read_rows, tiny


def same(a, b) -> bool:
    return jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b))


def agent_with(k: int, weighting: str = "exp", **kw) -> SiMPO:
    config = dataclasses.replace(default_config("simpo").agent, weighting=weighting, num_candidates=4,
                                 temperature=KL_1,
                                 policy=TINY_POLICY, actor_interval=k, **kw)
    return SiMPO(config, obs_dim=5, action_dim=2)


def reference_update(agent: SiMPO, state, batch, key):
    """The update as it was before `actor_interval` existed (every step does everything), and before Stage 2 drew
    its random numbers outside the loss (to slice the batch: `matching_slice_rows`)."""
    c = agent.config
    k_next, k_cand, k_actor = jax.random.split(key, 3)
    next_action = agent.policy.sample(state.actor_params, k_next, batch.next_obs.shape[:-1], batch.next_obs)
    next_q = agent.critic.apply(state.critic.target_params, batch.next_obs, next_action).min(axis=0)
    target = td_target(batch.reward, batch.terminated, next_q, c.discount)
    critic, critic_metrics = critic_step(agent.critic, agent.critic_tx, state.critic, batch.obs, batch.action, target)
    actions, q = agent.candidates(state, k_cand, batch.obs)
    weights, auto_skew, auto_metrics, _ = agent.weights(state, q)
    k_match = jax.random.split(k_actor, 3)[0]  # the matching loss draws its own t and noise from the key
    (loss, match), grads = jax.value_and_grad(agent.policy.loss, has_aux=True)(
        state.actor_params, k_match, actions, weights, batch.obs[:, None, :])
    updates, opt_state = agent.actor_tx.update(grads, state.actor_opt_state, state.actor_params)
    actor = optax.apply_updates(state.actor_params, updates)
    temperature, temp_metrics = update_temperature(c.temperature, state.temperature, weights)
    critic = critic._replace(target_params=polyak(critic.target_params, critic.params, c.tau))
    step = state.step + 1
    old = jax.tree.map(lambda n, o: jnp.where(step % c.old_policy_interval == 0, n, o), actor, state.old_actor_params)
    metrics = {**critic_metrics, "actor_loss": loss, "matching_mse": match["mse"], "clip_fraction": match["clip_frac"],
               "candidate_q_mean": q.mean(), "improvement": jnp.mean(jnp.sum(weights * q, axis=-1) - q.mean(axis=-1)),
               **weight_diagnostics(weights), **temp_metrics, **auto_metrics}
    return type(state)(actor, old, opt_state, critic, temperature, step, auto_skew), metrics


@pytest.mark.parametrize("weighting", ["exp"])  # the default scheme; `auto`'s branches: the next test
def test_interval_one_is_the_old_update_bit_for_bit(weighting):
    agent = agent_with(1, weighting, old_policy_interval=2)
    new, ref = jax.jit(agent.update), jax.jit(lambda s, b, k: reference_update(agent, s, b, k))
    s_new = s_ref = agent.init(jax.random.PRNGKey(0))
    for i in range(4):
        batch, key = random_batch(jax.random.PRNGKey(10 + i)), jax.random.PRNGKey(i)
        (s_new, m_new), (s_ref, m_ref) = new(s_new, batch, key), ref(s_ref, batch, key)
        assert same(s_new, s_ref) and same(m_new, m_ref)
        assert not same(s_new.actor_params, agent.init(jax.random.PRNGKey(0)).actor_params)


@pytest.mark.parametrize("weighting", ["auto", "auto_exp"])  # also the EMA and the choice carried over skipped updates
def test_actor_side_runs_on_every_kth_update_only(weighting):
    k2, k1 = agent_with(2, weighting, old_policy_interval=3), agent_with(1, weighting, old_policy_interval=3)
    up2, up1 = jax.jit(k2.update), jax.jit(k1.update)
    state = k2.init(jax.random.PRNGKey(0))
    assert same(state._replace(actor_metrics=None), k1.init(jax.random.PRNGKey(0)))  # + the last actor metrics
    shown = jax.tree.map(jnp.zeros_like, state.actor_metrics)  # what a skipped update reports: zeros at first
    for i in range(6):
        batch, key = random_batch(jax.random.PRNGKey(10 + i)), jax.random.PRNGKey(i)
        (new, m), (ref, m_ref) = up2(state, batch, key), up1(state._replace(actor_metrics=None), batch, key)
        assert set(m) == set(m_ref) | {"actor_updated"}
        assert int(new.step) == i + 1
        assert same(new.critic, ref.critic)  # the critic and its targets: every update
        actor_side = lambda s: (s.actor_params, s.actor_opt_state, s.temperature, s.auto_skew, s.auto_steep)  # noqa: E731
        if (i + 1) % 2 == 0:  # the 2nd, 4th, 6th update: the full update, as with k = 1
            assert float(m["actor_updated"]) == 1.0
            m_ref = {k: v for k, v in m_ref.items() if k != "weighting/auto_steep_share"}  # a share of k's updates
            assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.allclose(a, b, rtol=1e-6, atol=1e-7)),
                                             (actor_side(new), {k: m[k] for k in m_ref}), (actor_side(ref), m_ref)))
            assert not same(new.actor_params, state.actor_params)
            shown = {k: m[k] for k in new.actor_metrics}
        else:
            assert float(m["actor_updated"]) == 0.0
            assert same(actor_side(new), actor_side(state))
            assert same({k: m[k] for k in shown}, shown)  # the last actor update's metrics, reported again
            if i > 0:  # λ and the auto EMA only move on actor updates: what is reported again is current
                lam = jnp.exp(state.temperature.log_temperature)  # auto: one λ per menu scheme, the chosen one's
                assert float(m["temperature"]) == float(lam[choose_scheme(state.auto_skew)] if lam.ndim else lam)
                if weighting.startswith("auto"):
                    assert float(m["weighting/auto_skew"]) == float(state.auto_skew)
                    assert int(m["weighting/auto_choice"]) == int(choose_scheme(state.auto_skew))
        # π_old keeps counting updates: refreshed (to the current actor) after the 3rd and 6th
        assert same(new.old_actor_params, new.actor_params if (i + 1) % 3 == 0 else state.old_actor_params)
        assert all(bool(jnp.isfinite(v)) for v in m.values())
        state = new


def test_auto_tunes_each_menu_schemes_temperature_on_its_own_weights():
    """`--weighting auto_exp`: λ is a (2,) state, one per menu scheme; after an update, each entry is what
    `update_temperature` gives on that scheme's weights at its own λ, and the logged λ is the chosen scheme's."""
    agent = agent_with(1, "auto_exp")
    state = agent.init(jax.random.PRNGKey(0))
    state = state._replace(temperature=state.temperature._replace(
        log_temperature=jnp.log(jnp.asarray([0.01, 0.5]))))  # exp and linear far apart, as tuned on the bandits
    batch, key = random_batch(jax.random.PRNGKey(10)), jax.random.PRNGKey(1)
    new, m = jax.jit(agent.update)(state, batch, key)
    _, q = agent.candidates(state, jax.random.split(key, 3)[1], batch.obs)
    lam = temperature_value(state.temperature)
    for i, scheme in enumerate(AUTO_MENUS["auto_exp"]):
        alone = jax.tree.map(lambda x: x[i], state.temperature)
        expected, _ = update_temperature(agent.config.temperature, alone, compute_weights(q, scheme, lam[i]))
        np.testing.assert_allclose(new.temperature.log_temperature[i], expected.log_temperature, rtol=1e-5)
        assert float(m[f"temperature/{scheme}"]) == pytest.approx(float(jnp.exp(new.temperature.log_temperature[i])))
    choice = int(m["weighting/auto_choice"])
    assert float(m["temperature"]) == float(jnp.exp(new.temperature.log_temperature[choice]))


@pytest.mark.parametrize("k", [1, 2])
def test_auto_logs_the_share_of_actor_updates_on_the_steep_scheme(k):
    """`weighting/auto_steep_share` is the running mean of `weighting/auto_choice` over the actor updates so far
    (a spell on `linear` between two logs shows in it), and the count is carried over skipped updates."""
    agent = agent_with(k, "auto_exp")
    state, update, choices = agent.init(jax.random.PRNGKey(0)), jax.jit(agent.update), []
    for i in range(8 * k):
        batch = random_batch(jax.random.PRNGKey(10 + i))
        batch = batch._replace(obs=batch.obs * (1.0 if i < 4 * k else -3.0))  # move the landscape midway
        state, m = update(state, batch, jax.random.PRNGKey(i))
        if (i + 1) % k == 0:
            choices.append(int(m["weighting/auto_choice"]))
        assert int(state.auto_steep) == sum(choices)
        if choices:  # a skipped update reports the last actor update's share again
            assert float(m["weighting/auto_steep_share"]) == pytest.approx(sum(choices) / len(choices))
    assert 0 < sum(choices) < len(choices)  # both schemes were used: the share is neither 0 nor 1


def test_auto_exp_held_on_exp_is_the_exp_update_bit_for_bit():
    """While its EMA skew stays negative, `auto_exp` trains exactly as fixed `exp` (DPMD): computing the other
    scheme's weights and λ changes nothing at these sizes. At HalfCheetah's, float rounding in the vmapped λ step can
    differ by an ulp and runs then drift (docs/advisor.md); beyond that, differences come from updates that chose linear."""
    auto, fixed = agent_with(1, "auto_exp"), agent_with(1, "exp")
    s_auto = auto.init(jax.random.PRNGKey(0))._replace(auto_skew=jnp.asarray(-100.0))  # far below 0: stays there
    s_exp = fixed.init(jax.random.PRNGKey(0))
    up_auto, up_exp = jax.jit(auto.update), jax.jit(fixed.update)
    for i in range(4):
        batch, key = random_batch(jax.random.PRNGKey(10 + i)), jax.random.PRNGKey(i)
        (s_auto, m), (s_exp, _) = up_auto(s_auto, batch, key), up_exp(s_exp, batch, key)
        assert int(m["weighting/auto_choice"]) == 0 and int(s_auto.auto_steep) == 0
        assert same((s_auto.actor_params, s_auto.critic), (s_exp.actor_params, s_exp.critic))
        assert same(s_auto.temperature.log_temperature[0], s_exp.temperature.log_temperature)


@pytest.mark.parametrize("k", [1, 2])
def test_auto_hold_keeps_the_flat_scheme_for_its_first_actor_updates(k):
    """`auto_hold` = 3: the first 3 actor updates use the menu's flat scheme (choice 0) although the EMA says steep;
    the 4th follows the rule. The EMA itself runs through the hold: each actor update mixes in its batch skew."""
    held = agent_with(k, "auto_exp", auto_hold=3)
    state = held.init(jax.random.PRNGKey(0))._replace(auto_skew=jnp.asarray(100.0))  # far above 0: steep throughout
    update = jax.jit(held.update)
    for i in range(4 * k):
        new, m = update(state, random_batch(jax.random.PRNGKey(10 + i)), jax.random.PRNGKey(i))
        if (i + 1) % k == 0:
            assert int(choose_scheme(new.auto_skew)) == 1  # the rule alone says steep on every update
            assert int(m["weighting/auto_choice"]) == (0 if (i + 1) // k <= 3 else 1)
            expected = AUTO_EMA_DECAY * float(state.auto_skew) + (1 - AUTO_EMA_DECAY) * float(m["weighting/batch_skew"])
            assert float(new.auto_skew) == pytest.approx(expected, rel=1e-5)
        else:
            assert float(new.auto_skew) == float(state.auto_skew)
        state = new
    assert int(state.auto_steep) == 1


@pytest.mark.parametrize("weighting, hold, message", [("auto", -1, "auto_hold must be an int >= 0"),
                                                      ("auto", 2.5, "auto_hold must be an int >= 0"),
                                                      ("exp", 10, "auto_hold applies to --weighting auto")])
def test_auto_hold_bad_values(weighting, hold, message):
    with pytest.raises(ValueError, match=message):
        SiMPOConfig(weighting=weighting, auto_hold=hold)


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_actor_interval_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="actor_interval"):
        SiMPOConfig(actor_interval=bad)


def test_training_with_an_interval_resumes_exactly(tmp_path):
    """k = 4 with a checkpoint after 50 updates (not a multiple of 4): a run resumed from it equals the straight run."""
    config = tiny("simpo", "Pendulum-v1", tmp_path / "straight", keep_checkpoints=5)
    config = dataclasses.replace(config, agent=dataclasses.replace(config.agent, actor_interval=4))
    straight = train(config)
    rows = read_rows(straight.run_dir)
    assert [float(r["actor_updated"]) for r in rows] == [0.0, 1.0]  # updates 50 and 200 of the run
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(straight.run_dir, resumed_dir)
    shutil.rmtree(resumed_dir / "checkpoints" / "300")
    resumed = train(dataclasses.replace(config, run_dir=resumed_dir), resume=True)
    assert same(straight.state, resumed.state) and same(straight.buffer, resumed.buffer)
    drop = {"wall_time_s", "train_sps"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in read_rows(resumed_dir)] == \
        [{k: v for k, v in r.items() if k not in drop} for r in rows]
