"""A bandit study: one landscape × several weighting schemes × several seeds, with CSV, figures and a summary.

Scheme specs are strings ``name[:key=value,...]``, e.g. ``"power:p=3"`` or ``"signed_linear:floor=-0.005"``
(:func:`parse_scheme`). The default list covers every built-in scheme plus non-negative/signed pairs, so the
effect of negative weights is visible: ``exp`` vs ``wd1`` and ``linear`` vs ``signed_linear`` with a floor of
−0.005 ≈ −0.3/N for N = 64 (in the range −0.1/N … −0.4/N the authors' fork tried), a deeper floor of −0.02 ≈
−1.3/N, and no floor at all (unbounded negative mass; its KL is capped under the target, so λ kept falling:
the failure case, docs/bandits.md; simpo.temperature.kl_cap).
"""

from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from simpo.advisor import AUTO_MENUS
from simpo.bandit.landscapes import get_landscape
from simpo.bandit.plots import plot_landscape, plot_regret, plot_velocity_field, signed_pairs
from simpo.bandit.run import BanditResult, execute, merge_plans, prepare
from simpo.weighting import SCHEMES, is_import_path, load_weighting

__all__ = ["BanditConfig", "DEFAULT_SCHEMES", "parse_scheme", "run_study"]

DEFAULT_SCHEMES: tuple[str, ...] = (
    "exp",
    "wd1",
    "linear",
    "signed_linear:floor=-0.005",
    "signed_linear:floor=-0.02",
    "signed_linear",
    "square",
    "power:p=3",
)
_SCHEME_KEYS = {"power": ("p",), "signed_linear": ("floor",), "wd1": ("negative_mass",)}


def parse_scheme(spec: str) -> tuple[str, dict[str, float]]:
    """``"power:p=3"`` -> ``("power", {"p": 3.0})``; ``"exp"`` -> ``("exp", {})``; ``"mygs:leaky"`` (an increasing g
    of the user's, `simpo.weighting.load_weighting`) -> ``("mygs:leaky", {})``. One-line ValueError if bad."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"scheme spec must be a non-empty string like 'power:p=3', got {spec!r}")
    if is_import_path(spec.strip()) and spec.split(":")[0].strip() not in AUTO_MENUS:
        return spec.strip(), {}
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in (*SCHEMES, *AUTO_MENUS):
        raise ValueError(f"unknown scheme {name!r} in {spec!r}; allowed: {', '.join((*SCHEMES, *AUTO_MENUS))}, "
                         "or MODULE:FUNCTION naming an increasing g of your own")
    params: dict[str, float] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(f"bad scheme parameter {item.strip()!r} in {spec!r}; expected key=value")
            allowed = _SCHEME_KEYS.get(name, ())
            if key not in allowed:
                takes = ", ".join(allowed) if allowed else "no parameters"
                raise ValueError(f"scheme {name!r} takes {takes}; got {key!r} in {spec!r}")
            if key in params:
                raise ValueError(f"parameter {key!r} given twice in {spec!r}")
            try:
                params[key] = float(value)
            except ValueError:
                raise ValueError(f"parameter {key!r} in {spec!r} must be a number, got {value.strip()!r}") from None
    return name, params


@dataclass(frozen=True)
class BanditConfig:
    """A study: ``landscape`` (a preset name) × ``schemes`` (specs, see :func:`parse_scheme`) × ``seeds``.

    ``p``/``floor``/``negative_mass``: default scheme parameters for specs that do not set them. The other
    optional fields override :data:`simpo.bandit.run.DEFAULTS` (``None``: keep the default).
    """

    landscape: str = "bad-region"
    schemes: tuple[str, ...] = DEFAULT_SCHEMES
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 200
    run_dir: str = "runs/bandit"
    overwrite: bool = False
    p: float | None = None
    floor: float | None = None
    negative_mass: float | None = None
    policy: str | None = None
    temperature: float | None = None
    temperature_target: str | None = None
    kl_target: float | None = None
    jitter: float | None = None
    lr: float | None = None
    steps_per_epoch: int | None = None
    num_candidates: int | None = None
    groups: int | None = None
    steps: int | None = None
    hidden_dims: tuple[int, ...] | None = None
    pretrain_steps: int | None = None

    def bandit_params(self) -> dict:
        names = ("policy", "temperature", "temperature_target", "kl_target", "jitter", "lr", "steps_per_epoch",
                 "num_candidates", "groups", "steps", "hidden_dims", "pretrain_steps")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}


def _scheme_defaults(config: BanditConfig, name: str) -> dict[str, float]:
    return {k: getattr(config, k) for k in _SCHEME_KEYS.get(name, ()) if getattr(config, k) is not None}


def _check_run_dir(config: BanditConfig) -> Path:
    run_dir = Path(config.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run_dir {str(run_dir)!r} exists and is not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not config.overwrite:
        raise ValueError(f"run_dir {str(run_dir)!r} is not empty; pass --overwrite (overwrite=True) to replace it")
    ancestor = run_dir.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot create run_dir {str(run_dir)!r}: {ancestor} is not a directory")
    return run_dir


def run_study(config: BanditConfig, progress: bool = True) -> Path:
    """Run every scheme of ``config`` on its landscape for all seeds and write, into ``config.run_dir``:
    ``regret.csv`` (epoch, scheme, seed, regret; epoch 0 = after pretraining), ``regret.png``, ``landscape.png``,
    ``velocity_field.png`` (2-D landscapes with a non-negative/signed pair), ``summary.md`` and ``summary.json``.
    Everything is validated before any work; a non-empty ``run_dir`` is refused unless ``overwrite``."""
    if not isinstance(config, BanditConfig):
        raise ValueError(f"config must be a BanditConfig, got {type(config).__name__}")
    landscape = get_landscape(config.landscape)
    if isinstance(config.schemes, str) or not config.schemes:
        raise ValueError(f"schemes must be a non-empty sequence of scheme specs, got {config.schemes!r}")
    if len(set(config.schemes)) != len(config.schemes):
        raise ValueError(f"schemes contain duplicates: {list(config.schemes)}")
    if isinstance(config.seeds, int) or not config.seeds:
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {config.seeds!r}")
    specs = {spec: parse_scheme(spec) for spec in config.schemes}  # cheap checks first
    for key, owner in ((k, name) for name, keys in _SCHEME_KEYS.items() for k in keys):
        takers = [spec for spec, (name, params) in specs.items() if name == owner and key not in params]
        if getattr(config, key) is not None and not takers:
            raise ValueError(f"--{key.replace('_', '-')} would be ignored: it sets {owner}'s {key} and no scheme "
                             f"in {' '.join(config.schemes)} takes it (add {owner}, or set it per scheme as "
                             f"{owner}:{key}=...)")
    run_dir = _check_run_dir(config)
    plans = {}
    for spec, (name, params) in specs.items():  # validate everything before running anything
        params = {**_scheme_defaults(config, name), **params}
        weighting = load_weighting(name) if is_import_path(name) else name
        plans[spec] = prepare(landscape.reward_fn, landscape.action_dim, weighting, config.epochs, list(config.seeds),
                              landscape.max_reward, init_mean=landscape.init_mean, init_std=landscape.init_std,
                              **params, **config.bandit_params())

    plans = dict(zip(plans, merge_plans(list(plans.values()))))  # one compiled program for all schemes
    results: dict[str, BanditResult] = {}
    t0 = time.perf_counter()
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns) as bar:
            task = bar.add_task(f"{landscape.name}", total=len(plans))
            for spec, plan in plans.items():
                bar.update(task, description=f"{landscape.name}: {spec} ({len(config.seeds)} seeds)")
                results[spec] = execute(plan)
                bar.advance(task)
    else:
        for spec, plan in plans.items():
            results[spec] = execute(plan)
    elapsed = time.perf_counter() - t0

    run_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(run_dir / "regret.csv", results)
    plot_regret(results, landscape, run_dir / "regret.png")
    plot_landscape(results, landscape, run_dir / "landscape.png")
    pairs = signed_pairs(list(results), results)
    if landscape.action_dim == 2 and pairs:
        plot_velocity_field(results, landscape, pairs, run_dir / "velocity_field.png")
    _write_summary(run_dir, config, landscape, results, elapsed)
    return run_dir


def _write_csv(path: Path, results: dict[str, BanditResult]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "scheme", "seed", "regret"])
        for spec, res in results.items():
            curves = np.concatenate([np.reshape(res.initial_regret, (-1, 1)), np.atleast_2d(res.regret)], 1)
            for seed, curve in zip(res.seeds, curves):
                for epoch, value in enumerate(curve):
                    writer.writerow([epoch, spec, seed, f"{float(value):.6g}"])


def _write_summary(run_dir: Path, config: BanditConfig, landscape, results: dict[str, BanditResult],
                   elapsed: float) -> None:
    rows = {}
    for spec, res in results.items():
        final = np.atleast_1d(res.final_regret).astype(float)
        curves = np.atleast_2d(res.regret)
        rows[spec] = {
            "final_regret_mean": float(final.mean()),
            "final_regret_std": float(final.std(ddof=1)) if final.size > 1 else 0.0,
            "mean_regret_over_epochs": float(curves.mean()),  # area under the regret curve / epochs
            "initial_regret_mean": float(np.mean(res.initial_regret)),
            "negative_weight_fraction": float(np.mean(res.diagnostics["negative_fraction"])),
            "mean_temperature": float(np.mean(res.diagnostics["temperature"])),
            "seconds": res.elapsed_s,
        }
        if res.weighting in AUTO_MENUS:  # what the online rule chose: the share of (seed, epoch) pairs on linear
            rows[spec]["auto_linear_fraction"] = float(np.mean(res.diagnostics["auto_choice"] == 1))
            rows[spec]["auto_final_skew_mean"] = float(np.mean(np.atleast_2d(res.diagnostics["auto_skew"])[:, -1]))
    winner = min(rows, key=lambda k: rows[k]["final_regret_mean"])
    fastest = min(rows, key=lambda k: rows[k]["mean_regret_over_epochs"])
    some = next(iter(results.values()))
    summary = {
        "landscape": {"name": landscape.name, "description": landscape.description, "source": landscape.source,
                      "action_dim": landscape.action_dim, "max_reward": landscape.max_reward},
        "config": asdict(config),
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in some.settings.items()},
        "schemes": rows,
        "winner_final_regret": winner,
        "winner_mean_regret": fastest,
        "total_seconds": elapsed,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    n = len(config.seeds)
    lines = [
        f"# Bandit study: {landscape.name}",
        "",
        f"{landscape.description}.  ",
        f"Source: {landscape.source}.  ",
        f"{len(results)} schemes × {n} seeds × {config.epochs} epochs in {elapsed:.1f} s.",
        "",
        "| scheme | final regret (mean ± std) | mean regret over epochs | neg. weight frac | mean λ | s |",
        "|---|---|---|---|---|---|",
    ]
    for spec, r in rows.items():
        mark = " **(winner)**" if spec == winner else ""
        lines.append(f"| {spec}{mark} | {r['final_regret_mean']:.4f} ± {r['final_regret_std']:.4f} | "
                     f"{r['mean_regret_over_epochs']:.4f} | {r['negative_weight_fraction']:.3f} | "
                     f"{r['mean_temperature']:.3g} | {r['seconds']:.1f} |")
    lines += [f"\n`{spec}` chose linear (steep) on {100 * r['auto_linear_fraction']:.0f}% of seed-epochs, "
              f"{AUTO_MENUS[spec][0]} otherwise; final EMA skew {r['auto_final_skew_mean']:+.3f} (mean over seeds)."
              for spec, r in rows.items() if "auto_linear_fraction" in r]
    lines += ["", f"Lowest final regret: **{winner}**. Lowest mean regret over epochs (fastest): **{fastest}**.",
              "", "Settings: " + ", ".join(f"{k}={v}" for k, v in summary["settings"].items()), ""]
    (run_dir / "summary.md").write_text("\n".join(lines))
