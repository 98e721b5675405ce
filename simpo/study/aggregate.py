"""Aggregate any tree of run directories into one results file, with rliable statistics (issue 6).

A run directory is a folder with config.json and metrics.csv. Runs are grouped by (env, reward transform,
label) where the label is `simpo.study.specs.run_label` (``simpo-square``, ``dpmd-exp``, ``sac``...), extended by
every other setting that differs inside such a group (``simpo-exp[num_candidates=8]``, e.g. the trials of a
hyperparameter sweep): only runs that differ in their seed and bookkeeping (`BOOKKEEPING`) are pooled. A run's score
is its last evaluation's best-of-N return (`eval_return_mean`, the authors' protocol); the single-sample return
is reported beside it (SPEC §9), left empty for a run whose metrics.csv has none (an older run). A run with no score
(no evaluation yet, no `eval_return_mean`) is listed in results["unscored"] with why, not dropped silently.

Aggregates over tasks (a task = env × reward transform) use rliable (Agarwal et al. 2021): IQM, mean and
optimality gap with 95% percentile stratified-bootstrap CIs (with fewer than 5 runs these cover less than 95%:
with 3 runs a per-task CI is the seeds' min–max), on scores normalised per task by a reference: the paper-era
SAC return at 1M steps (SPEC §8, `SAC_REFERENCE`, score = return / SAC) where known, else min–max over the
runs being aggregated (score = (return − min) / (max − min)). The table says which one each task used. A label's
aggregate is over the tasks it has: `aggregate["tasks_missing"]` names those it lacks against the other labels.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simpo import provenance
from simpo.agents.simpo_config import SCHEME_FIELDS
from simpo.logger import read_config, to_jsonable
from simpo.plot import load_run
from simpo.study.specs import run_label
from simpo.train import TrainConfig

# SPEC §8: SAC at 1M env steps (the low end where a range is given); SiMPO as the paper reports it.
SAC_REFERENCE = {"HalfCheetah-v5": 9500.0, "Hopper-v5": 2300.0, "Walker2d-v5": 3600.0, "Ant-v5": 4600.0}
PAPER_SIMPO = {"HalfCheetah-v5": 13900.0, "Hopper-v5": 3000.0, "Ant-v5": 5980.0, "Humanoid-v5": 5470.0,
               "Swimmer-v5": 69.0}
# Config fields that change neither what a run learns nor how its score is measured. Not checkpoint_interval: every
# checkpoint ends the training episode (simpo.train, for exact resume), so it changes the data a run learns from.
BOOKKEEPING = frozenset({"seed", "seeds", "seed_batching", "run_dir", "overwrite", "progress", "track",
                         "wandb_project", "keep_checkpoints", "log_interval", "eval_interval", "debug_nans"})
TASK_FIELDS = frozenset({"env", "reward_transform"})  # what makes a task: differ between tasks by definition
DIVERGED_FILE = "diverged.txt"  # written into a run dir by simpo.study.runner when the run stopped with NonFiniteError


@dataclass(frozen=True)
class RunScore:
    run_dir: Path
    env: str
    reward_transform: str
    label: str
    seed: int
    steps: int
    """The env step of the last evaluation (the run's budget when finished)."""
    total_steps: int
    ret: float
    single: float | None
    """The single-sample return at the same evaluation; None where metrics.csv has none (an older run)."""
    settings: tuple[tuple[str, str], ...] = ()
    """Every non-bookkeeping config field, flattened (``agent.policy.steps``) with its JSON value."""
    code: str = ""
    """The commit(s) the run was trained at, from its provenance.json ("a → b" if resumed under other code;
    "" for a run written before provenance.json existed)."""
    diverged: str = ""
    """The NonFiniteError message in the run's diverged.txt ("" if it did not diverge)."""

    @property
    def task(self) -> str:
        return self.env if self.reward_transform == "none" else f"{self.env} [{self.reward_transform}]"


def find_runs(root: Path) -> list[Path]:
    """Every run directory (config.json + metrics.csv) under `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory")
    return sorted(p.parent for p in root.rglob("metrics.csv") if (p.parent / "config.json").is_file())


def label_of(config: dict) -> str:
    agent = config.get("agent") or {}
    return run_label(config.get("algo", "?"), agent.get("weighting", "?"), agent)


def settings_of(config: dict, prefix: str = "") -> tuple[tuple[str, str], ...]:
    """The config flattened to sorted (dotted key, JSON value) pairs, without `BOOKKEEPING` fields."""
    out = []
    for key, value in config.items():
        if not prefix and key in BOOKKEEPING:
            continue
        if isinstance(value, dict):
            out.extend(settings_of(value, f"{prefix}{key}."))
        else:
            out.append((prefix + key, json.dumps(value, separators=(",", ":"))))
    return tuple(sorted(out))


def _field_defaults() -> dict[str, str]:
    """Every `TrainConfig` field's default (both agents' configs), flattened and serialised as `settings_of` sees
    a config.json. A run whose config.json lacks a field was written before the field existed: it ran with the
    default (a new field defaults to the old behaviour; `simpo.evaluation.read_run_config` reads it so too)."""
    return dict(settings_of(json.loads(json.dumps(to_jsonable(TrainConfig())))))


def _filled(scores: list[RunScore]) -> list[dict[str, str]]:
    """Each run's settings, with the default for a field that only some of these runs' configs have."""
    defaults, values = _field_defaults(), [dict(s.settings) for s in scores]
    keys = set().union(*values)
    return [{**{k: defaults[k] for k in keys - v.keys() if k in defaults}, **v} for v in values]


def _by_label(scores: list[RunScore]) -> dict[str, list[RunScore]]:
    out: dict = defaultdict(list)
    for s in scores:
        out[s.label].append(s)
    return out


def _by_task(scores: list[RunScore], values: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict = defaultdict(list)
    for s, v in zip(scores, values):
        out[(s.env, s.reward_transform)].append(v)
    return out


def distinguish(scores: list[RunScore]) -> list[RunScore]:
    """Extend the labels of runs that share a label but differ in other settings inside a task by those settings,
    e.g. ``simpo-exp[actor_lr=0.001,num_candidates=8]``: such runs are different experiments. The extension is made
    in every task, so that one label names one configuration everywhere and the aggregate over tasks pools like with
    like. Settings that differ only between tasks (a preset's per-env KL target) split nothing: `cross_task_notes`
    names them. A `TrainConfig` field missing from a run's config (an older run) counts as its default."""
    out = []
    for group in _by_label(scores).values():
        values = _filled(group)
        varying = sorted({k for vs in _by_task(group, values).values() for k in set().union(*vs)
                          if len({v.get(k) for v in vs}) > 1})
        for s, v in zip(group, values):
            shown = ",".join(f"{k.removeprefix('agent.')}={v.get(k, '-')}" for k in varying)
            out.append(dataclasses.replace(s, label=f"{s.label}[{shown}]") if varying else s)
    return out


def cross_task_notes(scores: list[RunScore]) -> list[str]:
    """One line per label whose runs differ between tasks in a setting that is constant inside each task, e.g.
    ``simpo-exp: agent.temperature.kl_target 2.0 (HalfCheetah-v5), 2.5 (Hopper-v5)``: the aggregate pools them."""
    notes = []
    for label, group in sorted(_by_label(scores).items()):
        per_task = {task: vs[0] for task, vs in _by_task(group, _filled(group)).items()}
        keys = sorted(set().union(*per_task.values()) - TASK_FIELDS)
        for k in keys:
            if len({v.get(k) for v in per_task.values()}) > 1:
                where = ", ".join(f"{v.get(k, '-')} ({env}{'' if tr == 'none' else f' [{tr}]'})"
                                  for (env, tr), v in sorted(per_task.items()))
                notes.append(f"{label}: {k} {where}")
    return notes


def drop_repeats(scores: list[RunScore]) -> tuple[list[RunScore], list[dict[str, str]]]:
    """Keep one run per (task, label, seed): a copied or repeated run of a seed is not a new seed. The copy kept is
    the one that got furthest: finished (steps >= total_steps) first, then the most env steps, then the first by
    path. Returns the runs kept (by path) and, for each one left out (by path), the run it repeats."""
    kept: dict = {}
    repeats = []
    for s in sorted(scores, key=lambda r: (r.steps < r.total_steps, -r.steps, str(r.run_dir))):
        key = (s.env, s.reward_transform, s.label, s.seed)
        if key in kept:
            repeats.append({"run_dir": str(s.run_dir), "repeats": str(kept[key].run_dir)})
        else:
            kept[key] = s
    return sorted(kept.values(), key=lambda r: str(r.run_dir)), sorted(repeats, key=lambda r: r["run_dir"])


def diverged(run_dir: Path) -> str:
    """The one-line message of the run's diverged.txt, "" if it has none."""
    path = Path(run_dir) / DIVERGED_FILE
    return (path.read_text().strip() or "diverged") if path.is_file() else ""


def score_run(run_dir: Path) -> RunScore:
    """The run's final scores: the last evaluation's best-of-N return and the single-sample return at that step
    (None if metrics.csv has none there). ValueError saying why for a run with no score (no evaluation yet, no
    eval_return_mean column); OSError or ValueError for an unreadable config.json."""
    config = read_config(run_dir)
    steps, returns = load_run(run_dir, "eval_return_mean")
    try:
        single = dict(zip(*load_run(run_dir, "eval_return_single_mean"))).get(steps[-1])
    except ValueError:  # no such column (a run older than it) or no value in it
        single = None
    agent = config.get("agent") or {}  # a scheme parameter another scheme ignores (a floor with exp) changes nothing
    inert = {f"agent.{f}" for f in SCHEME_FIELDS.values() if f != SCHEME_FIELDS.get(agent.get("weighting"))}
    return RunScore(run_dir, config.get("env", "?"), config.get("reward_transform", "none"), label_of(config),
                    int(config.get("seed", 0)), int(steps[-1]), int(config.get("total_steps", steps[-1])),
                    float(returns[-1]), None if single is None else float(single),
                    tuple(kv for kv in settings_of(config) if kv[0] not in inert), _code(run_dir), diverged(run_dir))


def score_runs(runs: list[Path]) -> tuple[list[RunScore], list[dict[str, str]]]:
    """`score_run` of each run, and {run_dir, why} for each run that has no score."""
    scores, unscored = [], []
    for run in runs:
        try:
            scores.append(score_run(run))
        except (ValueError, OSError) as err:
            why = str(err).replace(str(Path(run) / "metrics.csv"), "metrics.csv").split("; columns:")[0]
            if diverged(run):
                why = f"diverged before its first evaluation ({diverged(run)}); {why}"
            unscored.append({"run_dir": str(run), "why": why})
    return scores, unscored


def _code(run_dir: Path) -> str:
    commits = [e.get("commit") or "unknown" for e in provenance.read(run_dir)]
    return " → ".join(c for i, c in enumerate(commits) if i == 0 or c != commits[i - 1])


def group_runs(scores: list[RunScore]) -> dict[tuple[str, str], dict[str, list[RunScore]]]:
    """{task key (env, transform): {label: runs sorted by seed}}."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    for s in scores:
        groups[(s.env, s.reward_transform)][s.label].append(s)
    return {t: {lab: sorted(runs, key=lambda r: r.seed) for lab, runs in sorted(g.items())}
            for t, g in sorted(groups.items())}


def normalise(groups: dict) -> dict[tuple[str, str], tuple[str, float, float]]:
    """Per task: (how, offset, scale) so that score = (return − offset) / scale."""
    out = {}
    for (env, transform), by_label in groups.items():
        if transform == "none" and env in SAC_REFERENCE:
            out[(env, transform)] = (f"÷ SAC@1M ({SAC_REFERENCE[env]:g}, SPEC §8)", 0.0, SAC_REFERENCE[env])
        else:
            rets = [r.ret for runs in by_label.values() for r in runs]
            lo, hi = min(rets), max(rets)
            out[(env, transform)] = (f"min–max over these runs ({lo:.1f}…{hi:.1f})", lo, (hi - lo) or 1.0)
    return out


def _metrics(x: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_optimality_gap(x)])


def interval_estimates(matrices: dict[str, np.ndarray], reps: int, seed: int = 0) -> dict[str, dict]:
    """rliable point estimates and 95% percentile stratified-bootstrap CIs of IQM, mean, optimality gap, per label.
    Each matrix is (runs, tasks)."""
    from rliable import library

    if not matrices:
        return {}
    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator
    points, cis = library.get_interval_estimates(matrices, _metrics, reps=reps)
    return {lab: {name: {"point": float(points[lab][i]), "low": float(cis[lab][0, i]), "high": float(cis[lab][1, i])}
                  for i, name in enumerate(("iqm", "mean", "optimality_gap"))} for lab in matrices}


def aggregate_scores(scores: list[RunScore], reps: int = 2000, unscored: list[dict] = ()) -> dict:
    """Everything results.json holds: runs, per-task groups (with a per-task IQM CI), per-label aggregates (with the
    tasks a label lacks), the runs left out as repeats of a seed (`drop_repeats`) or with no score (`unscored`, from
    `score_runs`) and the settings a label pools across tasks (`cross_task_notes`)."""
    scores, repeats = drop_repeats(scores)
    groups = group_runs(scores)
    norms = normalise(groups)
    tasks, per_task = [], {}
    for key, by_label in groups.items():
        how, offset, scale = norms[key]
        task = by_label[next(iter(by_label))][0].task
        tasks.append({"task": task, "env": key[0], "reward_transform": key[1], "normalisation": how})
        ests = interval_estimates({lab: np.array([[r.ret] for r in runs]) for lab, runs in by_label.items()}, reps)
        per_task[task] = {lab: {
            "seeds": [r.seed for r in runs], "steps": sorted({r.steps for r in runs}),
            "total_steps": sorted({r.total_steps for r in runs}),
            "stopped_early": [r.seed for r in runs if r.steps < r.total_steps],
            "returns": [r.ret for r in runs], "single_returns": [r.single for r in runs],
            "mean": float(np.mean([r.ret for r in runs])),
            "std": float(np.std([r.ret for r in runs], ddof=1)) if len(runs) > 1 else 0.0,
            "single_mean": _mean([r.single for r in runs if r.single is not None]),
            "iqm": ests[lab]["iqm"],
            "normalised": [(r.ret - offset) / scale for r in runs]} for lab, runs in by_label.items()}
    labels = sorted({lab for g in per_task.values() for lab in g})
    matrices, shape = {}, {}
    for lab in labels:
        cols = {task: g[lab] for task, g in per_task.items() if lab in g}
        n = min(len(c["normalised"]) for c in cols.values())  # rliable needs the same runs per task: the first n seeds
        matrices[lab] = np.array([c["normalised"][:n] for c in cols.values()]).T
        left_out = {task: c["seeds"][n:] for task, c in cols.items() if len(c["seeds"]) > n}
        shape[lab] = {"tasks": len(cols), "runs_per_task": n, "seeds_left_out": left_out,
                      "tasks_missing": [task for task in per_task if task not in cols]}
    overall = interval_estimates(matrices, reps)
    return {"tasks": tasks, "per_task": per_task,
            "aggregate": {lab: {**shape[lab], **overall[lab]} for lab in labels},
            "runs": [{"run_dir": str(s.run_dir), "task": s.task, "label": s.label, "seed": s.seed, "steps": s.steps,
                      "total_steps": s.total_steps, "return": s.ret, "single_return": s.single, "code": s.code,
                      "diverged": s.diverged} for s in scores],
            "repeats_left_out": repeats, "unscored": list(unscored), "cross_task_notes": cross_task_notes(scores),
            "reps": reps, "paper_simpo": PAPER_SIMPO, "sac_reference": SAC_REFERENCE}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def aggregate(root: Path, out_dir: Path, reps: int = 2000, title: str | None = None) -> Path:
    """Walk `root` for run directories, write into `out_dir`: results.json (the one aggregated file),
    results.md (Markdown tables), curves_*.png (learning curves per task) and aggregate.png (rliable
    intervals). Returns `out_dir`."""
    from simpo.study.report import write_report

    root, out_dir = Path(root), Path(out_dir)
    if not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be an int >= 1, got {reps!r}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} exists and is not a directory")
    runs = find_runs(root)
    scores, unscored = score_runs(runs)
    scores = distinguish(scores)
    if not scores:
        raise ValueError(f"no run directories with an evaluation (config.json + metrics.csv) under {root}")
    results = aggregate_scores(scores, reps, unscored)
    results["root"] = str(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_report(results, drop_repeats(scores)[0], out_dir, title or f"results of {root}")
    return out_dir

