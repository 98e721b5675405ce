"""The `simpo` command line: train, eval, plot, bandit, study, advise, sweep.

    simpo train --env HalfCheetah-v5 --algo simpo --preset fast --weighting square --total-steps 100000
    simpo train --resume runs/HalfCheetah-v5/simpo-square-s0
    simpo train --env HalfCheetah-v5 --seeds 0 1 2 3 4     # five seeds in one process: runs/.../simpo-exp-s0-1-2-3-4/seed{K}/
    simpo eval --run-dir runs/HalfCheetah-v5/simpo-square-s0
    simpo plot runs/HalfCheetah-v5 --out curves.png
    simpo bandit --landscape bad-region --seeds 0 1 2 3 4

Bad input ends with one line on stderr and exit code 2 (add --verbose for the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import threading
import warnings
from pathlib import Path

COMMANDS = {
    "train": "train an agent online (simpo, dpmd, qvpo, sac) on a gymnasium or dm_control env",
    "eval": "evaluate the newest checkpoint of a run, in both modes",
    "plot": "draw learning curves (mean and CI over seeds) of one or more runs",
    "bandit": "run the bandit study: one landscape x weighting schemes x seeds",
    "study": "run a named study of the paper (grid of envs x algos x seeds), resumable; aggregate with rliable",
    "advise": "measure the candidate-Q landscape of an env or bandit and recommend a weighting scheme",
    "sweep": "run a study grid or a hyperparameter search as Ray Tune trials (needs simpo[ray])",
}


class UsageError(ValueError):
    """Bad command-line input."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one `UsageError` line that points to --help (argparse prints its usage block
    first, then the error, and exits)."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def seed_arg(text: str) -> int:
    """argparse type of a seed: an int in [0, 2**32) (JAX keys take 32 bits)."""
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed must be in [0, 2**32), got {value}")
    return value


def _usage() -> str:
    lines = ["usage: simpo COMMAND [options]   (simpo COMMAND --help for its options; simpo --version)", "",
             "commands:"]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


_RULE = re.compile(r"\s*-{3,}\s*")  # an ASCII panel's rule line in tyro's error text


def parse_config(cls, args: list[str], prog: str, **kwargs):
    """`tyro.cli`, with its boxed error panels turned into one `UsageError` line (help passes through)."""
    import tyro

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=args, prog=prog, **kwargs)
    except SystemExit as exit_:
        text = captured.getvalue()
        if not exit_.code:
            sys.stdout.write(text)
            raise
        body = text.splitlines()
        if len(body) > 1 and _RULE.fullmatch(body[1]):  # ASCII panels (no box chars): title, rule
            body = body[1:]
        body = [line for line in body if not line.lstrip().startswith("╭") and not _RULE.fullmatch(line)]
        lines = [re.sub(r"[╭╮╰╯│─━]+", " ", line).strip() for line in body]
        lines = [line for line in lines if line and not line.startswith(("For full helptext", "usage:"))]
        message = re.sub(r"\s+", " ", " ".join(lines))
        raise UsageError(f"{message} (see {prog} --help)") from None


def cmd_train(args: list[str]) -> int:
    from simpo.flags import check_given_flags, check_other_algo_flags
    from simpo.train import TrainConfig, default_config, train

    if any(a == "--resume" or a.startswith("--resume=") for a in args):
        return resume_train(args)
    pre = ArgumentParser(prog="simpo train", add_help=False)
    for flag, default in (("--algo", "simpo"), ("--preset", "fast"), ("--env", TrainConfig.env)):
        pre.add_argument(flag, default=default)
    known, _ = pre.parse_known_args(args)
    defaults = default_config(known.algo, known.preset, known.env)
    check_other_algo_flags(defaults, args)
    config = parse_config(TrainConfig, args, "simpo train", default=defaults,
                          description="Train an agent online; every field below is a flag. `simpo train --resume RUN_DIR "
                          "[--no-progress]` continues a stopped run with its saved config. Add --verbose to any "
                          "simpo command for a traceback on error.")
    check_given_flags(config, args)
    if config.env.startswith("playground:"):  # MuJoCo Playground: the whole loop on device
        from simpo.ondevice import train_on_device

        result = train_on_device(config)
    else:
        result = train(config)
    if config.first_update_step >= config.total_steps:  # likely a mistake (the default warm-up is 5000 steps)
        print(f"simpo train: warning: no update ran: updates start after warmup_steps={config.warmup_steps} "
              f"and a first batch of batch_size={config.batch_size}, but total_steps={config.total_steps}; "
              "the evaluations are of the initial policy", file=sys.stderr)
    print(f"run directory: {result.run_dir}")
    return 0


def resume_train(args: list[str]) -> int:
    """`simpo train --resume RUN_DIR`: continue a run exactly, with the config saved in RUN_DIR."""
    import dataclasses

    from simpo.evaluation import read_run_config
    from simpo.train import train

    parser = ArgumentParser(prog="simpo train", add_help=False)  # errors point to simpo train --help
    parser.add_argument("--resume", type=Path, required=True)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    ns, extra = parser.parse_known_args(args)
    if extra:
        raise UsageError(f"--resume continues a run with its saved config; other flags are not allowed "
                         f"(got {' '.join(extra)}); only --no-progress may be added")
    config = dataclasses.replace(read_run_config(ns.resume, "resuming"), run_dir=ns.resume, progress=ns.progress)
    result = train(config, resume=True)
    if result.start_step >= config.total_steps:
        print(f"nothing to resume: the run was already complete (env step {result.start_step} of {config.total_steps})")
    print(f"run directory: {result.run_dir}")
    return 0


def cmd_eval(args: list[str]) -> int:
    from simpo.evaluation import evaluate_run

    parser = ArgumentParser(prog="simpo eval", description=COMMANDS["eval"])
    parser.add_argument("--run-dir", type=Path, required=True, help="a run directory written by simpo train")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per mode (default: 10)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the eval envs and policy samples")
    parser.add_argument("--video", type=Path, help="also render the first episode of --video-mode to this .mp4 "
                        "(needs simpo[video]) or .gif (MuJoCo renders through MUJOCO_GL=egl, set when unset)")
    parser.add_argument("--video-mode", choices=("best_of_n", "single"), default="best_of_n",
                        help="the evaluation mode to record (default: best_of_n, the reported protocol)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --video file")
    ns = parser.parse_args(args)
    if ns.overwrite and ns.video is None:
        raise UsageError("--overwrite replaces an existing --video file; it needs --video")
    print(json.dumps(evaluate_run(ns.run_dir, ns.episodes, ns.seed, ns.video, ns.video_mode, ns.overwrite), indent=2))
    return 0


def cmd_plot(args: list[str]) -> int:
    from simpo.plot import expand_run_dirs, plot_learning_curves

    parser = ArgumentParser(prog="simpo plot", description=COMMANDS["plot"])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run directories, or folders of runs")
    parser.add_argument("--out", type=Path, default=Path("learning_curves.png"), help="the PNG to write")
    parser.add_argument("--metric", default="eval_return_mean", help="a metrics.csv column to plot against env_step")
    ns = parser.parse_args(args)
    out = plot_learning_curves(expand_run_dirs(ns.run_dirs), ns.out, metric=ns.metric)
    print(f"wrote {out}")
    return 0


def cmd_bandit(args: list[str]) -> int:
    from simpo.bandit import BanditConfig, run_study

    config = parse_config(BanditConfig, args, "simpo bandit", description=COMMANDS["bandit"])
    out = run_study(config)
    print(f"run directory: {out}")
    return 0


def cmd_advise(args: list[str]) -> int:
    from simpo.advisor import PROBE_EPOCHS, PROBE_WEIGHTING, advise, advise_bandit, format_advice
    from simpo.weighting import check_candidates

    parser = ArgumentParser(prog="simpo advise", description=COMMANDS["advise"])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", help="a training env id (as in simpo train), e.g. dmc:cheetah-run")
    where.add_argument("--landscape", help="a bandit landscape (simpo.bandit.landscapes), e.g. sharp")
    parser.add_argument("--warmup-steps", type=int, default=1000, help="random env steps first")
    parser.add_argument("--train-steps", type=int, default=1000, help="then env steps with one update each")
    parser.add_argument("--seed", type=seed_arg, default=0)
    parser.add_argument("--reward-transform", default="none", help="see simpo.transforms")
    parser.add_argument("--candidates", type=int, default=64, help="N candidates per state to measure")
    parser.add_argument("--preset", default="fast", help="the simpo preset of the warm-up run (fast or paper)")
    parser.add_argument("--jitter", type=float, default=0.2, help="bandit candidate jitter (--landscape only)")
    parser.add_argument("--probe-epochs", type=int, default=PROBE_EPOCHS,
                        help=f"bandit epochs of {PROBE_WEIGHTING} before measuring; 0: at the initial policy "
                        "(--landscape only)")
    parser.add_argument("--run-dir", type=Path, default=None, help="keep the warm-up run here (default: temporary)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON only")
    ns = parser.parse_args(args)
    check_candidates("--candidates", ns.candidates, 2)  # the functions would name their num_candidates
    if ns.run_dir is not None and ns.run_dir.is_dir() and any(ns.run_dir.iterdir()):
        raise UsageError(f"run directory {ns.run_dir} is not empty; advise never overwrites: choose another --run-dir")
    if ns.landscape is not None:
        advice = advise_bandit(ns.landscape, ns.seed, ns.candidates, jitter=ns.jitter, probe_epochs=ns.probe_epochs)
        title = f"bandit {ns.landscape}"
    else:
        advice = advise(ns.env, ns.warmup_steps, ns.train_steps, ns.seed, ns.reward_transform, ns.candidates,
                        run_dir=ns.run_dir, preset=ns.preset, progress=not ns.json)
        title = ns.env + (f" (reward {ns.reward_transform})" if ns.reward_transform != "none" else "")
    print(json.dumps(advice.to_dict(), indent=2) if ns.json else format_advice(advice, title))
    return 0


def cmd_study(args: list[str]) -> int:
    from simpo.study import STUDIES, aggregate, run_study

    if args[:1] == ["aggregate"]:
        parser = ArgumentParser(prog="simpo study aggregate", description="re-aggregate run directories")
        parser.add_argument("root", type=Path, help="any folder holding run directories")
        parser.add_argument("--out", type=Path, default=None, help="default: ROOT/results")
        parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
        ns = parser.parse_args(args[1:])
        print(f"results: {aggregate(ns.root, ns.out or ns.root / 'results', reps=ns.reps)}")
        return 0
    parser = ArgumentParser(prog="simpo study", description=COMMANDS["study"])
    parser.add_argument("name", nargs="?", help=f"one of: {', '.join(STUDIES)}; or `aggregate DIR`")
    parser.add_argument("--list", action="store_true", help="list the studies")
    parser.add_argument("--budget", type=int, help="env steps per run (bandits: epochs); default: the study's")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the study's (0 1 2 3 4)")
    parser.add_argument("--preset", choices=("paper", "fast"), help="default: the study's (paper)")
    parser.add_argument("--envs", nargs="+", help="run only these of the study's envs (bandits: landscapes); "
                        "default: all (`--list` shows them)")
    parser.add_argument("--arms", nargs="+", help="run only these arms, by label (e.g. sac simpo-square), in this "
                        "order; default: all (`--list` shows them)")
    parser.add_argument("--out", type=Path, default=Path("runs/study"))
    parser.add_argument("--overwrite", action="store_true", help="restart every run instead of resuming")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples of the aggregate CIs")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    ns = parser.parse_args(args)
    if ns.list or not ns.name:
        for name, study in STUDIES.items():
            print(f"{name:<18} {study.description} [{study.paper}; default budget {study.budget:,}]")
            print(f"{'':<18} envs: {' '.join(study.envs)}")
            if study.arms:
                print(f"{'':<18} arms: {' '.join(arm.label for arm in study.arms)}")
        return 0
    out = run_study(ns.name, ns.out, ns.budget, ns.seeds, ns.preset, ns.overwrite, ns.progress, ns.reps, ns.envs,
                    ns.arms)
    print(f"results: {out}")
    return 0


def cmd_sweep(args: list[str]) -> int:
    from simpo.sweep import parse_args, run_sweep

    out = run_sweep(parse_args(args))
    print(f"sweep directory: {out}")
    return 0


def _one_line(err: BaseException) -> str:
    """The first line of an error message; an OSError from the system reads 'cannot access PATH: REASON'."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        target = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else str(err.filename)
        return f"cannot access {target}: {err.strerror}"
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


HANDLERS = {"train": cmd_train, "eval": cmd_eval, "plot": cmd_plot, "bandit": cmd_bandit, "study": cmd_study, "advise": cmd_advise, "sweep": cmd_sweep}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from simpo import __version__

        print(f"simpo {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in HANDLERS:
        print(f"simpo: error: unknown command {command!r}; allowed: {', '.join(HANDLERS)}", file=sys.stderr)
        return 2
    if not verbose:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # A failed orbax restore leaves tensorstore reads behind that report into a closed event loop:
        # noise after the one line that matters. --verbose shows it.
        sys.unraisablehook = lambda _: None
        threading.excepthook = lambda _: None
    try:
        return HANDLERS[command](rest)
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early: not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(f"simpo {command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:  # bad input, or a path that cannot be read or written
        if verbose:
            raise
        print(f"simpo {command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug or an environment problem: one line, the rest with --verbose
        if verbose:
            raise
        if type(err).__name__ in ("CheckpointError", "NonFiniteError"):  # one clear line of their own
            print(f"simpo {command}: error: {_one_line(err)}", file=sys.stderr)
            return 2 if type(err).__name__ == "CheckpointError" else 1
        print(f"simpo {command}: error: {type(err).__name__}: {_one_line(err)} "
              "(rerun with --verbose for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
