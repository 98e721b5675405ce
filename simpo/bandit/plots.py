"""Figures of a bandit study: regret curves, landscapes with final samples, and learned velocity fields."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from simpo.bandit.landscapes import Landscape  # noqa: E402
from simpo.bandit.run import BanditResult  # noqa: E402

__all__ = ["confidence_band", "crossing_epoch", "plot_regret", "plot_landscape", "plot_velocity_field", "signed_pairs"]

# 0.975 quantiles of Student's t (two-sided 95% intervals) for 1..30 degrees of freedom (no scipy dependency)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def confidence_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the half-width of its 95% t-interval over axis 0 (seeds); half-width 0 for one seed."""
    values = np.asarray(values, np.float64)
    n = values.shape[0]
    mean = values.mean(0)
    if n < 2:
        return mean, np.zeros_like(mean)
    return mean, t975(n - 1) * values.std(0, ddof=1) / math.sqrt(n)


def t975(df: int) -> float:
    """Student's t 97.5% quantile: the table up to 30 degrees of freedom, above it the Cornish-Fisher expansion
    in 1/df (within 1e-4 of the exact value for df > 30)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2) \
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)


def _curves(result: BanditResult) -> np.ndarray:
    """(seeds, epochs + 1) regret with the post-pretraining regret as epoch 0."""
    regret = np.atleast_2d(result.regret)
    return np.concatenate([np.reshape(result.initial_regret, (-1, 1)), regret], axis=1)


def plot_regret(results: Mapping[str, BanditResult], landscape: Landscape, path: Path) -> None:
    """Mean ± 95% CI of regret per scheme over seeds, on linear and log axes."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for k, (name, res) in enumerate(results.items()):
        curves = _curves(res)
        mean, half = confidence_band(curves)
        x = np.arange(curves.shape[1])
        style = "--" if _is_signed(res) else "-"
        for ax, lo in zip(axes, (mean - half, np.maximum(mean - half, 0.5 * mean))):
            ax.plot(x, mean, style, color=colors[k % 10], label=name, lw=1.6)
            ax.fill_between(x, lo, mean + half, color=colors[k % 10], alpha=0.15, lw=0)
    n_seeds = _curves(next(iter(results.values()))).shape[0]
    axes[0].set_ylabel("regret = max r − E_π[r]")
    axes[1].set_yscale("log")
    for ax, title in zip(axes, ("linear scale", "log scale; band clipped at half the mean")):
        ax.set_xlabel("epoch")
        ax.set_title(f"{landscape.name}: {title} (mean ± 95% CI, {n_seeds} seeds)", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title="scheme (dashed: signed)", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _is_signed(res: BanditResult) -> bool:
    return res.weighting in ("signed_linear", "wd1") or float(np.max(res.diagnostics["negative_fraction"])) > 0


def _grid_2d(n: int = 201):
    axis = np.linspace(-1, 1, n, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis, indexing="xy")
    return xx, yy, np.stack([xx.ravel(), yy.ravel()], -1)


def _reward_background(ax, landscape: Landscape) -> None:
    xx, yy, pts = _grid_2d()
    rr = np.asarray(landscape.reward_fn(jnp.asarray(pts))).reshape(xx.shape)
    ax.contourf(xx, yy, rr, levels=20, cmap="Greys_r", alpha=0.55)
    ax.contour(xx, yy, rr, levels=8, colors="k", linewidths=0.3, alpha=0.5)
    if landscape.marked_region is not None:
        (cx, cy), rad = landscape.marked_region
        ax.add_patch(plt.Circle((cx, cy), rad, fill=False, ls=":", color="red", lw=1.2))
    if landscape.argmax is not None:
        ax.plot(*landscape.argmax, marker="*", color="gold", ms=12, mec="k", zorder=2)
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")


def plot_landscape(results: Mapping[str, BanditResult], landscape: Landscape, path: Path) -> None:
    """One panel per scheme: the reward with the final-policy samples (all seeds pooled) and the initial
    policy; histograms in 1-D, a scatter over the reward contour in 2-D."""
    names = list(results)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    mean, std = np.asarray(landscape.init_mean), np.asarray(landscape.init_std)
    for ax, name in zip(axes.ravel(), names):
        res = results[name]
        samples = np.asarray(res.samples).reshape(-1, landscape.action_dim)
        final = np.atleast_1d(res.final_regret)
        title = f"{name}\nfinal regret {final.mean():.3f}"
        if landscape.action_dim == 1:
            x = np.linspace(-1, 1, 801, dtype=np.float32)
            r = np.asarray(landscape.reward_fn(jnp.asarray(x[:, None])))
            ax.hist(samples[:, 0], bins=80, range=(-1, 1), density=True, color="tab:orange", alpha=0.6,
                    label="final π")
            init_pdf = np.exp(-0.5 * ((x - mean[0]) / std[0]) ** 2) / (std[0] * math.sqrt(2 * math.pi))
            ax.plot(x, init_pdf, ":", color="gray", label="initial π")
            ax.set_yticks([])
            twin = ax.twinx()
            twin.plot(x, r, color="tab:blue", lw=1.5, label="reward")
            twin.set_ylim(0, 1.05 * max(1.0, r.max()))
            ax.set_xlim(-1, 1)
        else:
            _reward_background(ax, landscape)
            rng = np.random.default_rng(0)
            pick = rng.choice(len(samples), min(1500, len(samples)), replace=False)
            ax.scatter(samples[pick, 0], samples[pick, 1], s=2, color="tab:orange", alpha=0.5, zorder=3)
            ax.add_patch(matplotlib.patches.Ellipse(tuple(mean), 4 * std[0], 4 * std[1], fill=False, ls="--",
                                                    color="tab:cyan", lw=1.2))
        ax.set_title(title, fontsize=9)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    if landscape.action_dim == 1:
        axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{landscape.name}: {landscape.description}\n"
                 + ("blue: reward; orange: final samples; dotted: initial policy" if landscape.action_dim == 1 else
                    "contours: reward; orange: final samples; cyan: initial policy (2σ); red: marked bad region"),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def signed_pairs(names: list[str], results: Mapping[str, BanditResult]) -> list[tuple[str, str]]:
    """(non-negative, signed) scheme pairs present in a study: linear vs a signed_linear (preferring the deepest
    finite floor), exp vs a wd1 (preferring the largest negative mass)."""
    partner = {"signed_linear": "linear", "wd1": "exp"}

    def preference(n):
        kw = results[n].scheme_params
        floor = kw.get("floor", -math.inf)
        return (math.isinf(floor), floor, -kw.get("negative_mass", 1.0))

    floored = sorted(names, key=preference)
    pairs, seen = [], set()
    for name in floored:
        base = partner.get(results[name].weighting) if isinstance(results[name].weighting, str) else None
        if base is not None and base not in seen:
            seen.add(base)
            match = [n for n in names if results[n].weighting == base and not results[n].scheme_params]
            if match:
                pairs.append((match[0], name))
    return pairs


def _flow_particles(res: BanditResult, params, t_stop: float, n: int, key) -> np.ndarray:
    """Euler-integrate the learned flow from x₀ ∼ N(0, I) up to time t_stop (the particles at time t)."""
    pol = res.policy
    steps = pol.config.steps
    x = jax.random.normal(key, (n, pol.action_dim))
    for k in range(steps):
        t = k / steps
        if t >= t_stop - 1e-9:
            break
        dt = min(1.0 / steps, t_stop - t)
        x = x + dt * pol.predict(params, x, jnp.full((n, 1), t), None)
    return np.asarray(x)


def crossing_epoch(results: Mapping[str, BanditResult], names: list[str]) -> int | None:
    """The first snapshot epoch at which the mean regret of ``names`` (all seeds) has covered a quarter of its
    way from the initial to the final value: the policy mass is then on its way through the landscape."""
    epochs = sorted(set.intersection(*(set(results[n].snapshots) for n in names)))
    if not epochs:
        return None
    curves = np.mean([_curves(results[n]).mean(0) for n in names], axis=0)
    half = 0.75 * curves[0] + 0.25 * curves[-1]
    for e in epochs:
        if curves[e] <= half:
            return e
    return epochs[-1]


def plot_velocity_field(results: Mapping[str, BanditResult], landscape: Landscape, pairs: list[tuple[str, str]],
                        path: Path, times: tuple[float, ...] = (0.5, 0.8), epoch: int | None = None) -> None:
    """For each (non-negative, signed) pair: the learned field v_θ(x, t) (seed 0; arrows of unit length, colour =
    speed) at ``times`` with the flow's particles at that time, and the samples (t = 1), all after ``epoch``
    (default: :func:`crossing_epoch`, mid-way through learning), plus the final samples. Negative weights should
    bend the flow away from the bad region. (Diffusion policies: arrows are −ε_θ(x, t), no particles.)"""
    names = list(dict.fromkeys(n for pair in pairs for n in pair))
    epoch = crossing_epoch(results, names) if epoch is None else epoch
    cols = len(times) + 2
    fig, axes = plt.subplots(len(names), cols, figsize=(3.3 * cols, 3.3 * len(names)), squeeze=False)
    g = np.linspace(-0.95, 0.95, 15, dtype=np.float32)
    gx, gy = np.meshgrid(g, g, indexing="xy")
    grid = np.stack([gx.ravel(), gy.ravel()], -1)
    key = jax.random.PRNGKey(0)
    for row, name in zip(axes, names):
        res = results[name]
        params = res.seed_params(0, epoch) if epoch is not None else res.seed_params(0)
        flow = res.policy.config.kind == "flow"
        for ax, t in zip(row, times):
            _reward_background(ax, landscape)
            v = np.asarray(res.policy.predict(params, jnp.asarray(grid), jnp.full((len(grid), 1), t), None))
            v = v if flow else -v
            speed = np.linalg.norm(v, axis=-1, keepdims=True)
            u = v / np.maximum(speed, 1e-8)
            ax.quiver(grid[:, 0], grid[:, 1], u[:, 0], u[:, 1], speed[:, 0], cmap="viridis", angles="xy",
                      scale_units="xy", scale=1 / 0.09, width=0.005)
            if flow:
                pts = _flow_particles(res, params, t, 600, key)
                ax.scatter(pts[:, 0], pts[:, 1], s=2, color="tab:orange", alpha=0.6, zorder=3)
            ax.set_title(f"{name}\n{'v_θ' if flow else '−ε_θ'}(x, t={t}), epoch {epoch}", fontsize=8)
        for ax, (params_k, label) in zip(row[len(times):], ((params, f"samples after epoch {epoch}"),
                                                            (res.seed_params(0), "final samples"))):
            _reward_background(ax, landscape)
            smp = np.asarray(res.policy.sample(params_k, key, (1000,)))
            ax.scatter(smp[:, 0], smp[:, 1], s=2, color="tab:orange", alpha=0.6, zorder=3)
            ax.set_title(f"{name}\n{label} (seed {res.seeds[0]})", fontsize=8)
    fig.suptitle(f"{landscape.name}: learned flow, non-negative vs signed weights (red dotted: bad region; "
                 "orange: particles at time t)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)
