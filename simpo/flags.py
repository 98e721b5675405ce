"""Flags a run would silently ignore (the other algorithm's options, a scheme's parameter under another scheme,
...): `simpo train` refuses them, `simpo sweep` refuses those that every trial would ignore."""

from __future__ import annotations

from simpo.agents.simpo_config import SCHEME_FIELDS

SCHEME_OPTIONS = {f"--agent.{field.replace('_', '-')}": scheme for scheme, field in SCHEME_FIELDS.items()}
TARGET_OPTIONS = {"--agent.temperature.kl-target": "kl", "--agent.temperature.ess-target": "ess"}


def given_flags(args: list[str]) -> list[str]:
    """The --flags in `args`, as typed but with dashes for underscores."""
    return sorted({a.split("=")[0].replace("_", "-") for a in args if a.startswith("--")})


def ignored_flags(config, args: list[str]) -> dict[str, str]:
    """The flags in `args` that `config` would silently ignore, each with the reason: the other algorithm's
    options, a scheme's or a temperature target's parameter under another one, --ondevice.* on a host env,
    --log-interval on device, --wandb-project without --track, --seed beside --seeds, --seed-batching without --seeds."""
    sac, agent, playground = config.algo == "sac", config.agent, config.env.startswith("playground:")
    reasons = {
        f"--algo {config.algo} does not use the SiMPO/DPMD/QVPO options (--agent.*, --weighting); SAC's are --sac.*":
            lambda f: sac and (f.startswith("--agent.") or f == "--weighting"),
        f"--algo {config.algo} does not use SAC's options (--sac.*); its own are --agent.*":
            lambda f: not sac and f.startswith("--sac."),
        f"weighting {agent.weighting} does not take it ("
        f"{', '.join(f'{scheme} takes {flag}' for flag, scheme in SCHEME_OPTIONS.items())})":
            lambda f: f in SCHEME_OPTIONS and SCHEME_OPTIONS[f] != agent.weighting,
        f"the temperature target is {agent.temperature.target} (kl-target is for kl, ess-target for ess)":
            lambda f: f in TARGET_OPTIONS and TARGET_OPTIONS[f] != agent.temperature.target,
        "the temperature target is fixed, so λ has no learning rate":
            lambda f: f == "--agent.temperature.lr" and agent.temperature.target == "fixed",
        "--ondevice.* applies to playground:NAME envs only (the fully on-device loop)":
            lambda f: not playground and f.startswith("--ondevice."),
        "playground: envs log a chunk's last update, once per chunk (up to the next evaluation or checkpoint)":
            lambda f: playground and f == "--log-interval",
        "--wandb-project applies with --track only": lambda f: not config.track and f == "--wandb-project",
        "--seeds overrides --seed; give one of them": lambda f: bool(config.seeds) and f == "--seed",
        "--seed-batching applies to --seeds only": lambda f: not config.seeds and f == "--seed-batching",
    }
    return {f: next(why for why, ignores in reasons.items() if ignores(f))  # the first reason that applies
            for f in given_flags(args) if any(ignores(f) for ignores in reasons.values())}


def refuse_ignored(ignored: dict[str, str], who: str = "") -> None:
    """ValueError, one line, for the first reason in `ignored` (flag -> reason), naming every flag it covers."""
    if ignored:
        why = next(iter(ignored.values()))
        raise ValueError(f"{' '.join(f for f, w in ignored.items() if w == why)} would be ignored{who}: {why}")


def check_other_algo_flags(defaults, args: list[str]) -> None:
    """Before parsing: refuse the other algorithm's flags (`defaults` carries --algo), so `--algo sac
    --agent.num-candidates 4` is told that SAC ignores --agent.*, not that N = 4 cannot reach SiMPO's KL target."""
    other = ("--agent.", "--weighting") if defaults.algo == "sac" else ("--sac.",)
    refuse_ignored(ignored_flags(defaults, [a for a in args if a.startswith(other)]))


def check_given_flags(config, args: list[str]) -> None:
    """Refuse the flags `config` would silently ignore (`ignored_flags`). ValueError, one line."""
    refuse_ignored(ignored_flags(config, args))
