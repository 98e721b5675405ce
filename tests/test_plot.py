"""Learning curves from fake runs: grouping, the CI, and clear errors."""

from pathlib import Path

import numpy as np
import pytest

from simpo.logger import RunLogger, write_config
from simpo.plot import _group_curve, band_label, default_label, expand_run_dirs, load_run, plot_learning_curves


def fake_run(run_dir: Path, offset: float, steps=range(0, 50_001, 5000), config=None) -> Path:
    if config is not None:
        write_config(run_dir, config)
    with RunLogger(run_dir, use_tensorboard=False) as log:
        for s in steps:
            log.log_row(dict(env_step=s, wall_time_s=s / 100, eval_return_mean=offset + s / 1000,
                             eval_return_std=1.0, eval_return_single_mean=offset, train_sps=100.0))
    return run_dir


def test_plot_two_groups_png(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for seed in range(2):
        fake_run(runs / f"simpo_exp_seed{seed}", seed, config={"algo": "simpo", "weighting": "exp", "seed": seed})
    for seed in range(3):  # no config: grouped by directory name minus the seed suffix
        fake_run(runs / f"sac-s{seed}", 2.0 * seed, steps=range(0, 40_001 + 5000 * seed, 5000))
    found = expand_run_dirs([runs])
    assert len(found) == 5
    monkeypatch.chdir(tmp_path)  # one run named relatively and absolutely is one run
    assert expand_run_dirs([Path("runs/sac-s0"), runs / "sac-s0", runs]) == [Path("runs/sac-s0"), *found[1:]]
    out = plot_learning_curves(found, tmp_path / "plots" / "curves.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert default_label(found[0], {}) == "sac"
    assert default_label(found[-1], {"agent": {"algo": "simpo", "weighting": "exp"}}) == "simpo/exp"
    # format-string grouping over config fields
    plot_learning_curves([runs / "simpo_exp_seed0"], tmp_path / "one.png", group_by="{algo}-{weighting}")
    with pytest.raises(ValueError, match="no config field"):
        plot_learning_curves([runs / "sac-s0"], tmp_path / "bad.png", group_by="{algo}")


def test_group_statistics():
    xs = np.array([0.0, 10.0])
    two = [(xs, np.array([0.0, 1.0])), (xs, np.array([2.0, 3.0]))]
    grid, mean, lo, hi, count = _group_curve(two, 100, np.random.default_rng(0))
    np.testing.assert_allclose(mean, [1.0, 2.0])
    np.testing.assert_allclose([lo, hi], [[0.0, 1.0], [2.0, 3.0]])  # two runs: their min-max range
    three = [*two, (xs, np.array([4.0, 5.0]))]
    grid, mean, lo, hi, count = _group_curve(three, 2000, np.random.default_rng(0))
    assert (lo < mean).all() and (mean < hi).all() and (lo >= 0).all() and (hi <= [4, 5]).all()  # a bootstrap CI
    # runs on different grids: interpolated, no extrapolation past a run's last step
    uneven = [(np.array([0.0, 10.0]), np.array([0.0, 10.0])), (np.array([0.0, 5.0, 20.0]), np.array([0.0, 5.0, 20.0]))]
    grid, mean, lo, hi, count = _group_curve(uneven, 100, np.random.default_rng(0))
    assert grid.tolist() == [0, 5, 10, 20]
    np.testing.assert_allclose(mean, [0, 5, 10, 20])
    assert lo[-1] == hi[-1] == 20 and count.tolist() == [2, 2, 2, 1]  # one run left: no band
    # the legend names the bands that are drawn, and only those
    assert band_label(count) == "min–max (2), no band (1)"
    ci = "95% percentile-bootstrap CI"
    assert [band_label(np.array(c)) for c in ([1, 1], [2, 2], [5, 7])] == ["no band", "min–max", ci]
    assert band_label(np.array([6, 5, 1])) == f"{ci} (≥3 runs), no band (1)"


def test_band_label_says_a_bootstrap_ci_from_few_runs_undercovers():
    """With 3 runs a 95% percentile bootstrap of the mean is their min–max (all three draws are the lowest run with
    probability 1/27 > 2.5%) and covers far less than 95%: the legend says so wherever the band has < 5 runs."""
    values = np.array([1.0, 5.0, 2.0])
    _, _, lo, hi, _ = _group_curve([(np.array([0.0]), np.array([v])) for v in values], 2000, np.random.default_rng(0))
    assert (lo[0], hi[0]) == (1.0, 5.0)
    ci = "95% percentile-bootstrap CI"
    assert band_label(np.array([3, 5])) == f"{ci} (covers < 95% with < 5 runs, = min–max at 3)"
    assert band_label(np.array([4, 4])) == f"{ci} (covers < 95% with < 5 runs)"
    assert band_label(np.array([3, 3, 1])) == f"{ci} (≥3 runs; covers < 95% with < 5 runs, = min–max at 3), no band (1)"
    assert band_label(np.array([4, 2, 1])) == f"{ci} (≥3 runs; covers < 95% with < 5 runs), min–max (2), no band (1)"


def test_resumed_run_keeps_last_row(tmp_path):
    run = fake_run(tmp_path / "r", 0.0, steps=[0, 1000, 2000])
    with RunLogger(run, use_tensorboard=False) as log:
        log.log_row(dict(env_step=1000, wall_time_s=1.0, eval_return_mean=-5.0, eval_return_std=0.0,
                         eval_return_single_mean=-5.0, train_sps=1.0))
    xs, ys = load_run(run)
    assert xs.tolist() == [0, 1000, 2000] and ys[1] == -5.0


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="no run directories"):
        plot_learning_curves([], tmp_path / "x.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no run directories"):
        expand_run_dirs([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="not a directory"):
        expand_run_dirs([tmp_path / "missing"])
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        load_run(tmp_path / "empty")
    header_only = tmp_path / "header_only"
    header_only.mkdir()
    (header_only / "metrics.csv").write_text("env_step,eval_return_mean\n")
    with pytest.raises(ValueError, match="no rows"):
        plot_learning_curves([header_only], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no column 'nope'"):
        plot_learning_curves([header_only], tmp_path / "x.png", metric="nope")
    good = fake_run(tmp_path / "good", 0.0)
    with pytest.warns(UserWarning, match="skipping"):
        out = plot_learning_curves([header_only, good], tmp_path / "ok.png", skip_invalid=True)
    assert out.is_file()
    assert not (tmp_path / "x.png").exists()


def test_bandit_t_quantile_beyond_the_table():
    """The bandit plots' 95% t-interval: Student's t quantiles (scipy's values to 4 decimals), not 1.96 past df 30."""
    from simpo.bandit.plots import confidence_band, t975

    for df, exact in ((1, 12.7062), (30, 2.0423), (31, 2.0395), (40, 2.0211), (100, 1.9840), (1000, 1.9623)):
        assert abs(t975(df) - exact) < 5e-4, (df, t975(df))
    values = np.arange(32.0)[:, None]  # 32 seeds: df 31
    mean, half = confidence_band(values)
    np.testing.assert_allclose(half, t975(31) * values.std(0, ddof=1) / np.sqrt(32))
