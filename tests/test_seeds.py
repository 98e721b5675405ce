"""Several seeds in one process (`--seeds`): per-seed results against single-seed runs, layout, resume."""

import dataclasses
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from test_resume import TIMING_COLUMNS, flags, same
from test_train import read_rows, tiny

from simpo.evaluation import read_run_config
from simpo.train import train

SEEDS = (3, 5)


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


@pytest.fixture(scope="module", params=["simpo", "sac"])
def singles(request, tmp_path_factory):
    """Single-seed runs of each seed, the reference."""
    root = tmp_path_factory.mktemp(f"single-{request.param}")
    results = {s: train(tiny(request.param, "Pendulum-v1", root / f"s{s}", seed=s)) for s in SEEDS}
    return request.param, results


def test_map_batching_is_bit_identical_to_single_seed_runs(tmp_path, singles):
    algo, single = singles
    result = train(tiny(algo, "Pendulum-v1", tmp_path / "group", seeds=SEEDS, seed_batching="map"))
    for i, s in enumerate(SEEDS):
        seed_dir = tmp_path / "group" / f"seed{s}"
        assert same(jax.tree.map(lambda x: x[i], result.state), single[s].state), f"seed {s}: agent state differs"
        assert same(jax.tree.map(lambda x: x[i], result.buffer), single[s].buffer), f"seed {s}: buffer differs"
        assert strip(read_rows(seed_dir)) == strip(read_rows(single[s].run_dir))


def test_vmap_batching_matches_single_seed_runs_up_to_rounding(tmp_path, singles):
    """vmap lets XLA sum batched gradients in another order: equal until the first update, then close."""
    algo, single = singles
    result = train(tiny(algo, "Pendulum-v1", tmp_path / "group", seeds=SEEDS, seed_batching="vmap"))
    for i, s in enumerate(SEEDS):
        buffer, ref = jax.tree.map(lambda x: x[i], result.buffer), single[s].buffer
        warmup = 100  # identical transitions: uniform actions from (seed, step), the same env resets
        assert np.array_equal(buffer.obs[:warmup], ref.obs[:warmup]) and np.array_equal(buffer.reward[:warmup], ref.reward[:warmup])
        rows, ref_rows = read_rows(tmp_path / "group" / f"seed{s}"), read_rows(single[s].run_dir)
        assert [r["env_step"] for r in rows] == [r["env_step"] for r in ref_rows]
        for leaf, ref_leaf in zip(jax.tree.leaves(jax.tree.map(lambda x: x[i], result.state)),
                                  jax.tree.leaves(single[s].state)):
            np.testing.assert_allclose(leaf, ref_leaf, rtol=0.05, atol=0.05)


def test_seed_group_layout_and_errors(tmp_path):
    cmd = [sys.executable, "-m", "simpo.cli", "train", *flags("sac", tmp_path / "g"), "--seeds", "1", "2",
           "--total-steps", "200"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["config.json", "seed1", "seed2"]
    for s in (1, 2):
        assert (tmp_path / "g" / f"seed{s}" / "metrics.csv").is_file()
    evaluated = subprocess.run([sys.executable, "-m", "simpo.cli", "eval", "--run-dir", str(tmp_path / "g")],
                               capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 2 and "name one of them" in evaluated.stderr
    dup = subprocess.run([*cmd[:-4], "--seeds", "1", "1"], capture_output=True, text=True, timeout=600)
    assert dup.returncode == 2 and "distinct" in dup.stderr and len(dup.stderr.strip().splitlines()) == 1


def test_killed_seed_group_resumes_bit_exact(tmp_path):
    """A group whose seeds were saved at different steps when it died resumes from the newest common step."""
    config = tiny("simpo", "Pendulum-v1", tmp_path / "straight", seeds=(0, 1), seed_batching="map", total_steps=400,
                  checkpoint_interval=100, keep_checkpoints=10)
    straight = train(config)
    killed = dataclasses.replace(config, run_dir=tmp_path / "killed")
    train(killed)
    # simulate a crash while saving: seed 1 lost its checkpoints after step 200, seed 0 after step 300
    for seed, keep in ((0, 300), (1, 200)):
        for p in (tmp_path / "killed" / f"seed{seed}" / "checkpoints").iterdir():
            if p.name.isdigit() and int(p.name) > keep:
                shutil.rmtree(p)
    with pytest.warns(UserWarning, match=r"deleting checkpoints at steps \[300\] in .*seed0.* before saving step 300"):
        resumed = train(dataclasses.replace(read_run_config(tmp_path / "killed"), run_dir=tmp_path / "killed"),
                        resume=True)  # from 200, the newest step both seeds have: seed 0's 300 is redone
    assert same((straight.state, straight.buffer), (resumed.state, resumed.buffer))
    for seed in (0, 1):
        assert strip(read_rows(tmp_path / "straight" / f"seed{seed}")) == strip(read_rows(tmp_path / "killed" / f"seed{seed}"))


def test_updates_per_step_runs_k_updates(tmp_path):
    one = train(tiny("sac", "Pendulum-v1", tmp_path / "k1", total_steps=150))
    two = train(tiny("sac", "Pendulum-v1", tmp_path / "k2", total_steps=150, updates_per_step=2))
    assert int(two.state.step) == 2 * int(one.state.step) > 0
