"""Videos of a policy: one evaluation episode rendered to .mp4 or .gif (`simpo eval --video PATH`).

MuJoCo renders off-screen through an OpenGL backend: MUJOCO_GL=egl (GPU or Mesa's EGL) or osmesa (software).
`prepare_rendering` sets egl when MUJOCO_GL is unset; it must run before dm_control's first import in the process
(simpo.envs imports dm_control with MUJOCO_GL=disable otherwise, and a dmc env then cannot render).
GIFs need only Pillow; MP4s need imageio-ffmpeg (`pip install -c constraints.txt -e '.[video]'`).
"""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".gif")
RENDER_SIZE = (240, 320)  # (height, width) of a frame
MAX_GIF_FPS = 50  # GIF delays are whole centiseconds, and viewers slow delays under 2 cs down to 10 cs
MP4_MISSING = "writing .mp4 needs imageio-ffmpeg: pip install -c constraints.txt -e '.[video]' (or write a .gif)"


def prepare_rendering(env_id: str = "") -> None:
    """Set MUJOCO_GL=egl unless it is set; refuse (one-line ValueError) when rendering is off: MUJOCO_GL names no
    backend, or, for a `dmc:` task, dm_control was already imported without one in this process (simpo.envs imports
    it with MUJOCO_GL=disable when MUJOCO_GL is unset, and dm_control reads it once, on import)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    off = ("off", "disable", "disabled", "false", "0")  # dm_control._render.constants.NO_RENDERER
    if os.environ["MUJOCO_GL"].lower() in off:
        raise ValueError(f"cannot render: MUJOCO_GL={os.environ['MUJOCO_GL']}; set MUJOCO_GL=egl (or osmesa)")
    if env_id.startswith("dmc:") and getattr(sys.modules.get("dm_control._render"), "BACKEND", None) in off:
        raise ValueError(f"cannot render {env_id}: dm_control was imported in this process with rendering off "
                         "(simpo.envs does that when MUJOCO_GL is unset); set MUJOCO_GL=egl (or osmesa) before simpo "
                         "or dm_control is imported, or render from a new process (simpo eval --video)")


def check_video_path(path: Path, overwrite: bool = False) -> Path:
    """A writable .mp4/.gif path, checked before any work; an existing file there is replaced only if `overwrite`."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"--video {path}: give a file name ending in {' or '.join(VIDEO_SUFFIXES)}")
    if path.is_dir():
        raise ValueError(f"--video {path} is a directory; give a file name ending in .mp4 or .gif")
    if path.exists() and not overwrite:
        raise ValueError(f"--video {path} exists; pass --overwrite to replace it, or choose another file name")
    if path.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ValueError(MP4_MISSING)
    parent = path.absolute().parent
    if not parent.is_dir():
        raise ValueError(f"--video {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"--video {path}: folder {parent} is not writable")
    return path


class VideoRecorder:
    """Writes the frames it is called with to `path`, in real time at the env's `fps`: streamed into a hidden file
    beside `path`, renamed to `path` by `close()` (`abort()` removes it), so a failed episode leaves no partial video.
    Used as a context manager, it aborts on any exception and turns SIGTERM into one (exit code 143), so a killed
    `simpo eval --video` leaves none either.
    A GIF keeps every k-th frame, k = ceil(fps / MAX_GIF_FPS) (a 100 fps dm_control task: every 2nd, at 50 fps)."""

    def __init__(self, path: Path, fps: float, overwrite: bool = False):
        self.path, self.count, self._calls = check_video_path(path, overwrite), 0, 0
        self.stride = math.ceil(fps / MAX_GIF_FPS) if self.path.suffix.lower() == ".gif" else 1
        self.fps = float(fps) / self.stride
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer = self._sigterm = None

    def __enter__(self) -> VideoRecorder:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            self._sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self

    def __exit__(self, kind, err, tb) -> None:
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
        if kind is not None:
            self.abort()

    def __call__(self, env) -> None:
        """Render `env` and append its frame (every `stride`-th call)."""
        self._calls += 1
        if (self._calls - 1) % self.stride:
            return
        try:
            frame = env.render()
        except Exception as err:  # no OpenGL backend, or an env that cannot render
            text = (str(err).strip().splitlines() or [""])[0]
            raise ValueError(f"cannot render {env.spec.id if env.spec else type(env.unwrapped).__name__}: "
                             f"{type(err).__name__}: {text} (MuJoCo renders through MUJOCO_GL=egl or osmesa)") from None
        if frame is None:
            raise ValueError("the env returned no frame; it cannot render (MuJoCo and dm_control envs can)")
        if self._writer is None:
            import warnings

            import imageio.v2 as imageio

            # imageio-ffmpeg starts ffmpeg with fork+exec; JAX warns about any fork: not this one
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)

            gif = self.path.suffix.lower() == ".gif"
            options = dict(duration=1000.0 / self.fps, loop=0) if gif else dict(fps=self.fps, macro_block_size=1)
            self._writer = imageio.get_writer(self._tmp, **options)
        self._writer.append_data(np.asarray(frame, np.uint8))
        self.count += 1

    def close(self) -> Path:
        if self._writer is None:
            raise ValueError("no frame was recorded")
        writer, self._writer = self._writer, None
        try:
            writer.close()
            os.replace(self._tmp, self.path)
        except BaseException:  # ffmpeg failed, the disk is full, ...: no hidden partial file left behind
            self._tmp.unlink(missing_ok=True)
            raise
        return self.path

    def abort(self) -> None:
        """Remove the partial video (a video already closed to `path` stays)."""
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def _exit_on_sigterm(signum, frame):
    print("terminated (SIGTERM)", file=sys.stderr)
    raise SystemExit(128 + signum)
