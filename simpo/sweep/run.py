"""The sweep driver: validate everything, start (or join) Ray, run the trials with Tune, summarise.

Nothing is written, and Ray is not started, before the whole sweep has been checked: every field name, every
grid value and distribution bound (as a `simpo train` flag), every grid trial's config, and the output folder.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import logging
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simpo.cli import ArgumentParser
from simpo.flags import given_flags, ignored_flags, refuse_ignored
from simpo.sweep.space import (RESERVED, TrialBuilder, check_name, check_spec, config_fields, flag_field, parse_param,
                               read_space, tune_domain)

KILL_ONCE_ENV = "SIMPO_SWEEP_KILL_ONCE"  # fault injection for tests: a marker-file path (simpo.sweep.trial)
RAY_MISSING = "simpo sweep needs Ray: pip install -c constraints.txt -e '.[ray]'"
MAX_CHECKED = 512  # grids up to this many trials have every trial's config checked up front


@dataclass(frozen=True)
class SweepConfig:
    out: Path
    base_args: tuple[str, ...] = ()
    """`simpo train` flags shared by every trial."""
    params: tuple[str, ...] = ()
    """--param NAME=V1,V2 grids."""
    space: Path | None = None
    study: str | None = None
    budget: int | None = None
    seeds: tuple[int, ...] | None = None
    group_seeds: bool = False
    """Study mode: one trial per cell, training its seeds together (TrainConfig.seeds), instead of one per seed."""
    num_samples: int = 1
    asha: bool = False
    asha_grace: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str | None = None
    num_cpus: int | None = None
    max_failures: int = 3
    resume: bool = False


def parse_args(args: list[str]) -> SweepConfig:
    """`simpo sweep` flags; the ones this parser does not know are `simpo train` flags for every trial."""
    parser = ArgumentParser(
        prog="simpo sweep", allow_abbrev=False,
        description="Run a study grid or a hyperparameter search as Ray Tune trials, one simpo train run each. "
                    "Any other flag is a `simpo train` flag applied to every trial (e.g. --total-steps 100000).")
    what = parser.add_argument_group("what to run (a study, a search space, or both)")
    what.add_argument("--study", help="a named study (simpo study --list): its cells x seeds become trials")
    what.add_argument("--budget", type=int, help="env steps per run of the study (default: the study's)")
    what.add_argument("--seeds", type=int, nargs="+",
                      help="the study's seeds (default: the study's); without --study, every trial trains these "
                           "seeds together (simpo train --seeds)")
    what.add_argument("--group-seeds", action="store_true",
                      help="study: one trial per cell, its seeds trained together (simpo train --seeds)")
    what.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                      help="grid over a TrainConfig field by dotted name, e.g. agent.weighting=exp,square")
    what.add_argument("--space", type=Path, help="a YAML search space (see simpo.sweep)")
    what.add_argument("--num-samples", type=int, default=1, help="samples of the space (each repeats the grid)")
    what.add_argument("--asha", action="store_true", help="ASHA early stopping on eval_return_mean over env_step")
    what.add_argument("--asha-grace", type=int, help="env steps before ASHA may stop a trial (default: 1/10)")
    where = parser.add_argument_group("where and how")
    where.add_argument("--out", type=Path, required=True, help="the sweep folder: runs/, tune/, trials.csv")
    where.add_argument("--address", help="an existing Ray cluster: auto or ray://HOST:10001 (default: local Ray)")
    where.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    where.add_argument("--cpus-per-trial", type=float, default=1.0)
    where.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU")
    where.add_argument("--max-failures", type=int, default=3, help="restarts of a trial from its checkpoint")
    where.add_argument("--resume", action="store_true",
                       help="continue the interrupted sweep in --out (its saved flags; finished trials are kept)")
    ns, train_args = parser.parse_known_args(args)
    if ns.resume:
        if train_args or sum(a.startswith("--") for a in args) != 2:
            raise ValueError("--resume takes only --out DIR: the sweep continues with its saved flags")
        return saved_config(ns.out)
    for name in ("num_samples", "budget", "asha_grace", "num_cpus"):
        if getattr(ns, name) is not None and getattr(ns, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(ns, name)}")
    if ns.cpus_per_trial <= 0 or ns.gpus_per_trial < 0 or ns.max_failures < 0:
        raise ValueError("--cpus-per-trial must be > 0, --gpus-per-trial >= 0 and --max-failures >= 0")
    if not (ns.study or ns.param or ns.space):
        raise ValueError("nothing to sweep: give --study NAME, --param NAME=V1,V2 or --space FILE.yaml")
    if ns.study is None and (ns.budget is not None or ns.group_seeds):
        raise ValueError("--budget and --group-seeds belong to --study")
    if ns.study is not None and any(a.split("=")[0] in ("--algo", "--env") for a in train_args):
        raise ValueError("--algo and --env come from the study's cells; to choose them, sweep --param algo=... instead")
    if ns.asha_grace is not None and not ns.asha:
        raise ValueError("--asha-grace sets ASHA's grace period; add --asha to stop trials early")
    set_per_trial = [f for f in given_flags(train_args) if flag_field(f, config_fields()) in RESERVED]
    if set_per_trial:
        raise ValueError(f"{' '.join(set_per_trial)} would be ignored: the sweep sets each trial's run directory "
                         "(OUT/runs/...), and turns off overwrite, progress and tracking")
    if ns.study is None and ns.seeds:
        train_args, ns.seeds = ["--seeds", *map(str, ns.seeds), *train_args], None
    if ns.address is not None and ns.num_cpus is not None:
        raise ValueError("--num-cpus sizes a local Ray instance; the cluster at --address has its own")
    return SweepConfig(out=ns.out, base_args=tuple(train_args), params=tuple(ns.param), space=ns.space,
                       study=ns.study, budget=ns.budget, seeds=tuple(ns.seeds) if ns.seeds else None,
                       group_seeds=ns.group_seeds,
                       num_samples=ns.num_samples, asha=ns.asha, asha_grace=ns.asha_grace,
                       cpus_per_trial=ns.cpus_per_trial, gpus_per_trial=ns.gpus_per_trial, address=ns.address,
                       num_cpus=ns.num_cpus, max_failures=ns.max_failures)


def plan(config: SweepConfig) -> tuple[TrialBuilder, dict[str, Any], int]:
    """(the trial builder, Tune's param_space, the number of trials); raises ValueError for any bad input."""
    fields = config_fields()
    space: dict[str, Any] = read_space(config.space) if config.space else {}
    for text in config.params:
        name, spec = parse_param(text)
        if name in space:
            raise ValueError(f"{name} is given twice (in --param and --space, or twice in --param)")
        space[name] = spec
    seeds_given = config.study is not None or any(a.split("=")[0] == "--seeds" for a in config.base_args)
    if seeds_given and {"seed", "seeds"} & space.keys():
        raise ValueError("the trials' seeds come from --seeds (or the study's seeds); sweep seeds with --seeds, "
                         "not as a parameter")
    cells: tuple = ()
    if config.study:
        from simpo.study import cells as study_cells

        pre = ArgumentParser(prog="simpo sweep", add_help=False)
        pre.add_argument("--preset")  # the study's cells are built from this preset's defaults
        study = study_cells(config.study, config.budget, config.seeds, pre.parse_known_args(config.base_args)[0].preset)
        if config.group_seeds:
            cells = tuple((c.name, dataclasses.replace(c.config, seeds=c.seeds)) for c in study)
        else:
            cells = tuple((f"{c.name}-s{s}", dataclasses.replace(c.config, seed=s)) for c in study for s in c.seeds)
    builder = TrialBuilder(tuple(config.base_args), Path(config.out).absolute(), cells,
                           os.environ.get(KILL_ONCE_ENV) or None)
    swept_too = [f for f in given_flags(config.base_args) if flag_field(f, fields) in space]
    if swept_too:
        names = ", ".join(flag_field(f, fields) for f in swept_too)
        raise ValueError(f"{' '.join(swept_too)} would be ignored: the same field is swept ({names}); give it in one "
                         "place")
    base = {"cell": 0} if cells else {}
    singles = []  # each value alone: the error names the field and the value
    for name, spec in space.items():
        values = check_spec(check_name(name, fields), spec)
        trial_configs = [builder.config({**base, name: value}) for value in values]
        if isinstance(spec, dict) and "grid" in spec:
            check_distinct(name, values, trial_configs)
        singles += [{**base, name: value} for value in values]
    grid = {k: v["grid"] for k, v in space.items() if isinstance(v, dict) and "grid" in v}
    if cells:
        grid = {"cell": list(range(len(cells))), **grid}
    trials = math.prod(len(v) for v in grid.values()) * config.num_samples
    if math.prod(len(v) for v in grid.values()) <= MAX_CHECKED:  # every grid trial, random draws at a bound
        fixed = {k: v if not isinstance(v, dict) else check_spec(k, v)[0] for k, v in space.items() if k not in grid}
        checked = [{**fixed, **dict(zip(grid, combo))} for combo in itertools.product(*grid.values())]
    else:  # too many to parse: each value alone, and each study cell
        checked = singles + [{"cell": cell} for cell in range(len(cells))]
    # refused if every trial would ignore it: a study's trials, or a swept algo's, may share flags meant for some
    ignored = [ignored_flags(builder.config(params), builder.args(params)) for params in checked or [base]]
    refuse_ignored({f: why for f, why in ignored[0].items() if all(f in i for i in ignored)}, " by every trial")
    param_space = {name: tune_domain(spec) for name, spec in space.items()}
    if cells:
        param_space["cell"] = tune_domain({"grid": grid["cell"]})
    return builder, param_space, trials


def check_distinct(name: str, values: list, configs: list) -> None:
    """Refuse grid values that make the same trial (0.001 and 1e-3; exp and exp): repeats come from --num-samples."""
    seen: dict = {}
    for value, trial in zip(values, configs):
        trial = dataclasses.replace(trial, run_dir=None)
        if trial in seen:
            raise ValueError(f"{name}: grid values {seen[trial]} and {value} make the same trial; to repeat trials, "
                             "use --num-samples")
        seen[trial] = value


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty directory; choose a new folder (or --resume)")


def saved_config(out: Path) -> SweepConfig:
    """The SweepConfig saved in OUT/sweep.json, for --resume."""
    path = Path(out) / "sweep.json"
    if not path.is_file() or not (Path(out) / "tune").is_dir():
        raise ValueError(f"{out} is not a started sweep (no sweep.json and tune/); nothing to resume")
    data = json.loads(path.read_text())
    return SweepConfig(**{**data, "out": Path(out), "space": data["space"] and Path(data["space"]),
                          "base_args": tuple(data["base_args"]), "params": tuple(data["params"]),
                          "seeds": data["seeds"] and tuple(data["seeds"]), "resume": True})


def _start_ray(config: SweepConfig) -> bool:
    """Join the cluster at --address, or start a quiet local Ray; True if this call started Ray."""
    import ray

    if ray.is_initialized():  # e.g. a test's shared instance
        return False
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    # Ray spawns its processes with fork+exec; JAX (already imported) warns about any fork: not this one
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    if config.address:
        ray.init(address=config.address, **quiet)
    else:
        ray.init(num_cpus=config.num_cpus or os.cpu_count(), include_dashboard=False, **quiet)
    return True


def _reporter():
    """A Tune callback that prints one line per trial event, instead of Tune's tables."""
    from ray import tune

    class Lines(tune.Callback):
        def __init__(self):
            self.failures: dict[str, int] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            print(f"trial {trial.trial_id}: started", flush=True)

        def on_trial_recover(self, iteration, trials, trial, **info):
            self.failures[trial.trial_id] = self.failures.get(trial.trial_id, 0) + 1
            step = (trial.last_result or {}).get("env_step", 0)
            print(f"trial {trial.trial_id}: failed ({self.failures[trial.trial_id]}x); Tune restarts it from its "
                  f"last checkpoint (last report at env step {step:.0f})", flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            print(f"trial {trial.trial_id}: error, giving up; see {trial.path}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            r = trial.last_result or {}
            how = "done" if r.get("env_step", 0) >= r.get("total_steps", 0) else "stopped early"
            print(f"trial {trial.trial_id}: {how} at env step {r.get('env_step', 0):.0f}, "
                  f"eval_return_mean {r.get('eval_return_mean', float('nan')):.1f}", flush=True)

    return Lines()


def run_sweep(config: SweepConfig) -> Path:
    """Run the sweep; returns the sweep folder (runs/, tune/, trials.csv, study/)."""
    try:
        import ray  # noqa: F401
        from ray import tune
    except ImportError:
        raise ValueError(RAY_MISSING) from None
    from simpo.sweep.trial import trainable

    out = Path(config.out).absolute()
    if not config.resume:
        check_out(out)
    builder, param_space, trials = plan(config)
    print(f"sweep: {trials} trials -> {out}{' (resumed)' if config.resume else ''}", flush=True)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's legacy output: silent at verbose=0
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # failures: one line each from _reporter
    started = _start_ray(config)  # before anything is written: a cluster that cannot be joined leaves no OUT behind
    try:
        if not config.resume:
            out.mkdir(parents=True, exist_ok=True)
            if config.space:  # keep the space with the sweep, for --resume
                config = dataclasses.replace(config, space=Path(shutil.copy(config.space, out / "space.yaml")))
            (out / "sweep.json").write_text(json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n")
        scheduler = None
        if config.asha:
            from ray.tune.schedulers import ASHAScheduler

            steps = builder.config(_first(param_space)).total_steps
            scheduler = ASHAScheduler(time_attr="env_step", max_t=steps,
                                      grace_period=config.asha_grace or max(1, steps // 10))
        resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
        fn = tune.with_resources(tune.with_parameters(trainable, builder=builder), resources)
        lines = _reporter()
        tuner = tune.Tuner.restore(str(out / "tune"), fn, resume_errored=True) if config.resume else tune.Tuner(
            fn, param_space=param_space,
            tune_config=tune.TuneConfig(metric="eval_return_mean", mode="max", num_samples=config.num_samples,
                                        scheduler=scheduler, trial_dirname_creator=lambda t: f"trial-{t.trial_id}"),
            run_config=tune.RunConfig(
                name="tune", storage_path=str(out), verbose=0, callbacks=[lines],
                failure_config=tune.FailureConfig(max_failures=config.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))
        earlier = _earlier_failures(out) if config.resume else {}  # this process counts only its own restarts
        results = tuner.fit()
        summary = write_summary(results, builder, out,
                                {t: earlier.get(t, 0) + lines.failures.get(t, 0) for t in {*earlier, *lines.failures}})
    finally:
        if started:
            import ray

            ray.shutdown()
    print(f"trials: {summary}", flush=True)
    with open(summary) as f:
        unfinished = [r["trial"] for r in csv.DictReader(f) if r["status"] == "stopped"]
    if unfinished and not config.asha:  # Tune stops its trials on Ctrl-C and returns
        print(f"{len(unfinished)} trials did not finish; continue with: simpo sweep --resume --out {out}", flush=True)
        raise KeyboardInterrupt
    return out


def _first(param_space: dict) -> dict:
    """One concrete parameter set (the first grid value of each entry; a sample of each distribution)."""
    from ray.tune.search.sample import Domain

    return {k: (v["grid_search"][0] if isinstance(v, dict) and "grid_search" in v
                else v.sample() if isinstance(v, Domain) else v) for k, v in param_space.items()}


def _earlier_failures(out: Path) -> dict[str, int]:
    """Each trial's restarts as the last run of the sweep wrote them to OUT/trials.csv (none if it wrote none)."""
    if not (out / "trials.csv").is_file():
        return {}
    with open(out / "trials.csv", newline="") as f:
        return {r["trial"]: int(r["failures"] or 0) for r in csv.DictReader(f)}


def write_summary(results, builder: TrialBuilder, out: Path, failures: dict[str, int]) -> Path:
    """OUT/trials.csv (one row per trial: its parameters, final report and run dir), and OUT/study/
    (rliable tables and plots of OUT/runs by simpo.study.aggregate) when some trial evaluated."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(result.path).name.removeprefix("trial-")
        config = builder.config(result.config, trial_id)
        step = int(metrics.get("env_step", 0))
        status = "error" if result.error else "done" if step >= config.total_steps else "stopped"
        rows.append({"trial": trial_id, "status": status, "env_step": step,
                     "eval_return_mean": metrics.get("eval_return_mean", ""),
                     "eval_return_single_mean": metrics.get("eval_return_single_mean", ""),
                     "resumed_from": metrics.get("resumed_from", ""), "failures": failures.get(trial_id, 0),
                     "run_dir": str(config.run_dir),
                     **{k: v for k, v in result.config.items()}})
    rows.sort(key=lambda r: r["trial"])
    path = out / "trials.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    if any(r["eval_return_mean"] != "" for r in rows):
        from simpo.study import aggregate

        try:
            print(f"study tables and plots: {aggregate(out / 'runs', out / 'study', title=f'sweep {out.name}')}")
        except ValueError as err:  # e.g. nothing to aggregate yet: the trials' own results still stand
            print(f"no study tables: {err}")
    return path
