"""Validation (not a test): does the weighting advisor pick the scheme that measurably won?

    nice -n 5 python benchmarks/advisor.py [--seeds 0 1 2] [--warmup-steps 1000] [--train-steps 1000]
        [--cheetah-winners flat=SCHEME steep=SCHEME] [--out docs/benchmarks/advisor.md]

Rows:
- every built-in bandit landscape (simpo.bandit.landscapes) with the bandit's jitter 0.2, and `bad-region` with
  jitter 0: the advisor's stats on candidates from the initial policy (`advise_bandit`), against the measured final
  regrets of docs/bandits.md (parsed from its table). Two hits are scored: the advisor's scheme against the best of
  the paper's three non-negative schemes (exp, linear, square), and its signed suggestion (made iff candidates are
  jittered) against whether a signed scheme won overall.
- dm_control cheetah-run with the `flat` and `steep` reward transforms (simpo.transforms): `advise` per seed (a
  short warm-up run each); the pick is the majority over seeds. The measured winners come from the reward-landscape
  study (docs/results.md), passed with --cheetah-winners; without them the rows say "winner not measured yet".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402

from simpo.advisor import STEEP_SKEW, Advice, advise, advise_bandit  # noqa: E402
from simpo.bandit import LANDSCAPES  # noqa: E402

NON_NEGATIVE = ("exp", "linear", "square")
SIGNED = ("wd1", "signed_linear")
STAT_KEYS = ("skew", "top_gap", "near_max", "kurtosis")


def bandit_regrets(path: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """{column: {scheme spec: (mean, std)}} from the final-regret table of docs/bandits.md."""
    table = [line for line in path.read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    columns = {name: {} for name in header[1:]}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        scheme = cells[0].strip("`")
        for name, cell in zip(header[1:], cells[1:]):
            m = re.match(r"\**([\d.]+) ± ([\d.]+)", cell)
            if m:
                columns[name][scheme] = (float(m.group(1)), float(m.group(2)))
    return columns


def _stats_cell(stats: dict) -> str:
    return ", ".join(f"{k} {stats[k]:+.2f}" for k in (*STAT_KEYS, "reward_skew") if k in stats)


def bandit_rows(regrets: dict, seeds: list[int]) -> list[dict]:
    cases = [(name, 0.2, name) for name in LANDSCAPES] + [("bad-region", 0.0, "bad-region, jitter 0")]
    rows = []
    for landscape, jitter, column in cases:
        advices = [advise_bandit(landscape, seed, jitter=jitter) for seed in seeds]
        picks = Counter(a.scheme for a in advices)
        scheme = picks.most_common(1)[0][0]
        results = regrets[column]
        best_nonneg = min(NON_NEGATIVE, key=lambda s: results[s][0])
        overall = min(results, key=lambda s: results[s][0])
        signed_won = overall.split(":")[0] in SIGNED
        rows.append({
            "landscape": f"bandit {column}", "stats": advices[0].stats, "picks": dict(picks), "scheme": scheme,
            "signed": advices[0].signed_alternative,
            "winner": f"{best_nonneg} ({results[best_nonneg][0]:.4f}; {scheme} {results[scheme][0]:.4f} "
                      f"± {results[scheme][1]:.4f})",
            "hit": scheme == best_nonneg,
            "tie": abs(results[scheme][0] - results[best_nonneg][0]) <= results[scheme][1],
            "overall": f"{overall} ({results[overall][0]:.4f})",
            "signed_hit": (advices[0].signed_alternative is not None) == signed_won,
        })
    return rows


def cheetah_advice(seeds: list[int], warmup: int, train: int, cache: Path) -> dict[str, list[Advice]]:
    """Per transform, one `advise` per seed; kept in `cache` (JSON) so filling in the winners later reruns nothing."""
    key = f"seeds={seeds} warmup={warmup} train={train}"
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    if saved.get("key") != key:
        saved = {"key": key} | {t: [advise("dmc:cheetah-run", warmup, train, seed, t).to_dict() for seed in seeds]
                                for t in ("flat", "steep")}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(saved, indent=1))
    fields = {f.name for f in dataclasses.fields(Advice)}
    return {t: [Advice(**{k: v for k, v in a.items() if k in fields}) for a in saved[t]] for t in ("flat", "steep")}


def cheetah_rows(winners: dict[str, str], advice: dict[str, list[Advice]]) -> list[dict]:
    rows = []
    for transform, advices in advice.items():
        picks = Counter(a.scheme for a in advices)
        scheme = picks.most_common(1)[0][0]
        skews = ", ".join(f"{a.stats['skew']:+.2f}" for a in advices)
        winner = winners.get(transform)
        rows.append({
            "landscape": f"dmc:cheetah-run, reward {transform}", "stats": advices[0].stats, "picks": dict(picks),
            "scheme": scheme, "signed": advices[0].signed_alternative, "skews": skews,
            "winner": winner or "winner not measured yet", "hit": None if winner is None else scheme == winner,
            "tie": None,
            "overall": "-", "signed_hit": None,
        })
    return rows


def _hits(rows: list[dict], key: str) -> str:
    scored = [r[key] for r in rows if r[key] is not None]
    return f"{sum(scored)}/{len(scored)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--warmup-steps", type=int, default=1000)
    parser.add_argument("--train-steps", type=int, default=1000)
    parser.add_argument("--cheetah-winners", nargs="*", default=[], metavar="TRANSFORM=SCHEME")
    parser.add_argument("--bandit-table", type=Path, default=Path("docs/bandits.md"))
    parser.add_argument("--skip-cheetah", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("runs/advisor/cheetah_advice.json"),
                        help="the Cheetah advice per seed, reused when seeds and budgets match")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/advisor.md"))
    args = parser.parse_args()
    winners = dict(item.split("=", 1) for item in args.cheetah_winners)
    source = provenance()

    rows = bandit_rows(bandit_regrets(args.bandit_table), args.seeds)
    if not args.skip_cheetah:
        advice = cheetah_advice(args.seeds, args.warmup_steps, args.train_steps, args.cache)
        rows += cheetah_rows(winners, advice)
    mark = {True: "yes", False: "**no**", None: "-"}
    lines = [
        "| landscape | stats (seed 0) | picks over seeds | recommended | measured winner (non-negative) | hit? "
        "| signed suggested | overall winner | signed hit? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        picks = ", ".join(f"{k} {v}" for k, v in r["picks"].items())
        if "skews" in r:
            picks += f" (skews {r['skews']})"
        hit = mark[r["hit"]] + (" (within 1 std)" if r["hit"] is False and r["tie"] else "")
        lines.append(f"| {r['landscape']} | {_stats_cell(r['stats'])} | {picks} | `{r['scheme']}` | {r['winner']} "
                     f"| {hit} | {r['signed'] or 'no'} | {r['overall']} | {mark[r['signed_hit']]} |")
    lines += ["", f"Hit rate, scheme (rule: skew > {STEEP_SKEW:g} → linear, else square): {_hits(rows, 'hit')} "
              f"of the rows with a measured winner; signed suggestion: {_hits(rows, 'signed_hit')}.", "",
              "Provenance:", source]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
