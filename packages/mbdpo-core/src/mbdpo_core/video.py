"""Evaluation episodes filmed to mp4, and their TensorBoard previews (docs/design.md#videos).

The one home for recording an episode: `EpisodeVideo` streams frames (the environment's
`render(VIDEO_SIZE, VIDEO_SIZE)`, (H, W, 3) uint8, the task's camera) to ffmpeg (H.264, yuv420p,
VIDEO_FPS) in a temporary file beside the target, then fsyncs and renames it, so an mp4 is
complete or absent. `preview_gif` turns an mp4 into the small animated GIF that TensorBoard's
image dashboard plays. Files of a run: `<run_dir>/videos/step_<N>.mp4` (one evaluated task) or
`step_<N>-<task>.mp4` (a task set), `video_path`.

Needs the extra `mbdpo-core[video]` (imageio, imageio-ffmpeg; imported lazily);
`check_video_support` says so before a run writes anything.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from types import TracebackType

import numpy as np

from .errors import MissingExtraError

__all__ = [
    "VIDEO_SIZE",
    "VIDEO_FPS",
    "PREVIEW_SIZE",
    "PREVIEW_EVERY",
    "PREVIEW_COLOURS",
    "check_video_support",
    "video_due",
    "video_path",
    "video_steps",
    "discard_videos_after",
    "EpisodeVideo",
    "read_frames",
    "preview_gif",
]

VIDEO_SIZE = 384
"""Width and height of a filmed frame, in pixels."""
VIDEO_FPS = 30
PREVIEW_SIZE = 96
"""Width and height of a TensorBoard preview frame (the mp4's frames averaged over 4 x 4 blocks)."""
PREVIEW_EVERY = 4
"""A TensorBoard preview keeps every PREVIEW_EVERY-th frame (played at the mp4's speed)."""
PREVIEW_COLOURS = 64
_EXTRA = "mbdpo-core[video]"
_NAME = re.compile(r"step_(\d+)(?:-.+)?\.mp4")
_TEMPORARY_SUFFIX = ".tmp"  # matches loops.checkpointing.TEMPORARY_GLOB: clean() removes leftovers


def check_video_support(setting: str) -> None:
    """Raise a one-line MissingExtraError naming the extra to install when imageio or
    imageio-ffmpeg is missing; `setting` is what asked for videos, e.g. "video_every=10000"."""
    missing = [m for m in ("imageio", "imageio_ffmpeg") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"{setting} writes mp4 videos with the extra {_EXTRA}, whose "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
            f"`uv sync` (pip: `pip install '{_EXTRA}'`)."
        )


def video_due(every: int, step: int, previous: int | None, last: int) -> bool:
    """Whether the evaluation at loop step `step` is filmed (`video_every=every`).

    Filmed: the run's first evaluation (`previous`, the step of the one before, is None), its
    last (`step >= last`, the run's `steps`) and the first one at or after each multiple of
    `every`, which is every evaluation whose step is a multiple of `every` when evaluations fall
    on multiples of eval_freq. Never when every is 0.
    """
    if every <= 0:
        return False
    return previous is None or step >= last or step // every > previous // every


def video_path(folder: str | Path, step: int, task: str | None = None) -> Path:
    """`<folder>/step_<step>.mp4`, or `step_<step>-<task>.mp4` for one task of a task set."""
    suffix = "" if task is None else f"-{task}"
    return Path(folder) / f"step_{int(step)}{suffix}.mp4"


def video_steps(folder: str | Path) -> dict[Path, int]:
    """The videos in `folder` (named by `video_path`) -> their loop step."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {p: _NAME.fullmatch(p.name) for p in folder.iterdir() if p.is_file()}
    return {p: int(m.group(1)) for p, m in sorted(found.items()) if m is not None}


def discard_videos_after(folder: str | Path, step: int) -> list[Path]:
    """Remove the videos of loop steps after `step` (a run resumed from the checkpoint at `step`
    films them again); returns the removed files."""
    later = [path for path, s in video_steps(folder).items() if s > step]
    for path in later:
        path.unlink(missing_ok=True)
    return later


class EpisodeVideo:
    """One mp4 written frame by frame: `add(frame)` for the reset and every step, then leave the
    `with` block to publish it at `path` (fsync, rename); an exception removes it instead.

    Args:
        path: the mp4 to write (its folder is created).
        fps: frames per second of playback.
    """

    def __init__(self, path: str | Path, fps: int = VIDEO_FPS) -> None:
        self.path, self.fps, self.frames = Path(path), fps, 0
        self._tmp: Path | None = None
        self._encoder = None

    def __enter__(self) -> EpisodeVideo:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=_TEMPORARY_SUFFIX, dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(name)
        return self

    def add(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 frame; every frame has the first one's size."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if self._encoder is None:
            self._encoder = self._start(frame.shape)
        self._encoder.send(frame)
        self.frames += 1

    def _start(self, shape: tuple[int, ...]):
        import imageio_ffmpeg

        height, width, _ = shape
        encoder = imageio_ffmpeg.write_frames(
            str(self._tmp),
            (width, height),
            fps=self.fps,
            codec="libx264",
            output_params=["-f", "mp4"],  # the temporary name has no .mp4 suffix
        )
        with warnings.catch_warnings():  # JAX warns of any fork; this forks and execs ffmpeg
            warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
            encoder.send(None)  # starts ffmpeg
        return encoder

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        tmp, encoder, self._encoder = self._tmp, self._encoder, None
        try:
            if encoder is not None:
                encoder.close()  # waits for ffmpeg to finish the file
            if kind is None:
                if not self.frames:
                    raise ValueError(f"no frames were added to the video {self.path}.")
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                tmp.chmod(0o644)  # mkstemp creates 0600
                os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)


def read_frames(path: str | Path, every: int = 1) -> np.ndarray:
    """Every `every`-th frame of the video at `path` (the first included): (T, H, W, 3) uint8."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        width, height = next(reader)["size"]
        frames = [
            np.frombuffer(data, np.uint8).reshape(height, width, 3)
            for i, data in enumerate(reader)
            if i % every == 0
        ]
    finally:
        reader.close()
    return np.stack(frames)


def preview_gif(path: str | Path) -> tuple[bytes, int, int]:
    """The mp4 at `path` as a looping GIF for TensorBoard: every PREVIEW_EVERY-th frame, averaged
    over square blocks down to about PREVIEW_SIZE pixels, at the mp4's speed (VIDEO_FPS), in
    PREVIEW_COLOURS colours shared by all frames, undithered (unchanged pixels stay equal and
    compress: about 75 kB for a 500-step cartpole episode); returns (bytes, height, width)."""
    from PIL import Image  # imageio's own dependency

    frames = read_frames(path, PREVIEW_EVERY)
    count, height, width, _ = frames.shape
    k = max(1, min(height, width) // PREVIEW_SIZE)
    h, w = height // k, width // k
    blocks = frames[:, : h * k, : w * k].reshape(count, h, k, w, k, 3)
    small = blocks.mean(axis=(2, 4)).round().astype(np.uint8)
    sample = np.concatenate(list(small[:: max(1, count // 8)]))  # up to 9 frames stacked
    palette = Image.fromarray(sample).quantize(PREVIEW_COLOURS, dither=Image.Dither.NONE)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in small]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 * PREVIEW_EVERY / VIDEO_FPS),  # milliseconds per frame
        loop=0,
    )
    return buffer.getvalue(), h, w
