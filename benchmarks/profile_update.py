"""Profiler pass (not a test): where the time of one SiMPO update goes, by stage and by XLA op.

    python benchmarks/profile_update.py [--env HalfCheetah-v5] [--presets fast paper] [--out docs/benchmarks/profile.md]

Two views of the same update (batch 256), both measured here:
1. **Stages.** Each stage of `SiMPO.update` (simpo/agents/simpo_agent.py) jitted on its own and timed in
   interleaved rounds (median), with XLA's FLOP count: next-action sampling, the critic step, candidate sampling
   from π_old, candidate scoring, Stage-1 weights, the Stage-2 matching loss with its gradient and Adam step, and
   the temperature/target updates. Their sum is compared with the fused update: the difference is what fusing saves.
2. **XLA ops.** A `jax.profiler` trace of the fused update; the trace's op events are summed by name (the
   biggest first) and sorted into matmuls (YNNPACK/oneDNN fusions, dots), other fusions, and the rest.
The raw trace is kept under --trace-dir for TensorBoard's profile plugin or Perfetto.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
from pathlib import Path

import jax
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402
from speed import flops_of, setup, timed, updates  # noqa: E402

from simpo.agents.critic import critic_step, polyak, td_target  # noqa: E402
from simpo.temperature import update_temperature  # noqa: E402
from simpo.train import default_config  # noqa: E402


ACTOR_SIDE = ("Stage 1: N candidates from π_old", "Stage 1: scoring candidates (Q)", "Stage 1: weights",
              "Stage 2: matching loss, grad, Adam")
"""The stages that run on one update in `actor_interval` only (the temperature step too: in the small last row)."""


def stages(s: dict) -> dict[str, tuple]:
    """{stage: (jitted fn, args)}; each stage takes the previous stages' outputs as inputs, as in `update`."""
    agent, state, batch, key = s["agent"], s["state"], s["batch"], s["key"]
    c = agent.config
    k_next, k_cand, k_actor = jax.random.split(key, 3)

    def sample_next(state):
        return agent.policy.sample(state.actor_params, k_next, batch.next_obs.shape[:-1], batch.next_obs)

    next_action = jax.jit(sample_next)(state)
    actions, q = jax.jit(agent.candidates)(state, k_cand, batch.obs)
    weights = jax.jit(agent.weights)(state, q)[0]

    def critic(state, next_action):
        next_q = agent.critic.apply(state.critic.target_params, batch.next_obs, next_action).min(axis=0)
        target = td_target(batch.reward, batch.terminated, next_q, c.discount)
        return critic_step(agent.critic, agent.critic_tx, state.critic, batch.obs, batch.action, target)

    def sample_candidates(state):
        cond = batch.obs[:, None, :]
        return agent.policy.sample(state.old_actor_params, k_cand, (batch.obs.shape[0], c.num_candidates), cond)

    def score(state, actions):
        return agent.critic.apply(state.critic.params, batch.obs[:, None, :], actions).mean(axis=0)

    def matching(state, actions, weights):
        grads = agent.actor_value_and_grad(state.actor_params, k_actor, batch.obs, actions, weights)[1]
        updates, opt = agent.actor_tx.update(grads, state.actor_opt_state, state.actor_params)
        return optax.apply_updates(state.actor_params, updates), opt

    def rest(state, weights):
        return (update_temperature(c.temperature, state.temperature, weights),
                polyak(state.critic.target_params, state.critic.params, c.tau))

    return {
        "next-action sampling (π_θ, K steps)": (sample_next, (state,)),
        "critic step (TD target, grad, Adam)": (critic, (state, next_action)),
        "Stage 1: N candidates from π_old": (sample_candidates, (state,)),
        "Stage 1: scoring candidates (Q)": (score, (state, actions)),
        "Stage 1: weights": (lambda state, q: agent.weights(state, q)[0], (state, q)),
        "Stage 2: matching loss, grad, Adam": (matching, (state, actions, weights)),
        "temperature + Polyak targets": (rest, (state, weights)),
    }




def op_profile(s: dict, trace_dir: Path, calls: int) -> list[tuple[str, float, float]]:
    """(op name, total µs, count) from a profiler trace of `calls` fused updates, biggest first."""
    k, run = updates(s)
    calls *= k
    jax.block_until_ready(run())
    with jax.profiler.trace(str(trace_dir)):
        for _ in range(calls // k):
            out = run()
        jax.block_until_ready(out)
    newest = max(trace_dir.glob("plugins/profile/*/*.trace.json.gz"), key=lambda p: p.stat().st_mtime)
    events = json.load(gzip.open(newest))["traceEvents"]
    host = {e["pid"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
            and "CPU" in str(e.get("args", {}).get("name", ""))}
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        name = e.get("name", "")
        if (e.get("ph") == "X" and e.get("pid") in host and "::" not in name
                and not name.startswith(("$", "while", "conditional", "call", "Pjit"))):  # not containers
            total[name] += e.get("dur", 0.0) / calls
            count[name] += 1
    return [(name, us, count[name] / calls) for name, us in total.most_common()]


def op_names(compiled_text: str) -> dict[str, str]:
    """{HLO instruction: the JAX source op it came from}, from the compiled module's metadata, shortened to the
    Flax module path (`transpose(...)` marks the backward pass)."""
    out = {}
    for m in re.finditer(r"^\s*%?([\w.\-]+) = .*?op_name=\"([^\"]+)\"", compiled_text, re.M):
        out[m.group(1)] = re.sub(r"^jit\([^)]*\)/", "", m.group(2))
    return out


def kind(op: str) -> str:
    if "ynn" in op or "onednn" in op or op.startswith(("dot", "custom-call", "wrapped_dot")):
        return "matmul"
    return "other fusion" if "fusion" in op else "elementwise / copy / other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--presets", nargs="+", default=["fast", "paper"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per stage per round (÷5 for paper)")
    parser.add_argument("--trace-dir", type=Path, default=Path("runs/benchmarks/profile"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/profile.md"))
    args = parser.parse_args()
    source = provenance()
    lines = [f"# Profile of one SiMPO update: {args.env}, batch 256", "", source, ""]
    for preset in args.presets:
        s = setup(preset, args.env, default_config("simpo", preset, args.env), count_flops=False)
        parts = stages(s)
        fns = {name: (jax.jit(fn), a) for name, (fn, a) in parts.items()}
        reps = max(1, args.repeats // 5) if preset == "paper" else args.repeats
        k, run = updates(s)
        times = collections.defaultdict(list)
        for _ in range(args.rounds):
            for name, (fn, a) in fns.items():
                times[name].append(timed(lambda: fn(*a), reps))
            times["fused update"].append(timed(run, reps) / k)
        med = {name: float(np.median(t)) for name, t in times.items()}
        fused, total = med.pop("fused update"), sum(med.values())
        per_update = sum(ms / (k if name in ACTOR_SIDE else 1) for name, ms in med.items())  # the work of one update
        lines += [f"## `{preset}` preset", "", "| stage | ms | share of the stages' sum | GFLOP | GFLOP/s |",
                  "|---|---:|---:|---:|---:|"]
        for name, ms in med.items():
            fn, fn_args = parts[name]
            flops = flops_of(fn, *fn_args)
            lines.append(f"| {name} | {ms * 1e3:.2f} | {ms / total:.0%} | {flops / 1e9:.3f} | {flops / ms / 1e9:.0f} |")
        lines += [f"| **sum of the stages** | {total * 1e3:.2f} | 100% | | |",
                  f"| **fused update (one jit)** | {fused * 1e3:.2f} | {fused / total:.0%} | | |", ""]
        if k > 1:
            lines += [f"Per update, the actor-side rows count 1/{k} (they run on one update in {k}): the stages' sum is "
                      f"{per_update * 1e3:.2f} ms per update, and the fused update {fused / per_update:.0%} of it; "
                      "the share column is of the every-update sum above.", ""]
        if k > 1:
            lines += [f"`actor_interval` = {k}: the Stage 1/2 and temperature rows run on every update whose number is a multiple of {k} only; "
                      f"the fused update (and the trace below) is the mean over {k} consecutive updates.", ""]
        ops = op_profile(s, args.trace_dir / preset, calls=reps)
        source_of = op_names(s["update"].lower(s["state"], s["batch"], s["key"]).compile().as_text())
        op_total = sum(us for _, us, _ in ops)
        by_kind = collections.Counter()
        for op, us, _ in ops:
            by_kind[kind(op)] += us
        lines += [f"XLA ops in a profiler trace of the fused update ({reps} calls; per call, {op_total / 1e3:.2f} ms "
                  "of op time, which can exceed the wall-clock when ops run on both cores): "
                  + ", ".join(f"{k} {v / op_total:.0%}" for k, v in by_kind.most_common()) + ".", "",
                  "| XLA op (thunk) | from (JAX op) | kind | ms per update | share | runs per update |",
                  "|---|---|---|---:|---:|---:|"]
        lines += [f"| `{op}` | `{source_of.get(op, '?')}` | {kind(op)} | {us / 1e3:.3f} | {us / op_total:.1%} | {n:g} |"
                  for op, us, n in ops[:15]]
        lines.append("")
        print("\n".join(lines[-(len(med) + 20):]), flush=True)
    lines += ["Stages are timed separately (median of interleaved rounds), so their sum includes one dispatch "
              "and one host sync per stage that the fused update does not pay.",
              f"Raw traces: `{args.trace_dir}/PRESET` (TensorBoard profile plugin or ui.perfetto.dev)."]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
