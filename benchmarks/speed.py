"""Benchmark (not a test): where an env step's time goes, for SAC and SiMPO `paper` / `fast`.

    python benchmarks/speed.py [--env HalfCheetah-v5] [--repeats 20] [--out docs/benchmarks/speed.md]

All configs are measured in one process, in interleaved rounds (median kept): the jitted update at
batch 256, one jitted action, one env step and one buffer insert. Their sum (of the parts) stands for the
wall-clock of an env step at update-to-data ratio 1; the training loop's buffer sampling, NaN guard, action
transfer and Python overhead add to every config and are not in it. XLA's cost analysis gives the update's FLOPs; divided by the
measured time that is the achieved FLOP/s, printed next to the machine's measured fp32 matmul peak.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_report  # noqa: E402

from simpo import matching  # noqa: E402
from simpo.agents.base import Batch  # noqa: E402
from simpo.buffer import buffer_add, buffer_init  # noqa: E402
from simpo.envs import env_spec, make_env  # noqa: E402
from simpo.train import default_config, make_agent  # noqa: E402

CONFIGS = {"sac": ("sac", "fast"), "simpo fast": ("simpo", "fast"), "simpo paper": ("simpo", "paper")}


def timed(fn, repeats: int) -> float:
    """Seconds per call of `fn()` (which returns something to block on), after one warm-up call."""
    jax.block_until_ready(fn())
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 FLOP/s of an n×n by n×n matmul, jitted (`run` takes 8192 on a GPU: 2048² is too short a call
    there to time against its launch overhead)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    return 2 * n**3 / timed(lambda: f(a), repeats)


def flops_of(fn, *args) -> float:
    """XLA's FLOP count of the compiled `fn(*args)`, with the samplers' loops unrolled (XLA counts a loop body once)."""
    matching.UNROLL = True
    try:
        cost = jax.jit(lambda *a: fn(*a)).lower(*args).compile().cost_analysis()  # a new function: a fresh trace
    finally:
        matching.UNROLL = 1
    return float((cost[0] if isinstance(cost, list) else cost).get("flops", float("nan")))


def setup(name: str, env_id: str, config=None, count_flops: bool = True):
    """Env, agent, random batch, jitted update and act of CONFIGS[name], or of `config` (a TrainConfig) if given."""
    config = config or default_config(*CONFIGS[name], env_id)
    env = make_env(env_id, 0)
    obs_dim, action_dim = env_spec(env)
    agent = make_agent(config, obs_dim, action_dim)
    k = jax.random.split(jax.random.PRNGKey(0), 6)
    b = config.batch_size
    batch = Batch(jax.random.normal(k[0], (b, obs_dim)), jax.random.uniform(k[1], (b, action_dim), minval=-1.0),
                  jax.random.normal(k[2], (b,)), jax.random.normal(k[3], (b, obs_dim)), jnp.zeros(b))
    update = jax.jit(agent.update)
    act = jax.jit(agent.act)
    state = agent.init(k[4])
    flops = float("nan")
    if count_flops:
        flops = flops_of(agent.update, state, batch, k[5])
        interval = getattr(agent.config, "actor_interval", 1)
        if interval > 1:  # XLA costs a cond as its costlier branch; the actor side runs on 1 update in K
            flops -= flops_of(agent.actor_step, state, batch.obs, k[5], k[5]) * (1 - 1 / interval)
    return {"env": env, "agent": agent, "state": state, "batch": batch, "update": update, "act": act,
            "key": k[5], "flops": flops, "action_dim": action_dim, "obs_dim": obs_dim}


def updates(s: dict):
    """(K, a callable running K updates): with SiMPO's `actor_interval` K > 1, from states at steps 0..K-1, so both
    branches of its cond run as often as in training; else K = 1."""
    k = getattr(s["agent"].config, "actor_interval", 1)
    states = [s["state"]._replace(step=jnp.asarray(i, jnp.int32)) for i in range(k)] if k > 1 else [s["state"]]
    return k, lambda: [s["update"](st, s["batch"], s["key"]) for st in states]


def measure(s: dict, repeats: int) -> dict[str, float]:
    """Seconds per update, action, env step and buffer insert. With SiMPO's `actor_interval` K > 1 one timed call is
    K updates from states at steps 0..K-1 (both branches of its cond, as often as in training), divided by K."""
    obs = jnp.zeros((s["obs_dim"],))
    k, run = updates(s)
    env, action = s["env"], np.zeros(s["action_dim"], np.float32)
    env.reset(seed=0)

    def env_step():  # returns None: nothing to block on, and no JAX dispatch in the timed call
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    buffer = [buffer_init(10_000, s["obs_dim"], s["action_dim"])]

    def insert():
        buffer[0] = buffer_add(buffer[0], np.zeros(s["obs_dim"], np.float32), action, np.float32(0.0),
                               np.zeros(s["obs_dim"], np.float32), np.float32(0.0))
        return buffer[0].size

    return {
        "update": timed(run, repeats) / k,
        "act": timed(lambda: s["act"](s["state"], s["key"], obs), repeats * 10),
        "env": timed(env_step, repeats * 10),
        "insert": timed(insert, repeats * 10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--repeats", type=int, default=20, help="timed updates per config per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paper-repeats", type=int, default=3, help="timed updates of the slow paper preset")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/speed.md"))
    parser.add_argument("--matmul-precision", choices=("float32", "tensorfloat32"), default="float32",
                        help="of every timed matmul, the peak's too (as simpo train's --matmul-precision; a CPU "
                             "computes both in fp32)")
    args = parser.parse_args()
    with jax.default_matmul_precision(args.matmul_precision):
        run(args)


def run(args) -> None:
    source = provenance()
    setups = {name: setup(name, args.env) for name in CONFIGS}
    rounds: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    peaks, n = [], 8192 if jax.default_backend() == "gpu" else 2048
    for done in range(1, args.rounds + 1):  # the report is rewritten after each round: a cut-off run keeps those
        peaks.append(matmul_peak(n))
        for name, s in setups.items():
            rounds[name].append(measure(s, args.paper_repeats if "paper" in name else args.repeats))
        write_report(report(args, source, setups, rounds, peaks, n, done), args.out)


def report(args, source: str, setups: dict, rounds: dict, peaks: list, n: int, done: int) -> list[str]:
    peak = float(np.median(peaks))
    med = {name: {k: float(np.median([r[k] for r in rs])) for k in rs[0]} for name, rs in rounds.items()}
    step = {name: sum(m.values()) for name, m in med.items()}

    lines = [f"# Speed benchmark: {args.env}, batch 256, update-to-data ratio 1", "", source, "",
             f"Matmul precision `{args.matmul_precision}` (a CPU computes both settings in fp32). Measured matmul "
             f"peak at it ({n}², jitted): **{peak / 1e9:.0f} GFLOP/s**.", "",
             "| config | update ms | act ms | env step ms | buffer insert ms | ms per env step | "
             "per env step / SAC | update GFLOP | achieved GFLOP/s | fraction of matmul peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in med.items():
        flops = setups[name]["flops"]
        lines.append(
            f"| {name} | {m['update'] * 1e3:.1f} | {m['act'] * 1e3:.2f} | {m['env'] * 1e3:.3f} | "
            f"{m['insert'] * 1e3:.3f} | {step[name] * 1e3:.1f} | {step[name] / step['sac']:.1f}× | "
            f"{flops / 1e9:.2f} | {flops / m['update'] / 1e9:.0f} | {flops / m['update'] / peak:.0%} |")
    lines += ["", f"Medians over {done} interleaved round{'s' * (done != 1)}"
              + (f" (of {args.rounds} asked for: the run is still going, or was cut off)" if done < args.rounds else "")
              + f"; the update is timed over {args.repeats} calls "
              f"({args.paper_repeats} for `paper`), act, env and insert over 10× as many. FLOPs are XLA's "
              "cost analysis of the compiled update with the samplers' loops unrolled (so every step counts); with "
              "`actor_interval` K > 1 the actor side's FLOPs count 1/K per update (XLA costs the cond as its costlier "
              "branch, the actor side, though it runs on one update in K)."]
    return lines


if __name__ == "__main__":
    main()
