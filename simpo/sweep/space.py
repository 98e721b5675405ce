"""Search spaces over TrainConfig fields by dotted name, and the TrainConfig of each trial.

Values are applied as `simpo train` flags by the same parser (`simpo.cli.parse_config`), so each is checked like a
flag. The YAML format is in the `simpo.sweep` docstring.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simpo.cli import ArgumentParser

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")
RESERVED = ("run_dir", "overwrite", "progress", "track")  # the sweep sets these for every trial


# ------------------------------------------------------------------------------- the search space
@functools.cache
def config_fields() -> dict[str, Any]:
    """Every TrainConfig leaf, by dotted name (agent.policy.steps, sac.actor_lr, ...), with its type."""
    from simpo.train import TrainConfig

    def walk(cls, prefix: str) -> dict[str, Any]:
        out = {}
        for name, hint in typing.get_type_hints(cls).items():
            inner = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
            out.update(walk(inner, f"{prefix}{name}.") if dataclasses.is_dataclass(inner) else {prefix + name: inner})
        return out

    return walk(TrainConfig, "")


def flag_field(flag: str, fields: dict[str, Any]) -> str | None:
    """The TrainConfig field a `simpo train` flag sets (`--agent.no-foo` -> agent.foo, `--weighting` ->
    agent.weighting), or None."""
    name = {"weighting": "agent.weighting"}.get(flag[2:], flag[2:]).replace("-", "_")
    head, dot, last = name.rpartition(".")
    negated = head + dot + last[3:] if last.startswith("no_") else None
    return name if name in fields else negated if fields.get(negated) is bool else None


def check_name(name: str, fields: dict[str, Any]) -> str:
    if name in RESERVED:
        raise ValueError(f"{name} cannot be swept: the sweep sets it for every trial")
    if name not in fields:
        close = difflib.get_close_matches(name, fields, n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; use dotted TrainConfig names like agent.actor_lr"
        raise ValueError(f"unknown config field {name!r}{hint}")
    return name


def parse_param(text: str) -> tuple[str, dict]:
    """``"agent.weighting=exp,square"`` -> ``("agent.weighting", {"grid": ["exp", "square"]})``."""
    name, eq, values = text.partition("=")
    items = [v.strip() for v in values.split(",")]
    if not eq or not name.strip() or not all(items):
        raise ValueError(f"bad --param {text!r}; expected NAME=V1,V2,... (e.g. agent.weighting=exp,square)")
    return name.strip().replace("-", "_"), {"grid": items}


def read_space(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"cannot parse search space {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"search space {path} must be a YAML mapping of dotted config names to values")
    return {str(k): ({"grid": v} if isinstance(v, list) else v) for k, v in data.items()}


def _number(value: Any) -> Any:
    """A uniform/loguniform bound as a number where float() reads it: PyYAML reads ``1e-4`` (no dot) as a string."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _scalar_type(hint: Any) -> Any:
    """``int | None`` -> int; any other hint as it is."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 else hint


def check_spec(name: str, spec: Any) -> list:
    """The values to validate for one entry: grid/choice members, a distribution's bounds, or the scalar. A
    uniform/loguniform range must be over a float field (it draws 12.7 for an int one: randint draws ints); its
    bounds may be strings that float() reads (``1e-4`` from YAML)."""
    if not isinstance(spec, dict):
        return [spec]
    if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ValueError(f"{name}: expected a value, a list, or one of {{{', '.join(DISTRIBUTIONS)}: ...}}, "
                         f"got {spec!r}")
    (kind, args), = spec.items()
    if not isinstance(args, list) or not args:
        raise ValueError(f"{name}: {kind} needs a non-empty list, got {args!r}")
    if kind in ("grid", "choice"):
        return args
    field = _scalar_type(config_fields().get(name, float))
    if kind in ("uniform", "loguniform") and field is not float:
        if field is int:
            raise ValueError(f"{name} is an int: {kind} would draw floats such as 12.7; use {{randint: [low, high]}} "
                             "(high excluded) or {choice: [...]}")
        raise ValueError(f"{name} is not a float field: {kind} draws floats; use {{grid: [...]}} or {{choice: [...]}}")
    if kind != "randint":
        args = [_number(a) for a in args]
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)
                                 for a in args) or not args[0] < args[1] or (kind == "loguniform" and args[0] <= 0):
        raise ValueError(f"{name}: {kind} needs [low, high] numbers with low < high (> 0 for loguniform), got {args}")
    return [args[0], args[1] - 1] if kind == "randint" else args


def tune_domain(spec: Any):
    from ray import tune

    if not isinstance(spec, dict):
        return spec
    (kind, args), = spec.items()
    if kind in ("grid", "choice"):
        return {"grid": tune.grid_search, "choice": tune.choice}[kind](args)
    return getattr(tune, kind)(*(args if kind == "randint" else map(_number, args)))


def flag_tokens(name: str, value: Any, fields: dict[str, Any]) -> list[str]:
    """`simpo train` flag tokens that set field `name` to `value` (a YAML value, or a string from --param)."""
    if fields[name] is bool:
        text = str(value).lower()
        if text not in ("true", "false"):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        head, _, last = name.rpartition(".")
        return [f"--{head + '.' if head else ''}{'' if text == 'true' else 'no-'}{last}"]
    if isinstance(value, (list, tuple)):
        return [f"--{name}", *map(str, value)]
    return [f"--{name}", *(str(value).split() or [""])]


# --------------------------------------------------------------------------------- trial configs
@dataclass(frozen=True)
class TrialBuilder:
    """Turns a trial's Tune parameters into its TrainConfig; shipped to every trial."""

    base_args: tuple[str, ...]  # simpo train flags shared by every trial
    out: Path
    cells: tuple = ()  # study mode: (name, TrainConfig) per trial, picked by the "cell" parameter
    kill_marker: str | None = None

    def args(self, params: dict[str, Any]) -> list[str]:
        """The `simpo train` flags of a trial: the base flags, then the swept parameters' (they win)."""
        fields = config_fields()
        return [*self.base_args, *(t for name, value in params.items() if name != "cell"
                                   for t in flag_tokens(name, value, fields))]

    def config(self, params: dict[str, Any], trial_id: str = "check"):
        """The trial's TrainConfig (the flags it would ignore are checked across trials, by `simpo.sweep.run.plan`)."""
        import tyro

        from simpo.cli import parse_config
        from simpo.train import TrainConfig, default_config

        params = dict(params)
        cell = params.pop("cell", None)
        pre = ArgumentParser(prog="simpo sweep", add_help=False)
        for flag, default in (("--algo", "simpo"), ("--preset", "fast"), ("--env", TrainConfig.env)):
            pre.add_argument(flag, default=default)
        known = vars(pre.parse_known_args(list(self.base_args))[0])
        known.update({k: str(v) for k, v in params.items() if k in known})
        if cell is not None:
            cell_name, default = self.cells[cell]
        else:
            cell_name, default = None, default_config(known["algo"], known["preset"], known["env"])
        where = " ".join(f"{k}={v}" for k, v in params.items()) or "the base flags"
        try:
            # no help text wanted here: without tyro's docstring parsing a parse took 22 ms instead of 54 (2-core Xeon)
            config = parse_config(TrainConfig, self.args(params), "simpo sweep", default=default,
                                  config=(tyro.conf.HelptextFromCommentsOff,))
        except ValueError as err:
            raise ValueError(f"trial with {where}: {err}") from None
        seeds = "-".join(map(str, config.seeds or (config.seed,)))
        slug = re.sub(r"[^\w.-]+", "-", cell_name or f"{config.env}-{config.label}-s{seeds}")
        run_dir = self.out / "runs" / f"{trial_id.rsplit('_', 1)[-1]}-{slug}"
        return dataclasses.replace(config, run_dir=run_dir, overwrite=False, progress=False, track=False)
