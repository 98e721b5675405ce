"""The weighting advisor: measure the candidate-Q landscape and pick a Stage-1 scheme (issue 6, part 3).

The paper's guideline (SPEC §7, Fig. 5 caption): *square* weighting wins on **flat** reward landscapes, *linear*
on **steep** ones, both beat *exp*; negative weights help. The advisor turns "flat" and "steep" into numbers
measured where the weights act: the N candidate Q-values of each state (SPEC §2).

Statistics (`landscape_stats`), per state over its N candidates, with q standardised by the state's own mean and
std (so a positive affine change of the reward or of Q changes nothing), then averaged over states:

- ``skew``       E[z³]: < 0 when the top is a plateau (many candidates bunched near the max, a long lower tail:
                 flat); > 0 when a few candidates stand far above the bulk (steep).
- ``top_gap``    (q_max − q_2nd) / std: how far the best candidate stands above the runner-up.
- ``top_z``      (q_max − mean) / std.
- ``near_max``   the fraction of candidates within ``NEAR_MAX_EPS`` std of the max.
- ``kurtosis``   E[z⁴] − 3: peakedness / tail weight.
States whose candidates all have the same Q (std ≈ 0) count as perfectly flat (skew 0, gap 0, near_max 1).
`advise` also reports ``reward_skew``, the skew of the (transformed) rewards in the warm-up buffer, for
information only: the rule does not read it.

**The rule** (`choose_scheme`, ONE jnp function used by `recommend` on the host and by ``--weighting auto`` /
``auto_exp`` inside the jitted update): steep (skew > ``STEEP_SKEW`` = 0) → the menu's steep scheme (``linear``),
otherwise its flat one. The threshold 0 is fixed a priori: it is the skew of any symmetric landscape (e.g. Gaussian
Q), where neither shape dominates; it was not tuned on the validation landscapes (docs/advisor.md). Two menus
(``AUTO_MENUS``): ``auto`` = (square, linear), the paper's guideline; ``auto_exp`` = (exp, linear), what the
bandits measured (``exp`` won the flat and broad bandits, by small margins). ``auto_exp`` failed its check on a
second held-out set while the menu shared one λ, and passed a pre-registered one on a third after each menu scheme
got its own λ (simpo.bandit.held_out, docs/advisor.md), so ``advise`` names it as the online option
(``ONLINE_WEIGHTING``).

**Where it is measured.** The statistic is read after early training, where the top is in view (``PROBE_EPOCHS``
epochs of ``PROBE_WEIGHTING`` on a bandit; `advise`'s short training run on an env): from the initial policy every
held-out bandit looks steep (it sits on the rising tail). The advice applies ``ADVICE_MENU`` = ``auto_exp``, the
online rule, to those statistics; this pairing was pre-registered with the fourth held-out set (docs/advisor.md).

Temperature: the authors' KL target for the env at their N = 64 (2.0; Hopper 2.5, Ant 1.5: simpo.presets.KL_TARGETS,
`reference_kl_for`) scaled by log N / log 64, so the weights are as concentrated relative to one-hot (KL ≈ log N) as
the authors' are; a scaled target the tuner cannot reach at N (`simpo.temperature.kl_reachable`) is refused.
Negative weights are a separate suggestion (a floor of −0.02 on signed linear weights, the best signed scheme of
docs/bandits.md) when candidates are jittered.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from simpo.temperature import kl_reachable, max_kl
from simpo.weighting import check_candidates

AUTO_MENUS = {  # weighting -> (flat, steep): the schemes `choose_scheme`'s index 0 and 1 select
    "auto": ("square", "linear"),  # the paper's guideline (SPEC §7)
    "auto_exp": ("exp", "linear"),  # measured: exp won the flat and broad bandits (docs/advisor.md), read off them
}
ONLINE_WEIGHTING = "auto_exp"  # passed its pre-registered check on the third held-out set (docs/advisor.md)
ADVICE_MENU = "auto_exp"  # the menu `recommend` applies by default: the online rule, on post-probe statistics
PROBE_EPOCHS = 50  # advise_bandit's early training before it measures (a quarter of the bandit's 200 epochs)
PROBE_WEIGHTING = "exp"  # the scheme of that early training (DPMD's)
_MENU_REASONS = {
    "auto": "paper guideline (SPEC §7, Fig. 5): {pick} weighting wins on {shape} landscapes; both square and linear "
            "beat exp",
    "auto_exp": "measured on the bandits (docs/advisor.md): exp won the flat and broad tops, by <= 0.003 regret, and "
                "linear most steep ones, where exp lost by up to 0.06 (the paper's guideline says square on flat "
                "tops; it won none of them); read after early training, this rule named the winner on 17 of 20 "
                "bandit rows with a decided one, 4 of 4 on the held-out set it was pre-registered on",
}
STEEP_SKEW = 0.0
NEAR_MAX_EPS = 0.25
AUTO_EMA_DECAY = 0.99  # per update, for --weighting auto
SIGNED_FLOOR = -0.02  # docs/bandits.md (N = 64): signed_linear floor −0.02 had the lowest regret on every jittered landscape
_REFERENCE_N, _REFERENCE_KL = 64, 2.0  # the authors' N and KL target (SPEC §5)
_AGENT_FIELDS = {"p": "power-p", "floor": "floor", "negative_mass": "negative-mass"}  # scheme spec key -> train flag


def landscape_stats(q: jax.Array) -> dict[str, jax.Array]:
    """Scale- and shift-free shape statistics of candidate Q-values ``q`` of shape (B, N), averaged over the B
    states (jnp only: works under jit). Needs N >= 2."""
    q = jnp.asarray(q, jnp.float32)
    if q.ndim != 2 or q.shape[-1] < 2:
        raise ValueError(f"q must have shape (B, N) with N >= 2 candidates, got {q.shape}")
    mean = q.mean(axis=-1, keepdims=True)
    std = q.std(axis=-1, keepdims=True)
    scale = jnp.maximum(jnp.max(jnp.abs(q), axis=-1, keepdims=True), 1.0)
    degenerate = std <= 1e-6 * scale  # all candidates equal (up to float32 round-off): flat
    z = jnp.where(degenerate, 0.0, (q - mean) / jnp.where(degenerate, 1.0, std))
    top2 = jax.lax.top_k(z, 2)[0]
    per_state = {
        "skew": jnp.mean(z**3, axis=-1),
        "kurtosis": jnp.where(degenerate[:, 0], 0.0, jnp.mean(z**4, axis=-1) - 3.0),
        "top_gap": top2[:, 0] - top2[:, 1],
        "top_z": top2[:, 0],
        "near_max": jnp.mean(z >= top2[:, :1] - NEAR_MAX_EPS, axis=-1),
    }
    return {k: jnp.mean(v) for k, v in per_state.items()}


def choose_scheme(skew: jax.Array) -> jax.Array:
    """THE rule: an index into a menu of AUTO_MENUS; 1 (its steep scheme, linear) if the landscape is steep
    (skew > STEEP_SKEW), else 0 (its flat scheme). Pure jnp, so the host advisor and the jitted auto-weighting
    apply the same function."""
    return jnp.where(jnp.asarray(skew) > STEEP_SKEW, 1, 0).astype(jnp.int32)


def kl_target_for(num_candidates: int, reference: float = _REFERENCE_KL) -> float:
    """The KL(w̃ ‖ uniform) target at N candidates: the authors' target at N = 64 (``reference``) scaled by
    log N / log 64. One-line ValueError if the tuner could never reach it at N (`simpo.temperature.kl_reachable`:
    at or above the KL of one-hot weights, which falls behind log N as N grows: 8.257 vs 8.318 at N = 4096), so a
    recommendation is always reachable; with the authors' targets (<= 3.0) that happens at no N <= 65536."""
    kl = reference * math.log(num_candidates) / math.log(_REFERENCE_N)
    if not kl_reachable(kl, num_candidates):
        raise ValueError(f"KL target {kl:.4g} = {reference:g} x log({num_candidates}) / log({_REFERENCE_N}) is "
                         f"unreachable with {num_candidates} candidates: the tuner's KL(weights || uniform) is at most "
                         f"{max_kl(num_candidates):.4f} there (one-hot weights); use a smaller reference KL")
    return kl


def reference_kl_for(env: str) -> float:
    """The authors' KL target for ``env`` at their N = 64, the reference `kl_target_for` scales:
    simpo.presets.KL_TARGETS["simpo"] (Hopper 2.5, Ant 1.5), else the `paper` preset's 2.0. Not the training
    preset's own target: `fast` (N = 8) drops Hopper's 2.5, unreachable at N = 8, for 2.0, which is no N = 64 figure."""
    from simpo.presets import KL_TARGETS, SIMPO_PRESETS  # lazy: presets -> agents.simpo_config -> this module

    return KL_TARGETS["simpo"].get(env, SIMPO_PRESETS["paper"].temperature.kl_target)


def signed_floor_for(num_candidates: int) -> float:
    """The signed_linear floor at N candidates: the bandits' −0.02 at N = 64 held at the same multiple of the
    uniform weight 1/N (−1.28/N), as the KL target is held relative to log N. Not validated at other N."""
    return SIGNED_FLOOR * _REFERENCE_N / num_candidates


@dataclass(frozen=True)
class Advice:
    """A recommendation: ``scheme`` + ``params`` for compute_weights, a KL target, and the reasoning."""

    scheme: str
    params: dict = field(default_factory=dict)
    kl_target: float = 2.0
    signed_alternative: str | None = None
    """A signed scheme spec (simpo.bandit.parse_scheme syntax) suggested on top, or None."""
    online: str = ONLINE_WEIGHTING
    """The `--weighting` that applies the rule online, every update (ONLINE_WEIGHTING)."""
    reasons: tuple[str, ...] = ()
    stats: dict = field(default_factory=dict)

    def flags(self, scheme: str | None = None) -> str:
        """The `simpo train` flags that apply this advice (or, with `scheme`, a scheme spec such as
        `signed_alternative` in its place)."""
        from simpo.bandit.study import parse_scheme

        name, params = parse_scheme(scheme or self.scheme)
        extra = "".join(f" --agent.{_AGENT_FIELDS[k]} {v:g}" for k, v in params.items())
        return f"--weighting {name}{extra} --agent.temperature.kl-target {self.kl_target:.3g}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"flags": self.flags()}


def _check_menu(menu: str) -> None:
    if menu not in AUTO_MENUS:
        raise ValueError(f"unknown menu {menu!r}; allowed: {', '.join(AUTO_MENUS)}")


def recommend(stats: dict, num_candidates: int = 64, jitter: float = 0.2, reference_kl: float = _REFERENCE_KL,
              menu: str = ADVICE_MENU) -> Advice:
    """Apply the rule with ``AUTO_MENUS[menu]`` to `landscape_stats` output; every reason quotes the measured
    number and its threshold. ``num_candidates`` is the N the weights will act on (for the KL target), ``jitter``
    the candidates' σ."""
    _check_menu(menu)
    stats = {k: float(v) for k, v in stats.items()}
    pick = AUTO_MENUS[menu][int(choose_scheme(stats["skew"]))]
    shape = "steep" if pick == "linear" else "flat"
    reasons = [
        f"skew of candidate Q = {stats['skew']:+.3f} {'>' if shape == 'steep' else '<='} {STEEP_SKEW:g}: the landscape "
        f"is {shape} at the top (top gap {stats['top_gap']:.2f} std, {100 * stats['near_max']:.0f}% of candidates "
        f"within {NEAR_MAX_EPS} std of the max, kurtosis {stats['kurtosis']:+.2f})",
        _MENU_REASONS[menu].format(pick=pick, shape=shape),
        f"online, --weighting {ONLINE_WEIGHTING} applies the same skew rule every update to an EMA of the batch's "
        "candidates (exp on flat tops, linear on steep ones, one λ each): it hit 11 of 21 bandit rows (3 of 4 on the "
        "third held-out set, against 2 for auto) with a mean loss of 0.0003 regret",
    ]
    kl = kl_target_for(num_candidates, reference_kl)
    reasons.append(f"KL target {kl:.3g} = {reference_kl:g} x log({num_candidates}) / log({_REFERENCE_N}): as concentrated, "
                   f"relative to one-hot (KL ≈ log N = {math.log(num_candidates):.2f}), as the authors' {reference_kl:g} at N = 64")
    signed = None
    if jitter > 0:
        floor = signed_floor_for(num_candidates)
        signed = f"signed_linear:floor={floor:.3g}"
        reasons.append(f"candidates are jittered (sigma = {jitter:g}): negative weights (try {signed}) had the lowest "
                       "regret on every jittered bandit landscape (docs/bandits.md; 16 of 16 in docs/advisor.md's "
                       "validation, 12 of them held out); the paper also finds they help")
        reasons.append(f"floor {floor:.3g} = {SIGNED_FLOOR:g} x {_REFERENCE_N} / {num_candidates}: the bandits' floor "
                       f"at N = {_REFERENCE_N}, as the same multiple ({SIGNED_FLOOR * _REFERENCE_N:g}) of the uniform "
                       "weight 1/N (not validated at other N)")
    return Advice(pick, {}, kl, signed, ONLINE_WEIGHTING, tuple(reasons), stats)


def _host_stats(q) -> dict[str, float]:
    return {k: float(v) for k, v in landscape_stats(jnp.asarray(q)).items()}


def advise_bandit(landscape: str, seed: int = 0, num_candidates: int = 64, groups: int = 16,
                  jitter: float = 0.2, probe_epochs: int = PROBE_EPOCHS, menu: str = ADVICE_MENU) -> Advice:
    """Advice for a bandit landscape (simpo.bandit.landscapes): Q is the known reward, evaluated on ``groups`` x
    ``num_candidates`` candidates plus the bandit's jitter, drawn from the policy after ``probe_epochs`` epochs of
    ``PROBE_WEIGHTING`` (simpo.bandit.run with its defaults, from this seed's pretrained policy), or with
    ``probe_epochs`` 0 from the initial policy (its clipped Gaussian)."""
    from simpo.bandit import get_landscape, run

    land = get_landscape(landscape)
    check_candidates("num_candidates", num_candidates, 2)
    if groups < 1 or jitter < 0 or probe_epochs < 0:
        raise ValueError(f"groups must be >= 1, jitter >= 0 and probe_epochs >= 0, got {groups}, {jitter}, "
                         f"{probe_epochs}")
    _check_menu(menu)  # before the probe's work
    shape = (groups, num_candidates, land.action_dim)
    if probe_epochs:
        res = run(land.reward_fn, land.action_dim, PROBE_WEIGHTING, epochs=probe_epochs, seed=seed,
                  max_reward=land.max_reward, init_mean=land.init_mean, init_std=land.init_std, jitter=jitter)
        k_sample, k_jitter = jax.random.split(jax.random.PRNGKey(seed + 1))
        actions = res.policy.sample(res.params, k_sample, shape[:2])
        actions = jnp.clip(actions + jitter * jax.random.normal(k_jitter, shape), -1, 1)
    else:
        rng = np.random.default_rng(seed)
        actions = np.clip(rng.normal(land.init_mean, land.init_std, shape), -1, 1)
        actions = jnp.asarray(np.clip(actions + jitter * rng.normal(size=shape), -1, 1), jnp.float32)
    q = land.reward_fn(actions.reshape(-1, land.action_dim)).reshape(groups, num_candidates)
    advice = recommend(_host_stats(q), num_candidates, jitter, reference_kl=1.0, menu=menu)
    where = (f"measured after {probe_epochs} epochs of {PROBE_WEIGHTING} (early training: from the initial policy "
             "every held-out bandit looks steep)" if probe_epochs else "measured at the initial policy")
    return dataclasses.replace(advice, reasons=(where, *advice.reasons))


def advise(env: str, warmup_steps: int = 1000, train_steps: int = 1000, seed: int = 0, reward_transform: str = "none",
           num_candidates: int = 64, batch: int = 256, run_dir: Path | None = None, preset: str = "fast",
           progress: bool = False, menu: str = ADVICE_MENU) -> Advice:
    """Advice for a training env: a short `simpo.train.train` run (``warmup_steps`` random steps, then
    ``train_steps`` steps with one update each), then ``num_candidates`` candidates from π_old (with the agent's
    jitter) for ``batch`` buffer states, scored by the critic; then `landscape_stats` + `recommend` (``menu``).

    The run goes to ``run_dir`` (kept) or a temporary directory (deleted)."""
    from simpo.buffer import buffer_sample
    from simpo.envs import env_spec, make_env
    from simpo.train import default_config, make_agent, train

    if env.startswith("playground:"):
        raise ValueError(f"advise runs on host envs (gymnasium ids, dmc:DOMAIN-TASK); {env} is a playground env, "
                         "which it does not support")
    check_candidates("num_candidates", num_candidates, 2)
    for name, value, least in (("warmup_steps", warmup_steps, 1), ("train_steps", train_steps, 0), ("batch", batch, 1)):
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
    _check_menu(menu)  # before the warm-up run
    config = default_config("simpo", preset, env)
    total = warmup_steps + train_steps
    config = dataclasses.replace(
        config, seed=seed, total_steps=total, warmup_steps=warmup_steps, reward_transform=reward_transform,
        batch_size=min(config.batch_size, warmup_steps), buffer_size=max(total, 1), eval_interval=total,
        eval_episodes=1, checkpoint_interval=total, log_interval=max(total, 1), progress=progress,
        run_dir=run_dir, overwrite=False)
    probe = make_env(env, seed, reward_transform, max_episode_steps=config.max_episode_steps)  # one-line bad env error
    obs_dim, action_dim = env_spec(probe)
    with tempfile.TemporaryDirectory(prefix="simpo-advise-") as tmp:
        if run_dir is None:
            config = dataclasses.replace(config, run_dir=Path(tmp) / "run")
        result = train(config)
    agent = make_agent(config, obs_dim, action_dim)
    # the measuring agent only draws and scores candidates (λ unused: no KL target to reach at this N)
    fixed = dataclasses.replace(agent.config.temperature, target="fixed")
    agent = dataclasses.replace(agent, config=dataclasses.replace(agent.config, num_candidates=num_candidates,
                                                                  temperature=fixed))
    key = jax.random.PRNGKey(seed + 1)
    states = buffer_sample(result.buffer, key, batch).obs
    with jax.default_matmul_precision(config.matmul_precision):  # as the run was trained
        _, q = jax.jit(agent.candidates)(result.state, jax.random.fold_in(key, 1), states)
    # the KL target is for the N the weights will act on in training (the preset's), not the measuring N; its
    # reference is the authors' N = 64 target for the env, not the preset's own (at fast's N = 8 Hopper's is 2.0)
    c = config.agent
    stats = _host_stats(q)
    rewards = np.asarray(result.buffer.reward)[: int(result.buffer.size)]
    stats["reward_skew"] = _skew(rewards)  # information only: the rule reads the candidate-Q skew
    return recommend(stats, c.num_candidates, c.candidate_noise, reference_kl=reference_kl_for(env), menu=menu)


def _skew(x: np.ndarray) -> float:
    """E[z³] of a sample (0 for a constant one)."""
    std = float(np.std(x))
    return float(np.mean(((x - np.mean(x)) / std) ** 3)) if std > 1e-12 * max(1.0, float(np.max(np.abs(x)))) else 0.0


def format_advice(advice: Advice, title: str) -> str:
    """Human-readable: the statistics, the recommendation, the flags and the reasoning."""
    lines = [f"landscape of {title}:"]
    lines += [f"  {k:<10} {v:+.4f}" for k, v in advice.stats.items()]
    lines.append(f"recommendation: {advice.scheme}  (KL target {advice.kl_target:.3g})")
    lines.append(f"  simpo train {advice.flags()}")
    lines.append(f"  or online: simpo train --weighting {advice.online} "
                 f"--agent.temperature.kl-target {advice.kl_target:.3g}")
    if advice.signed_alternative:
        lines.append(f"  also worth trying: {advice.signed_alternative}  "
                     f"(simpo train {advice.flags(advice.signed_alternative)})")
    lines.append("because:")
    lines += [f"  - {r}" for r in advice.reasons]
    return "\n".join(lines)
