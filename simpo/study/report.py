"""Study reports: results.json, Markdown tables and PNGs (learning curves, rliable intervals); the bandit study."""

from __future__ import annotations

import json
import platform
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from simpo.logger import to_jsonable

_METRICS = (("iqm", "IQM"), ("mean", "mean"), ("optimality_gap", "optimality gap"))
_CI = "95% percentile-bootstrap CI"
FEW_RUNS = 5
"""Below this many runs the notes say the CIs cover less than 95% (a percentile bootstrap of the mean, simulated on
normal data: 0.75 at 3 runs, 0.80 at 4, 0.83 at 5)."""


def _ci(e: dict, fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(e['point'])} [{fmt.format(e['low'])}, {fmt.format(e['high'])}]"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _single(g: dict) -> str:
    """The single-sample mean, and over how many runs where some lack it (older runs); "—" where none has it."""
    have = [v for v in g["single_returns"] if v is not None]
    if not have:
        return "—"
    return f"{g['single_mean']:.1f}" + (f" ({len(have)} of {len(g['single_returns'])} runs)" if len(have) < len(
        g["single_returns"]) else "")


def _steps(values: list[int]) -> str:
    return "/".join(f"{v:,}" for v in values)


def _code_line(runs: list[dict]) -> str:
    """Which code trained the runs (each run's provenance.json), most runs first."""
    counts = Counter(r.get("code", "") for r in runs)
    parts = [f"`{code}` {n} run{'s' * (n != 1)}" if code else f"not recorded {n} run{'s' * (n != 1)}"
             for code, n in counts.most_common()]
    return "Code (the commit in each run's provenance.json; not recorded = run before it existed): " + \
        "; ".join(parts) + "."


def markdown(results: dict, title: str) -> str:
    """The per-task table (raw returns) and the aggregate table (normalised, rliable CIs)."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title}", "", f"Aggregated {len(results['runs'])} runs under `{results['root']}` on {when} "
             f"({platform.machine()}); percentile stratified bootstrap with {results['reps']} reps. Score = the last "
             "evaluation's best-of-N return (the authors' protocol); the single-sample return is beside it.", "",
             _code_line(results["runs"]), "",
             "## Per task", "",
             f"| task | label | seeds | env steps | return, best-of-N (mean ± std) | single sample (mean) | IQM [{_CI}] |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for task, by_label in results["per_task"].items():
        best = max(by_label, key=lambda lab: by_label[lab]["mean"])
        for lab, g in by_label.items():
            name = f"**{lab}**" if lab == best and len(by_label) > 1 else lab
            early = g.get("stopped_early", [])
            steps = _steps(g["steps"]) + (f" ({len(early)} stopped early)" if early else "")
            lines.append(f"| {task} | {name} | {len(g['seeds'])} | {steps} | {g['mean']:.1f} ± "
                         f"{g['std']:.1f} | {_single(g)} | {_ci(g['iqm'], '{:.1f}')} |")
    lines += ["", "## Aggregate over tasks (rliable, normalised scores)", "",
              "Normalisation per task: " + "; ".join(f"{t['task']}: {t['normalisation']}" for t in results["tasks"])
              + ". Optimality gap = mean shortfall below 1.", "",
              "| label | tasks | runs/task | " + " | ".join(f"{n} [{_CI}]" for _, n in _METRICS) + " |",
              "|---|---:|---:|" + "---:|" * len(_METRICS)]
    for lab, a in results["aggregate"].items():
        lines.append(f"| {lab} | {a['tasks']} | {a['runs_per_task']} | " + " | ".join(_ci(a[k]) for k, _ in _METRICS)
                     + " |")
    lines += _notes(results)
    lines += ["", "![aggregate](aggregate.png)", ""]
    lines += [f"![{t['task']}](curves_{_slug(t['task'])}.png)" for t in results["tasks"]]
    return "\n".join(lines) + "\n"


def _notes(results: dict) -> list[str]:
    """What the tables above pool or leave out, one bullet each (none when nothing is)."""
    notes = [f"- {lab}: seeds left out of the aggregate (it takes the same {a['runs_per_task']} runs per task): "
             + "; ".join(f"{task} {seeds}" for task, seeds in a["seeds_left_out"].items())
             for lab, a in results["aggregate"].items() if a.get("seeds_left_out")]
    notes += [f"- `{r['run_dir']}` left out: the same task, label and seed as `{r['repeats']}`"
              for r in results.get("repeats_left_out", [])]
    notes += [f"- {lab} lacks {', '.join(a['tasks_missing'])}: its aggregate is over its other {a['tasks']} "
              f"task{'s' * (a['tasks'] != 1)} only, not like for like with the labels that have them"
              for lab, a in results["aggregate"].items() if a.get("tasks_missing")]
    notes += [f"- `{r['run_dir']}` not scored, so in no table: {r['why']}" for r in results.get("unscored", [])]
    notes += [f"- `{r['run_dir']}` diverged ({r['diverged']}): scored at its last evaluation before that, env step "
              f"{r['steps']:,} of {r['total_steps']:,}; the study does not resume it (resume is exact: it would "
              "diverge again)" for r in results["runs"] if r.get("diverged")]
    notes += [f"- `{r['run_dir']}` stopped before its budget: scored at its last evaluation, env step {r['steps']:,} "
              f"of {r['total_steps']:,} (`simpo train --resume` continues it)"
              for r in results["runs"] if r["steps"] < r.get("total_steps", r["steps"]) and not r.get("diverged")]
    notes += [f"- `{r['run_dir']}` has no single-sample return at its last evaluation (metrics.csv without "
              "eval_return_single_mean: an older run): scored by its best-of-N return alone"
              for r in results["runs"] if r.get("single_return", 0.0) is None]
    notes += [f"- pooled across tasks although it differs between them: {n}" for n in results.get("cross_task_notes", [])]
    fewest = min([len(g["seeds"]) for by_label in results["per_task"].values() for g in by_label.values()]
                 + [a["runs_per_task"] for a in results["aggregate"].values()])
    if fewest < FEW_RUNS:
        notes.append(f"- the CIs are {_CI}s, and some come from only {fewest} run{'s' * (fewest != 1)}: with fewer "
                     f"than {FEW_RUNS} runs such a CI covers less than 95% (with 3 runs a per-task CI is the min–max "
                     "of the seeds)")
    return ["", "Notes:", "", *notes] if notes else []


def plot_aggregate(results: dict, out: Path) -> Path:
    """rliable-style interval plot: one panel per metric, one row per label (point and 95% percentile-bootstrap CI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(results["aggregate"])
    fig = Figure(figsize=(3.2 * len(_METRICS), 0.5 * len(labels) + 1.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(_METRICS), sharey=True)
    for ax, (key, name) in zip(axes, _METRICS):
        for y, lab in enumerate(labels):
            e = results["aggregate"][lab][key]
            ax.plot([e["low"], e["high"]], [y, y], lw=6, alpha=0.5, color=f"C{y}", solid_capstyle="butt")
            ax.plot([e["point"]], [y], "|", ms=14, color="k")
        ax.set_title(name)
        ax.set_yticks(range(len(labels)), labels)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_xlabel("normalised score")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def write_report(results: dict, scores: list, out_dir: Path, title: str) -> None:
    from simpo.plot import plot_learning_curves

    (out_dir / "results.json").write_text(json.dumps(to_jsonable(results), indent=2) + "\n")
    (out_dir / "results.md").write_text(markdown(results, title))
    plot_aggregate(results, out_dir / "aggregate.png")
    by_dir = {s.run_dir: s for s in scores}
    for t in results["tasks"]:
        runs = [s.run_dir for s in scores if s.task == t["task"]]
        plot_learning_curves(runs, out_dir / f"curves_{_slug(t['task'])}.png", group_by=lambda d, c: by_dir[d].label,
                             title=f"{t['task']}: best-of-N eval return", n_boot=500)


# ------------------------------------------------------------------------------------------------ bandits
def run_bandits(study, root: Path, budget: int | None, seeds, overwrite: bool, progress: bool,
                envs: tuple[str, ...] = ()) -> Path:
    """The `bandits` study: `simpo.bandit.run_study` on every landscape (or `envs`) into ROOT/<landscape>/ (a finished
    landscape with the same settings is skipped), then ROOT/results.md and results.json over every landscape there."""
    from simpo.bandit import BanditConfig, run_study

    configs = {name: BanditConfig(landscape=name, schemes=study.schemes, seeds=seeds or study.seeds,
                                  epochs=budget or study.budget, run_dir=str(root / name), overwrite=True)
               for name in envs or study.envs}
    todo = {}
    for name, config in configs.items():  # validate everything first
        summary = root / name / "summary.json"
        same = summary.is_file() and _same_bandit(json.loads(summary.read_text())["config"], config)
        if not same and (root / name).exists() and any((root / name).iterdir()) and not overwrite:
            raise ValueError(f"{root / name} holds a bandit run with other settings; pass --overwrite or another --out")
        if overwrite or not same:
            todo[name] = config
    for i, (name, config) in enumerate(configs.items(), 1):
        state = "running" if name in todo else "done (skipped)"
        print(f"[{i}/{len(configs)}] bandits/{name}: {state}", flush=True)
        if name in todo:
            run_study(config, progress=progress)
    done = [name for name in study.envs if name in configs or (root / name / "summary.json").is_file()]
    return write_bandit_report(root, done, study.schemes)  # every landscape run so far, not just this call's


def _same_bandit(saved: dict, config) -> bool:
    return (saved.get("epochs") == config.epochs and list(saved.get("seeds", [])) == list(config.seeds)
            and list(saved.get("schemes", [])) == list(config.schemes))


def write_bandit_report(root: Path, landscapes: list[str], schemes) -> Path:
    """One table: final regret (mean ± std over seeds) per scheme × landscape, the lowest in bold."""
    summaries = {name: json.loads((root / name / "summary.json").read_text()) for name in landscapes}
    budgets = {n: (s["config"]["epochs"], list(s["config"]["seeds"])) for n, s in summaries.items()}
    if len({json.dumps(b) for b in budgets.values()}) == 1:  # one budget: said once
        epochs, seeds = next(iter(budgets.values()))
        budget, budget_row = f"after {epochs} epochs, mean ± std over seeds {seeds}", []
    else:  # landscapes run with other --budget / --seeds: said per column
        budget = "mean ± std over seeds, after the epochs and over the seeds in the last row (they differ by landscape)"
        budget_row = ["| epochs; seeds | " + " | ".join(f"{e}; {sd}" for e, sd in budgets.values()) + " |"]
    lines = ["# Study: bandits (paper Figs 2–3)", "",
             f"Final regret {budget} (bold: lowest per landscape). Non-negative vs signed pairs: `exp`/`wd1`, "
             "`linear`/`signed_linear*`.", "",
             "| scheme | " + " | ".join(landscapes) + " |", "|---|" + "---:|" * len(landscapes)]
    best = {n: min(s["schemes"], key=lambda k: s["schemes"][k]["final_regret_mean"]) for n, s in summaries.items()}
    for scheme in schemes:
        cells = []
        for n, s in summaries.items():
            r = s["schemes"][scheme]
            text = f"{r['final_regret_mean']:.4f} ± {r['final_regret_std']:.4f}"
            cells.append(f"**{text}**" if best[n] == scheme else text)
        lines.append(f"| `{scheme}` | " + " | ".join(cells) + " |")
    lines.append("| seconds | " + " | ".join(f"{s['total_seconds']:.0f}" for s in summaries.values()) + " |")
    lines += budget_row
    lines += ["", *(f"![{n}]({n}/regret.png)" for n in landscapes), ""]
    (root / "results.md").write_text("\n".join(lines))
    table = {n: {k: v["final_regret_mean"] for k, v in s["schemes"].items()} for n, s in summaries.items()}
    (root / "results.json").write_text(json.dumps({"final_regret_mean": table, "summaries": summaries}, indent=2) + "\n")
    return root
