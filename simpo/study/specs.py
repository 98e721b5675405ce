"""The paper's studies as data (issue 6; SPEC §6–§8): a `Study` is a grid env × reward transform × arm × seeds.

An `Arm` is one column of a results table: an algorithm preset (simpo, dpmd, qvpo, sac) and, for SiMPO, a
weighting scheme with its parameters (`simpo.bandit.parse_scheme` syntax, e.g. ``"signed_linear:floor=-0.02"``).
`cells(name, budget, seeds, preset, envs, arms)` expands a study into `Cell`s, one `TrainConfig` each (seed = the
first seed, run_dir unset); the runner trains every seed of a cell into OUT/NAME/<cell.name>/seed{K}/.

`--budget` shortens every run to that many env steps, and scales what must scale with it: warm-up steps
(at most a tenth of the budget), the evaluation interval (at least 5 evaluations) and the checkpoint interval
(at least 2 checkpoints, so an interrupted study resumes mid-run). Results are labelled with their budget.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Literal

from simpo.bandit.landscapes import LANDSCAPES
from simpo.bandit.study import DEFAULT_SCHEMES, parse_scheme
from simpo.presets import ALGOS, PRESETS
from simpo.train import TrainConfig, default_config
from simpo.transforms import REWARD_TRANSFORMS

_SCHEME_FIELDS = {"p": "power_p", "floor": "floor", "negative_mass": "negative_mass"}  # parse_scheme -> SiMPOConfig


@dataclass(frozen=True)
class Arm:
    """One algorithm column: `algo` (a preset) and, for simpo/dpmd/qvpo, an optional scheme spec."""

    algo: str
    scheme: str | None = None
    """`parse_scheme` spec (``"square"``, ``"signed_linear:floor=-0.02"``); None keeps the preset's weighting."""

    @property
    def label(self) -> str:
        if self.algo == "sac":
            return "sac"
        name, params = parse_scheme(self.scheme) if self.scheme else ("", {})
        return run_label(self.algo, name or _preset_weighting(self.algo), {_SCHEME_FIELDS[k]: v for k, v in params.items()})

    def apply(self, config: TrainConfig) -> TrainConfig:
        if self.algo == "sac" or not self.scheme:
            return config
        name, params = parse_scheme(self.scheme)
        agent = dataclasses.replace(config.agent, weighting=name, **{_SCHEME_FIELDS[k]: v for k, v in params.items()})
        return dataclasses.replace(config, agent=agent)


def _preset_weighting(algo: str) -> str:
    return default_config(algo).agent.weighting


def run_label(algo: str, weighting: str, params: dict) -> str:
    """``simpo-square``, ``simpo-signed_linear:floor=-0.02``, ``sac``: the label a run is grouped by. Only the
    parameter of the run's own scheme is named (`simpo.agents.simpo_config.SCHEME_FIELDS`: signed_linear's floor
    where finite, power's p, wd1's negative_mass where not 1); one that its scheme ignores (a floor with exp) is not."""
    if algo == "sac":
        return "sac"
    shown = []
    floor = float(params.get("floor", -math.inf))
    if weighting == "signed_linear" and math.isfinite(floor):
        shown.append(f"floor={floor:g}")
    if weighting == "power":
        shown.append(f"p={float(params.get('power_p', 2.0)):g}")
    if weighting == "wd1" and float(params.get("negative_mass", 1.0)) != 1.0:
        shown.append(f"negative_mass={float(params['negative_mass']):g}")
    return f"{algo}-{weighting}" + (":" + ",".join(shown) if shown else "")


@dataclass(frozen=True)
class Study:
    """A named grid. `kind="bandit"` studies run `simpo.bandit.run_study` per landscape (`envs` = landscapes,
    `arms` unused, `schemes` the bandit scheme specs, budget = epochs); `kind="train"` studies train agents."""

    name: str
    description: str
    envs: tuple[str, ...]
    arms: tuple[Arm, ...] = ()
    reward_transforms: tuple[str, ...] = ("none",)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    budget: int = 1_000_000
    """Env steps per run (train), or epochs (bandit)."""
    preset: str = "paper"
    eval_interval: int = 10_000
    eval_episodes: int = 10
    kind: Literal["train", "bandit"] = "train"
    schemes: tuple[str, ...] = ()
    paper: str = ""
    """Where the paper reports this study (for docs/results.md)."""


MUJOCO_ENVS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Swimmer-v5")
# The paper does not say which scheme gave each env's number (docs/paper_notes.md §4): we run both new schemes
# and report the better one per env as "SiMPO (best scheme)", which is how the paper picks too. It is picked on
# the seeds it is reported on, so it is biased upward (the larger of two noisy means).
SIMPO_SCHEMES = ("linear", "square")

STUDIES: dict[str, Study] = {
    "bandits": Study(
        name="bandits", kind="bandit", envs=tuple(LANDSCAPES), schemes=DEFAULT_SCHEMES, budget=200,
        description="every built-in bandit landscape × every weighting scheme, signed and non-negative pairs",
        paper="Figs 2–3 (SPEC §6)"),
    "reward-landscape": Study(
        name="reward-landscape", envs=("dmc:cheetah-run",), reward_transforms=("flat", "steep"),
        arms=tuple(Arm("simpo", s) for s in ("exp", "linear", "square")), budget=1_000_000,
        description="dm_control cheetah-run with a flat and a steep reward (simpo.transforms) × exp, linear, square",
        paper="Fig. 5 (SPEC §7)"),
    "mujoco": Study(
        name="mujoco", envs=MUJOCO_ENVS,
        arms=(*(Arm("simpo", s) for s in SIMPO_SCHEMES), Arm("dpmd"), Arm("qvpo"), Arm("sac")),
        description="MuJoCo v5: SiMPO (linear, square) vs DPMD, QVPO and SAC, 5 seeds × 1M env steps",
        paper="MuJoCo table (SPEC §8)"),
    "negative-weights": Study(
        name="negative-weights", envs=MUJOCO_ENVS,
        arms=(Arm("simpo", "linear"), Arm("simpo", "signed_linear:floor=-0.02"), Arm("simpo", "exp"),
              Arm("simpo", "wd1")),
        description="negative-weights ablation: non-negative (linear, exp) vs signed (signed_linear, wd1) weights",
        paper="ablation (issue 6)"),
}


@dataclass(frozen=True)
class Cell:
    """One grid point: every seed of one (env, reward transform, arm)."""

    name: str
    config: TrainConfig
    seeds: tuple[int, ...]


def get_study(name: str) -> Study:
    if name not in STUDIES:
        close = difflib.get_close_matches(str(name), STUDIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown study {name!r}{hint}; allowed: {', '.join(STUDIES)}")
    return STUDIES[name]


def check_budget_seeds(budget: int | None, seeds) -> tuple[int, ...] | None:
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise ValueError(f"budget must be a positive int (env steps, or epochs for bandits), got {budget!r}")
    if seeds is None:
        return None
    seeds = tuple(seeds) if not isinstance(seeds, int) else None
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds contain duplicates: {list(seeds)}")
    return seeds


def _subset(study: Study, kind: str, given, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """`given` names (None: all of `allowed`) as a tuple, in the order given; one-line ValueError for an unknown
    or repeated name, naming the allowed ones. `kind` ("env", "arm") words the error."""
    if given is None:
        return allowed
    given = (given,) if isinstance(given, str) else tuple(given)
    unknown = [g for g in given if g not in allowed]
    if not given or unknown:
        raise ValueError(f"study {study.name!r} has no {kind} {unknown[0] if unknown else '(none given)'!r}; "
                         f"allowed: {', '.join(allowed)}")
    if len(set(given)) != len(given):
        raise ValueError(f"{kind}s contain duplicates: {list(given)}")
    return given


def check_envs(study: Study, envs) -> tuple[str, ...]:
    """`envs` as a tuple of the study's envs (None: all of them); ValueError naming the allowed ones."""
    return _subset(study, "env", envs, study.envs)


def check_arms(study: Study, arms) -> tuple[Arm, ...]:
    """The study's arms whose labels are `arms`, in the order given (None: all of them); ValueError naming the
    allowed labels."""
    labels = {arm.label: arm for arm in study.arms}
    return tuple(labels[a] for a in _subset(study, "arm", arms, tuple(labels)))


def cells(name: str, budget: int | None = None, seeds=None, preset: str | None = None, envs=None,
          arms=None) -> list[Cell]:
    """The training grid of study `name`, restricted to `envs` and `arms` (labels such as ``sac``,
    ``simpo-square``) if given, in the order given (ValueError for a bandit study: it is not a training grid)."""
    study = get_study(name)
    seeds = check_budget_seeds(budget, seeds) or study.seeds
    if study.kind != "train":
        raise ValueError(f"study {name!r} is a bandit study, not a training grid; run it with `simpo study {name}`")
    preset = preset or study.preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    steps = budget or study.budget
    out, chosen = [], check_arms(study, arms)
    for env in check_envs(study, envs):
        for transform in study.reward_transforms:
            for arm in chosen:
                assert arm.algo in ALGOS and transform in REWARD_TRANSFORMS
                config = arm.apply(default_config(arm.algo, preset, env))
                config = dataclasses.replace(
                    config, seed=seeds[0], total_steps=steps, run_dir=None, reward_transform=transform,
                    warmup_steps=min(config.warmup_steps, steps // 10),
                    eval_interval=min(study.eval_interval, math.ceil(steps / 5)),
                    eval_episodes=study.eval_episodes if steps >= study.budget else min(study.eval_episodes, 5),
                    checkpoint_interval=min(config.checkpoint_interval, math.ceil(steps / 2)))
                parts = [env.split(":")[-1]] + ([transform] if study.reward_transforms != ("none",) else [])
                out.append(Cell("/".join([*parts, arm.label]), config, seeds))
    return out
