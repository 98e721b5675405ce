"""Run a named study (issue 6): every cell × seed, resuming a partial study, then aggregate.

Layout: OUT/NAME/<cell name>/seed{K}/, each a normal run directory of `simpo.train.train`; bandit studies
write OUT/bandits/<landscape>/ (a `simpo bandit` run directory). Resume rules, per seed run:

- finished (metrics.csv reached the run's total_steps): skipped;
- has a checkpoint: continued exactly with `train(config, resume=True)` (config read from the run);
- diverged (stopped with `NonFiniteError`, marked by diverged.txt): skipped, as resume is exact and would diverge
  again at the same step; the report lists it, and `overwrite` restarts it;
- anything else (empty, or stopped before its first checkpoint): restarted from scratch.

A run that diverges is marked (diverged.txt: the error's one line), said on stderr, and the study goes on with the
other runs. Seeds trained together in one process stop together; each is then trained again on its own (resumed
from its last checkpoint), so only the seeds that diverge alone are marked.

A run directory whose saved config differs from the cell's (another budget, say) is refused before anything
runs, unless `overwrite` (then every run of the study starts afresh).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from simpo.guard import NonFiniteError
from simpo.logger import read_config, to_jsonable
from simpo.plot import load_run
from simpo.study.aggregate import DIVERGED_FILE
from simpo.study.specs import Cell, check_budget_seeds, check_envs, cells, get_study
from simpo.train import TrainConfig, check_run_dir, run_config_dict, train

_IGNORED = ("run_dir", "progress", "overwrite", "track", "wandb_project")  # do not change what a run computes


_MISSING = object()


def _difference(saved, wanted, default=_MISSING, path: str = "") -> str | None:
    """None if the configs match, else the first differing key as ``"agent.tau: 0.005 in the run, 0.01 wanted"``.

    They match where both have a key and agree. A key the saved config lacks is a field added to the code after the
    run was made: the run behaved as its default, so it matches only where `wanted` holds that default too (a preset
    that sets the new field to another value does not resume, or count as done, a run made without it)."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        default = default if isinstance(default, dict) else {}
        for k in wanted:
            key = f"{path}.{k}" if path else k
            if k in _IGNORED:
                continue
            if k in saved:
                found = _difference(saved[k], wanted[k], default.get(k, _MISSING), key)
                if found:
                    return found
            elif default.get(k, _MISSING) not in (_MISSING, wanted[k]):
                return f"{key}: absent from the run's config (so it ran as {default[k]!r}), {wanted[k]!r} wanted"
        return None
    return None if saved == wanted else f"{path}: {saved!r} in the run, {wanted!r} wanted"


def config_difference(run_dir: Path, config: TrainConfig) -> str | None:
    """What makes the run in `run_dir` another config's (see `_difference`), or None if it is this config's."""
    if not (run_dir / "config.json").is_file():
        return "no config.json"
    try:
        saved = read_config(run_dir)
    except (ValueError, OSError) as err:
        return f"config.json unreadable ({err})"
    defaults = to_jsonable(run_config_dict(TrainConfig(algo=config.algo)))
    return _difference(saved, to_jsonable(run_config_dict(config)), defaults)


def run_state(run_dir: Path, config: TrainConfig) -> str:
    """"done", "resume", "fresh", "diverged" (marked by diverged.txt: not to resume) or "conflict" (a run of another
    config) for the seed run in `run_dir`."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return "fresh"
    if config_difference(run_dir, config) is not None:
        return "conflict"
    if (run_dir / DIVERGED_FILE).is_file():
        return "diverged"
    try:
        steps, _ = load_run(run_dir)
        if steps.max() >= config.total_steps:
            return "done"
    except (ValueError, OSError):
        pass
    ckpt = run_dir / "checkpoints"
    return "resume" if ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir()) else "fresh"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _train_cell(config: TrainConfig, cell_dir: Path, seeds: tuple[int, ...], states: dict[int, str],
                progress: bool = True) -> list[int]:
    """Train every seed of one cell into cell_dir/seed{K}/: all in one process (`TrainConfig.seeds`)
    when none has started, else seed by seed (finished and diverged ones skipped, started ones resumed). Returns
    the seeds that diverged (`NonFiniteError`), each marked with diverged.txt; the other seeds go on. Seeds trained
    together stop together: then each is trained again on its own from its last checkpoint."""
    one = {k: dataclasses.replace(config, seed=k, run_dir=cell_dir / f"seed{k}", progress=progress, overwrite=True)
           for k in seeds}
    if len(seeds) > 1 and all(states[k] == "fresh" for k in seeds):
        try:
            train(dataclasses.replace(config, seeds=tuple(seeds), run_dir=cell_dir, progress=progress, overwrite=True))
            return []
        except NonFiniteError as err:
            _say(f"{cell_dir}: {_line(err)}; its {len(seeds)} seeds trained together stopped with it: each is "
                 "trained again on its own, from its last checkpoint")
            states = {k: run_state(one[k].run_dir, one[k]) for k in seeds}
    diverged = []
    for k in seeds:
        run = one[k]
        if states[k] in ("done", "diverged"):
            continue
        try:
            if states[k] == "resume":
                from simpo.evaluation import read_run_config

                saved = read_run_config(run.run_dir)
                train(dataclasses.replace(saved, run_dir=run.run_dir, progress=progress), resume=True)
            else:
                train(run)
        except NonFiniteError as err:
            run.run_dir.mkdir(parents=True, exist_ok=True)
            (run.run_dir / DIVERGED_FILE).write_text(_line(err) + "\n")
            _say(f"{run.run_dir}: diverged ({_line(err)}); marked in {DIVERGED_FILE}, not resumed; the study goes on")
            diverged.append(k)
    return diverged


def _line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def plan(name: str, out: Path, budget: int | None = None, seeds=None, preset: str | None = None,
         overwrite: bool = False, envs=None, arms=None) -> list[tuple[Cell, Path, dict[int, str]]]:
    """(cell, cell directory, {seed: state}) for every cell; ValueError if the study cannot run as asked."""
    root = Path(out) / name
    grid = cells(name, budget, seeds, preset, envs, arms)
    rows = []
    for cell in grid:
        cell_dir = root / cell.name
        states = {}
        for k in cell.seeds:
            run = dataclasses.replace(cell.config, seed=k, run_dir=cell_dir / f"seed{k}", overwrite=True)
            check_run_dir(run)  # a file in the way, an unwritable parent: one line, before anything runs
            states[k] = "fresh" if overwrite else run_state(run.run_dir, run)
            if states[k] == "conflict":
                raise ValueError(f"{run.run_dir} holds a run with another config "
                                 f"({config_difference(run.run_dir, run)}); pass --overwrite or choose another --out")
        rows.append((cell, cell_dir, states))
    return rows


def run_study(name: str, out: str | Path = "runs/study", budget: int | None = None, seeds=None,
              preset: str | None = None, overwrite: bool = False, progress: bool = True, reps: int = 2000,
              envs=None, arms=None) -> Path:
    """Run study `name` (only `envs` and `arms` of it, if given) into OUT/NAME (resuming what is there), aggregate
    what OUT/NAME holds (every cell there, not only those run now), return the results directory."""
    study = get_study(name)
    if not isinstance(reps, int) or reps < 1:  # checked before the grid trains, not after
        raise ValueError(f"reps must be an int >= 1, got {reps!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    if study.kind == "bandit":
        from simpo.study.report import run_bandits

        if arms is not None:
            raise ValueError(f"study {name!r} is a bandit study: it has schemes, not arms; "
                             "choose landscapes with --envs")
        return run_bandits(study, out / name, budget, check_budget_seeds(budget, seeds), overwrite, progress,
                           check_envs(study, envs))
    rows = plan(name, out, budget, seeds, preset, overwrite, envs, arms)
    runs = sum(len(states) for _, _, states in rows)
    done = sum(s == "done" for _, _, states in rows for s in states.values())
    before = sum(s == "diverged" for _, _, states in rows for s in states.values())
    _say(f"study {name}: {len(rows)} cells × {len(rows[0][0].seeds)} seeds × {rows[0][0].config.total_steps} env "
         f"steps ({rows[0][0].config.preset} preset) into {out / name}; {done}/{runs} runs already done"
         + (f", {before} diverged before (not resumed; --overwrite restarts them)" if before else ""))
    diverged = []
    for i, (cell, cell_dir, states) in enumerate(rows, 1):
        todo = ", ".join(f"seed{k}: {s}" for k, s in states.items())
        _say(f"[{i}/{len(rows)}] {cell.name} ({todo})")
        diverged += [f"{cell.name}/seed{k}" for k in _train_cell(cell.config, cell_dir, cell.seeds, states, progress)]
    if diverged:
        _say(f"study {name}: {len(diverged)} run{'s' * (len(diverged) != 1)} diverged: {', '.join(diverged)} "
             "(each has a diverged.txt; the report's notes list them)")
    from simpo.study.aggregate import aggregate

    return aggregate(out / name, out / name / "results", reps=reps, title=f"study {name}")

