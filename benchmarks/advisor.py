"""Validation (not a test): does the weighting advisor pick the scheme that measurably won?

    nice -n 5 python benchmarks/advisor.py [--seeds 0 1 2] [--warmup-steps 1000] [--train-steps 1000]
        [--bandit-seeds 5 6 ... 24] [--bandit-epochs 200] [--cheetah-winners flat=SCHEME steep=SCHEME]
        [--cache runs/advisor] [--out docs/benchmarks/advisor.md]

Rows:
- every built-in bandit landscape (simpo.bandit.landscapes; the four marked held-out were added after the rule was
  fixed, and are labelled so; the four marked held-out 2 were added with the rule `auto_exp`, read off the first
  eight, to validate it; the four marked held-out 3 with one λ per scheme of the auto menus, to validate that; the
  four marked held-out 4 with the probe advice, to validate it) with the bandit's jitter 0.2, and `bad-region` with
  jitter 0: the advice (`advise_bandit`: stats after its probe of PROBE_EPOCHS of exp, the ADVICE_MENU rule) and
  the older advice (stats at the initial policy, the paper's menu), against final regrets measured here
  (`simpo.bandit.run_study`, --bandit-seeds, default 5-24: seeds that docs/bandits.md, where the signed suggestion
  was read off, did not use). Schemes are compared paired by
  seed (every scheme of a seed starts from the same initial policy and random stream), with bootstrap intervals; a
  winner is *decided* when it beats both others. Two hits are scored: the advisor's scheme against the best of the
  paper's three non-negative schemes (exp, linear, square), and its signed suggestion (made iff candidates are
  jittered) against whether signed_linear:floor=-0.02 beat that best one.
- dm_control cheetah-run with the `flat` and `steep` reward transforms (simpo.transforms): `advise` per seed (a
  short warm-up run each); the pick is the majority over seeds. The measured winners come from the reward-landscape
  study (docs/results.md), passed with --cheetah-winners; without them the rows say "winner not measured yet".
  They count as undecided unless --cheetah-decided says they won beyond noise.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402

from simpo.advisor import (ADVICE_MENU, AUTO_MENUS, PROBE_EPOCHS, PROBE_WEIGHTING, STEEP_SKEW, Advice,  # noqa: E402
                           advise, advise_bandit, recommend)
from simpo.bandit import LANDSCAPES, BanditConfig, run_study  # noqa: E402
from simpo.train import default_config  # noqa: E402

NON_NEGATIVE = ("exp", "linear", "square")
SIGNED = "signed_linear:floor=-0.02"  # the advisor's signed suggestion
BANDIT_SCHEMES = (*NON_NEGATIVE, SIGNED)  # the fixed schemes
AUTOS = ("auto", "auto_exp")  # the rule applied online (--weighting auto, auto_exp): a study of their own, same seeds
SETS = ((0, "not held-out", ""), (1, "held-out", " (held-out)"), (2, "held-out 2", " (held-out 2)"),
        (3, "held-out 3", " (held-out 3)"), (4, "held-out 4", " (held-out 4)"))  # (Landscape.held_out, name, suffix)
STAT_KEYS = ("skew", "top_gap", "near_max", "kurtosis")


def _study(landscape: str, jitter: float, schemes: tuple[str, ...], seeds: list[int], epochs: int,
           run_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """({scheme: final regret per seed}, summary.json's scheme rows) of one `simpo.bandit.run_study` into run_dir
    (reused when a run with the same settings and at least these schemes is there)."""
    config = BanditConfig(landscape=landscape, schemes=schemes, seeds=tuple(seeds), epochs=epochs,
                          jitter=jitter, run_dir=str(run_dir), overwrite=True)
    summary = run_dir / "summary.json"
    wanted = json.loads(json.dumps(asdict(config)))
    saved = json.loads(summary.read_text())["config"] if summary.is_file() else {}
    if saved | {"schemes": wanted["schemes"]} != wanted or not set(schemes) <= set(saved["schemes"]):
        run_study(config, progress=False)
    finals: dict[str, dict[int, float]] = {s: {} for s in schemes}
    with (run_dir / "regret.csv").open() as f:
        for row in csv.DictReader(f):
            if int(row["epoch"]) == epochs and row["scheme"] in finals:
                finals[row["scheme"]][int(row["seed"])] = float(row["regret"])
    rows = json.loads(summary.read_text())["schemes"]
    return {s: np.array([v[k] for k in seeds]) for s, v in finals.items()}, {s: rows[s] for s in schemes}


def bandit_finals(landscape: str, jitter: float, seeds: list[int], epochs: int,
                  root: Path) -> tuple[dict[str, np.ndarray], dict]:
    """({scheme: final regret per seed} for BANDIT_SCHEMES + AUTOS, {auto scheme: its summary.json row}): two
    studies, root/<case>/ (the fixed schemes) and root/<case>_auto/ (the auto menus, one λ per scheme). Every seed
    starts from the same initial policy and random stream in both (the keys depend on the seed only), so the
    comparison stays paired."""
    case = f"{landscape}_jitter{jitter:g}"
    finals, _ = _study(landscape, jitter, BANDIT_SCHEMES, seeds, epochs, root / case)
    autos, rows = _study(landscape, jitter, AUTOS, seeds, epochs, root / f"{case}_auto")
    return finals | autos, rows


def paired_ci(a: np.ndarray, b: np.ndarray, reps: int = 10_000) -> tuple[float, float, float]:
    """Mean of a − b over seeds (the same seeds: paired) and its 95% percentile-bootstrap interval."""
    d = a - b
    means = d[np.random.default_rng(0).integers(0, d.size, (reps, d.size))].mean(1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _stats_cell(stats: dict) -> str:
    return ", ".join(f"{k} {stats[k]:+.2f}" for k in (*STAT_KEYS, "reward_skew") if k in stats)


def _cached(cache: Path, key: str, compute) -> dict:
    """The JSON dict in `cache` if it was written for `key`; else ``compute()`` (a dict), saved there with the key."""
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    if saved.get("key") != key:
        saved = {"key": key} | compute()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(saved, indent=1))
    return saved


def probe_stats(landscape: str, jitter: float, seeds: list[int], cache: Path) -> list[dict]:
    """`advise_bandit`'s statistics after its probe (PROBE_EPOCHS of PROBE_WEIGHTING), per seed; kept in `cache`
    (JSON), so a rerun trains nothing."""
    key = f"seeds={seeds} epochs={PROBE_EPOCHS} weighting={PROBE_WEIGHTING}"
    return _cached(cache, key, lambda: {"stats": [advise_bandit(landscape, seed, jitter=jitter).stats
                                                  for seed in seeds]})["stats"]


def _majority(advices: list[Advice]) -> tuple[dict, str]:
    picks = Counter(a.scheme for a in advices)
    return dict(picks), picks.most_common(1)[0][0]


def bandit_rows(seeds: list[int], bandit_seeds: list[int], epochs: int, root: Path) -> list[dict]:
    cases = [(name, 0.2, name) for name in LANDSCAPES] + [("bad-region", 0.0, "bad-region, jitter 0")]
    rows = []
    for landscape, jitter, column in cases:
        advices = [advise_bandit(landscape, seed, jitter=jitter, probe_epochs=0, menu="auto") for seed in seeds]
        picks, scheme = _majority(advices)
        case = root / f"{landscape}_jitter{jitter:g}_probe.json"
        probed = [recommend(st, jitter=jitter, reference_kl=1.0) for st in probe_stats(landscape, jitter, seeds, case)]
        probe_picks, probe_scheme = _majority(probed)
        finals, autos = bandit_finals(landscape, jitter, bandit_seeds, epochs, root)
        best = min(NON_NEGATIVE, key=lambda s: finals[s].mean())
        gaps = {s: paired_ci(finals[s], finals[best]) for s in NON_NEGATIVE if s != best}
        d, lo, hi = paired_ci(finals[SIGNED], finals[best])
        signed_won = True if hi < 0 else False if lo > 0 else None
        suggested = advices[0].signed_alternative is not None
        held_out = LANDSCAPES[landscape].held_out
        rows.append({
            "landscape": f"bandit {column}" + SETS[held_out][2], "held_out": held_out,
            "stats": advices[0].stats, "picks": picks, "scheme": scheme,
            "signed": advices[0].signed_alternative,
            "probe_picks": probe_picks, "probe_scheme": probe_scheme, "probe_hit": probe_scheme == best,
            "probe_skews": ", ".join(f"{a.stats['skew']:+.2f}" for a in probed),
            "winner": f"{best} ({finals[best].mean():.4f}); " + ", ".join(
                f"{s} {g:+.4f} [{a:+.4f}, {b:+.4f}]" for s, (g, a, b) in gaps.items()),
            "decided": all(a > 0 for _, a, _ in gaps.values()),
            "hit": scheme == best,
            "overall": f"{SIGNED} − {best}: {d:+.4f} [{lo:+.4f}, {hi:+.4f}]",
            "signed_hit": None if signed_won is None else suggested == signed_won,
            "loss": {s: float(finals[s].mean() - finals[best].mean()) for s in (*NON_NEGATIVE, *AUTOS)}
            | {"pick": float(finals[scheme].mean() - finals[best].mean()),
               "probe": float(finals[probe_scheme].mean() - finals[best].mean())},
        } | {a: {"regret": float(finals[a].mean()), "linear": autos[a]["auto_linear_fraction"],
                 "skew": autos[a]["auto_final_skew_mean"], "vs_best": paired_ci(finals[a], finals[best]),
                 "vs_static": paired_ci(finals[a], finals[scheme])} for a in AUTOS})
        for a in AUTOS:  # hit: not decidedly worse than the best fixed non-negative scheme
            rows[-1][a]["hit"] = rows[-1][a]["vs_best"][1] <= 0
    return rows


def cheetah_advice(seeds: list[int], warmup: int, train: int, cache: Path) -> dict[str, list[dict[str, Advice]]]:
    """Per transform and seed, {menu: advice} for both menus ("auto": the paper's, ADVICE_MENU: the advice's) from
    one `advise` per seed, kept in `cache` (JSON) so filling in the winners later reruns nothing. The rule is
    re-applied to the cached statistics (`recommend`), so a change of the rule needs no new warm-up."""
    saved = _cached(cache, f"seeds={seeds} warmup={warmup} train={train}", lambda: {
        t: [advise("dmc:cheetah-run", warmup, train, seed, t).to_dict() for seed in seeds] for t in ("flat", "steep")})
    agent = default_config("simpo", "fast", "dmc:cheetah-run").agent  # what `advise` recommends for
    return {t: [{m: recommend(a["stats"], agent.num_candidates, agent.candidate_noise, agent.temperature.kl_target,
                              menu=m) for m in ("auto", ADVICE_MENU)} for a in saved[t]] for t in ("flat", "steep")}


def cheetah_rows(winners: dict[str, str], advice: dict[str, list[dict[str, Advice]]], decided: bool) -> list[dict]:
    rows = []
    for transform, per_seed in advice.items():
        advices, probed = [a["auto"] for a in per_seed], [a[ADVICE_MENU] for a in per_seed]
        (picks, scheme), (probe_picks, probe_scheme) = _majority(advices), _majority(probed)
        skews = ", ".join(f"{a.stats['skew']:+.2f}" for a in advices)
        winner = winners.get(transform)
        rows.append({
            "landscape": f"dmc:cheetah-run, reward {transform}", "stats": advices[0].stats, "picks": picks,
            "scheme": scheme, "signed": advices[0].signed_alternative, "skews": skews,
            "probe_picks": probe_picks, "probe_scheme": probe_scheme, "probe_skews": skews,
            "probe_hit": None if winner is None else probe_scheme == winner,
            "winner": winner or "winner not measured yet", "hit": None if winner is None else scheme == winner,
            "decided": None if winner is None else decided,
            "overall": "-", "signed_hit": None,
        })
    return rows


def _per_set(rows: list[dict], hit) -> str:
    """'k/n bandit rows (a/b not held-out, c/d held-out, e/f held-out 2)' for `hit`: row -> bool, or None to leave
    the row out (undecided)."""
    def count(chosen):
        scored = [v for v in map(hit, chosen) if v is not None]
        return f"{sum(scored)}/{len(scored)}"

    parts = [f"{count(chosen)} {name}" for level, name, _ in SETS
             if (chosen := [r for r in rows if r["held_out"] == level])]
    return f"{count(rows)} bandit rows (" + ", ".join(parts) + ")"


def auto_table(rows: list[dict], mark: dict, key: str) -> list[str]:
    """`--weighting auto` / `auto_exp` on the bandit rows: the rule, applied every epoch to an EMA of the
    candidates' skew, with AUTO_MENUS[key] as (flat, steep)."""
    def ci(g):
        return f"{g[0]:+.4f} [{g[1]:+.4f}, {g[2]:+.4f}]"

    flat, steep = AUTO_MENUS[key]
    lines = [f"`{key}` (the rule online: EMA of the candidate-reward skew, decay 0.99 per epoch, from 0; {flat} on "
             f"flat tops, {steep} on steep ones): its final regret, paired by seed against the best fixed "
             "non-negative scheme and against the older (initial-policy) advice's pick. *Hit*: not decidedly worse "
             "than the best fixed scheme (interval not above 0).", "",
             f"| landscape | epochs on {steep} | final EMA skew | {key} regret | {key} − best fixed "
             f"| {key} − older advice's pick | hit? |", "|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        a = r[key]
        lines.append(f"| {r['landscape']} | {100 * a['linear']:.0f}% | {a['skew']:+.2f} | {a['regret']:.4f} "
                     f"| {ci(a['vs_best'])} vs {r['winner'].split(' ')[0]} | {ci(a['vs_static'])} vs {r['scheme']} "
                     f"| {mark[a['hit']]} |")
    return lines + ["", f"Hit rate, `{key}`: " + _per_set(rows, lambda r: r[key]["hit"]) + "."]


def probe_table(rows: list[dict], mark: dict) -> list[str]:
    """The advice as `simpo advise` gives it: the rule with ADVICE_MENU, on statistics measured after the probe
    (bandits) or after `advise`'s short training run (Cheetah)."""
    flat, steep = AUTO_MENUS[ADVICE_MENU]
    lines = [f"The advice (`simpo advise`): skew > {STEEP_SKEW:g} → {steep}, else {flat} (the `{ADVICE_MENU}` menu), "
             f"on candidates from the policy after {PROBE_EPOCHS} epochs of `{PROBE_WEIGHTING}` (bandits; seeds "
             "as above) or after the warm-up run (Cheetah); winners as above.", "",
             "| landscape | skew per seed | picks | recommended | measured winner | decided? | hit? |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        picks = ", ".join(f"{k} {v}" for k, v in r["probe_picks"].items())
        lines.append(f"| {r['landscape']} | {r['probe_skews']} | {picks} | `{r['probe_scheme']}` "
                     f"| {r['winner'].split(' ')[0]} | {mark[r['decided']].replace('**', '')} "
                     f"| {mark[r['probe_hit']]} |")
    bandit = [r for r in rows if "held_out" in r]
    return lines + ["", f"Hit rate, the advice: {_hits(rows, 'probe_hit', True)} of the rows with a decided winner, "
                    f"{_hits(rows, 'probe_hit')} of all rows with a measured winner; by set: "
                    f"{_per_set(bandit, lambda r: r['probe_hit'] if r['decided'] else None)} (decided rows)."]


def loss_table(rows: list[dict]) -> list[str]:
    """What a wrong pick costs: each policy's final regret minus the best fixed non-negative scheme's, per row."""
    policies = (("pick", "initial-policy advice (`auto` menu)"), ("probe", f"the advice (probe, `{ADVICE_MENU}`)"),
                *((a, f"`{a}`") for a in AUTOS),
                *((s, f"always `{s}`") for s in NON_NEGATIVE))
    lines = ["Loss of a choice: its mean final regret minus the best fixed non-negative scheme's (0 = the winner), "
             "per bandit row, and the mean and worst over rows.", "",
             "| choice | " + " | ".join(r["landscape"].removeprefix("bandit ") for r in rows) + " | mean | worst |",
             "|---|" + "---:|" * (len(rows) + 2)]
    for key, name in policies:
        loss = [r["loss"][key] for r in rows]
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in loss)
                     + f" | {np.mean(loss):.4f} | {max(loss):.4f} |")
    return lines


def _hits(rows: list[dict], key: str, decided_only: bool = False) -> str:
    scored = [r[key] for r in rows if r[key] is not None and (r.get("decided") or not decided_only)]
    if not scored:
        return "0/0"
    return f"{sum(scored)}/{len(scored)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the advisor's own stats")
    parser.add_argument("--warmup-steps", type=int, default=1000)
    parser.add_argument("--train-steps", type=int, default=1000)
    parser.add_argument("--cheetah-winners", nargs="*", default=[], metavar="TRANSFORM=SCHEME")
    parser.add_argument("--cheetah-decided", action="store_true",
                        help="the --cheetah-winners beat the other schemes beyond noise (else: scored as undecided)")
    parser.add_argument("--bandit-seeds", type=int, nargs="+", default=list(range(5, 25)),
                        help="seeds of the bandit runs that measure the winners (default 5-24: not docs/bandits.md's)")
    parser.add_argument("--bandit-epochs", type=int, default=200)
    parser.add_argument("--skip-cheetah", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("runs/advisor"),
                        help="bandit runs and the Cheetah advice per seed, reused when settings match")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/advisor.md"))
    args = parser.parse_args()
    winners = dict(item.split("=", 1) for item in args.cheetah_winners)
    source = provenance()

    rows = bandit_rows(args.seeds, args.bandit_seeds, args.bandit_epochs, args.cache / "bandits")
    if not args.skip_cheetah:
        advice = cheetah_advice(args.seeds, args.warmup_steps, args.train_steps,
                                args.cache / f"cheetah_advice_w{args.warmup_steps}_t{args.train_steps}.json")
        rows += cheetah_rows(winners, advice, args.cheetah_decided)
    bandit = [r for r in rows if "held_out" in r]
    mark, plain = {True: "yes", False: "**no**", None: "-"}, {True: "yes", False: "no", None: "-"}
    lines = [
        f"Bandit winners: final regret after {args.bandit_epochs} epochs, mean over seeds {args.bandit_seeds[0]}–"
        f"{args.bandit_seeds[-1]} ({len(args.bandit_seeds)} runs per scheme); beside the winner, each other "
        "scheme's regret minus the winner's, paired by seed, with a 95% bootstrap interval. *Decided*: every "
        "interval above 0.", "",
        "| landscape | stats (seed 0) | picks over seeds | recommended | measured winner (non-negative) | decided? "
        "| hit? | signed suggested | signed − best non-negative | signed hit? |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        picks = ", ".join(f"{k} {v}" for k, v in r["picks"].items())
        if "skews" in r:
            picks += f" (skews {r['skews']})"
        lines.append(f"| {r['landscape']} | {_stats_cell(r['stats'])} | {picks} | `{r['scheme']}` | {r['winner']} "
                     f"| {plain[r['decided']]} | {mark[r['hit']]} | {r['signed'] or 'no'} | {r['overall']} "
                     f"| {mark[r['signed_hit']]} |")
    lines += ["", f"Hit rate, initial-policy advice (rule: skew > {STEEP_SKEW:g} → linear, else square): "
              f"{_hits(rows, 'hit', True)} of the rows with a decided winner, {_hits(rows, 'hit')} of all rows with "
              f"a measured winner; signed suggestion: {_hits(rows, 'signed_hit')} of the rows where signed − best "
              "non-negative is decided either way.",
              f"By set, scheme: {_per_set(bandit, lambda r: r['hit'])}; signed suggestion: "
              f"{_per_set(bandit, lambda r: r['signed_hit'])}; `exp` the measured winner: "
              f"{_per_set(bandit, lambda r: r['winner'].startswith('exp '))}.", ""]
    lines += probe_table(rows, mark) + [""]
    for key in AUTOS:
        lines += auto_table([r for r in rows if key in r], mark, key) + [""]
    lines += loss_table([r for r in rows if "loss" in r])
    lines += ["", "Provenance:", source]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
