"""`simpo eval --video`: the first episode of an evaluation rendered to .mp4 / .gif, for a gymnasium MuJoCo env and
a dm_control task. Rendering needs an OpenGL backend (MUJOCO_GL=egl); where MuJoCo cannot create one at all, the
rendering tests skip and say so. Each eval runs as a subprocess: MUJOCO_GL must be set before dm_control's import."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_bad_input import tiny_config

pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # the subprocesses, under JAX's threads

PROBE = "import mujoco; mujoco.Renderer(mujoco.MjModel.from_xml_string('<mujoco/>'), 8, 8).close()"


def _can_render() -> str | None:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]


RENDER_PROBLEM = _can_render()
needs_rendering = pytest.mark.skipif(RENDER_PROBLEM is not None,
                                     reason=f"MuJoCo cannot render here (MUJOCO_GL=egl): {RENDER_PROBLEM}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny trained runs: 20-step episodes of InvertedPendulum-v5 and dmc:cartpole-balance."""
    from simpo.train import train

    base = tmp_path_factory.mktemp("video_runs")
    return {env: train(tiny_config(base / env.replace(":", "-"), env=env, max_episode_steps=20)).run_dir
            for env in ("InvertedPendulum-v5", "dmc:cartpole-balance")}


def simpo_eval(run_dir: Path, *flags: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "simpo.cli", "eval", "--run-dir", str(run_dir), "--episodes", "2",
                           *flags], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


@needs_rendering
@pytest.mark.parametrize("env, suffix, mode", [
    ("dmc:cartpole-balance", ".gif", "best_of_n"),
    ("InvertedPendulum-v5", ".mp4", "single"),
])
def test_video_is_the_first_evaluation_episode(runs, tmp_path, env, suffix, mode):
    import imageio.v2 as imageio
    import numpy as np
    import PIL.Image

    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        pytest.skip("imageio-ffmpeg is not installed (the [video] extra)")
    out = tmp_path / f"episode{suffix}"
    plain = simpo_eval(runs[env])
    recorded = simpo_eval(runs[env], "--video", str(out), "--video-mode", mode)
    video = {k: recorded.pop(k) for k in ("video", "video_frames", "video_return")}
    assert recorded == plain  # rendering does not change the evaluation
    assert Path(video["video"]) == out and out.is_file() and not list(tmp_path.glob(".*partial*"))
    frames = imageio.mimread(out, memtest=False)
    assert len(frames) == video["video_frames"] >= 2  # the reset, then one frame per step
    assert frames[0].shape == (240, 320, 3) and frames[0].std() > 1  # a picture, not a blank frame
    if env.startswith("dmc:"):  # a 20-step episode of a never-terminating task: the reset + 20 steps, at 100 fps
        assert video["video_frames"] == 11  # a GIF plays at 50 fps: every 2nd frame
        with PIL.Image.open(out) as gif:
            assert gif.info["duration"] == 20  # 20 ms a frame: real time
        assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # the cart-pole moves
    suffix_ = "" if mode == "best_of_n" else "_single"
    mean, std = recorded[f"eval_return{suffix_}_mean"], recorded[f"eval_return{suffix_}_std"]
    episodes = (mean - std, mean + std)  # the two episodes' returns (population std of two)
    assert min(abs(video["video_return"] - r) for r in episodes) <= 1e-9 * max(1.0, abs(mean))


def test_bad_video_paths_are_refused_before_any_work(tmp_path):
    from simpo.video import check_video_path

    (tmp_path / "folder.gif").mkdir()
    for path, message in ((tmp_path / "x.avi", "ending in .mp4 or .gif"), (tmp_path / "folder.gif", "is a directory"),
                          (tmp_path / "nope" / "x.gif", "does not exist")):
        with pytest.raises(ValueError, match=message):
            check_video_path(path)
    assert check_video_path(tmp_path / "ok.gif") == tmp_path / "ok.gif"
    (tmp_path / "old.gif").write_bytes(b"a video")
    with pytest.raises(ValueError, match="exists; pass --overwrite to replace it"):
        check_video_path(tmp_path / "old.gif")
    assert check_video_path(tmp_path / "old.gif", overwrite=True) == tmp_path / "old.gif"


def test_an_env_that_cannot_render_is_one_clear_error():
    from simpo.envs import make_env

    with pytest.raises(ValueError, match="env simpo:contextual-bandit cannot render frames"):
        make_env("simpo:contextual-bandit", 0, render_size=(24, 32))
