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


class _FakeEnv:
    """Frames without OpenGL: what VideoRecorder needs of an env."""

    spec = None

    def __init__(self):
        self.t = 0

    def render(self):
        import numpy as np

        self.t += 1
        return np.full((16, 16, 3), self.t % 255, np.uint8)


def test_a_failing_close_leaves_no_hidden_partial_file(tmp_path):
    from simpo.video import VideoRecorder

    recorder = VideoRecorder(tmp_path / "v.gif", fps=30)
    for _ in range(3):
        recorder(_FakeEnv())

    writer = recorder._writer

    def full_disk():  # the GIF writer writes the file on close: half of it, then the disk is full
        writer.close = lambda: None  # once: the writer's __del__ closes it again
        recorder._tmp.write_bytes(b"GIF89a")
        raise OSError(28, "No space left on device")

    recorder._writer.close = full_disk
    with pytest.raises(OSError, match="No space left"):
        recorder.close()
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_recording_removes_the_partial_video(tmp_path):
    """SIGTERM inside the recorder's `with` (as in `simpo eval --video`): exit 143, no file at all; a clean exit
    restores the previous SIGTERM handler and keeps the video. MP4: ffmpeg streams the hidden file as it records."""
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        pytest.skip("imageio-ffmpeg is not installed (the [video] extra)")
    script = f"""
import os, signal, sys, time
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from tests.test_video import _FakeEnv
from simpo.video import VideoRecorder
with VideoRecorder({str(tmp_path / 'kept.mp4')!r}, fps=30) as r:
    r(_FakeEnv()); r.close()
assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
with VideoRecorder({str(tmp_path / 'killed.mp4')!r}, fps=30) as r:
    env, start = _FakeEnv(), time.time()
    while not r._tmp.exists() and time.time() < start + 60:  # ffmpeg creates it once it has started
        r(env)
    assert r._tmp.exists()
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10**8):
        pass
print("not terminated")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 143 and "terminated (SIGTERM)" in done.stderr and "Traceback" not in done.stderr, done
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.mp4"]


def test_rendering_is_refused_in_a_process_whose_dm_control_cannot_render():
    """simpo.envs imports dm_control with rendering off when MUJOCO_GL is unset; a later video of a dmc task in the
    same process is one clear error up front (a gymnasium MuJoCo env still renders: it reads MUJOCO_GL per renderer)."""
    script = """
import os
os.environ.pop("MUJOCO_GL", None)
from simpo.envs import make_env
from simpo.video import prepare_rendering
make_env("dmc:cartpole-balance", 0)
prepare_rendering("InvertedPendulum-v5")
assert os.environ["MUJOCO_GL"] == "egl"
try:
    prepare_rendering("dmc:cartpole-balance")
except ValueError as err:
    print(err)
os.environ["MUJOCO_GL"] = "disable"
try:
    prepare_rendering("InvertedPendulum-v5")
except ValueError as err:
    print(err)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "cannot render dmc:cartpole-balance: dm_control was imported in this process with rendering off (simpo.envs "
        "does that when MUJOCO_GL is unset); set MUJOCO_GL=egl (or osmesa) before simpo or dm_control is imported, "
        "or render from a new process (simpo eval --video)",
        "cannot render: MUJOCO_GL=disable; set MUJOCO_GL=egl (or osmesa)"]
