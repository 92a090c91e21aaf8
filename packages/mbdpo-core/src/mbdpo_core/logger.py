"""Run logging: one CSV per category, TensorBoard scalars, optionally Weights & Biases, and a
console line for evaluations.

`<run_dir>/<category>.csv` has `step` as its first column; `eval.csv` then has episode_reward,
episode_success, episode_length. Other columns follow in first-seen order, TIMING_COLUMNS
(added by the loops) last. When a later row brings
a new key, the file is rewritten with the union header (earlier rows get empty cells). TensorBoard
scalars are `<category>/<key>` in `<run_dir>/events.out.tfevents.*` (tensorboardX, no torch);
a `WandbRun` gets the same numbers under the same tags at the same step (mbdpo_core.tracking).

Resuming: a Logger on an existing run_dir appends to its CSVs; `truncate_after(step)` drops CSV
rows logged after a checkpoint's step and makes TensorBoard discard later events (purge_step);
W&B, whose history cannot be rewritten, is sent only the rows after those it already holds.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tracking import WandbRun

__all__ = ["Logger", "EVAL_COLUMNS", "TIMING_COLUMNS"]

EVAL_COLUMNS = ("step", "episode_reward", "episode_success", "episode_length")
TIMING_COLUMNS = ("wall_time_s", "steps_per_s")
"""Wall-clock columns the loops add to their rows: seconds since the run started (earlier sessions
included) and environment steps per second since the previous row of the same file."""


def _cell(value: Any) -> int | float | str:
    if isinstance(value, str):  # a label, e.g. the task of a per-task evaluation row
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        return int(value)
    return float(value)


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _rewrite(path: Path, header: list[str], rows: list[Mapping[str, Any]]) -> None:
    """Replace path atomically with header and rows."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, restval="")
            writer.writeheader()
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _import_summary_writer() -> type:
    """tensorboardX's SummaryWriter, imported without torch unless torch is already loaded.

    tensorboardX imports torch whenever it is installed (measured here: +5 s and +500 MB for a
    JAX run); it needs torch only for torch tensors, and we log Python floats.
    """
    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # makes `import torch` raise ImportError, which tensorboardX skips
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class Logger:
    """Writes metrics of a run to CSV, TensorBoard, W&B and (for "eval") the console.

    Args:
        run_dir: the run directory (created if missing; existing CSVs are appended to).
        console: print one compact line per "eval" row.
        tensorboard: write TensorBoard scalars with tensorboardX.
        wandb: a W&B run to send the rows to; its owner starts and finishes it.
    """

    def __init__(
        self,
        run_dir: str | Path,
        console: bool = True,
        tensorboard: bool = True,
        wandb: WandbRun | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.console = console
        self.tensorboard = tensorboard
        self.wandb = wandb
        self._headers: dict[str, list[str]] = {}
        self._writer: Any = None
        self._purge_step: int | None = None

    def log(
        self,
        category: str,
        step: int,
        metrics: Mapping[str, float | str],
        scalars: str | None = None,
        console: bool | None = None,
    ) -> None:
        """Append one row `step, **metrics` to `<category>.csv`, TensorBoard and W&B.

        A `step` key inside metrics is ignored (the argument wins). String values (labels) go to
        the CSV only.

        Args:
            scalars: TensorBoard and W&B tag prefix of the row's numbers (default `category`),
                e.g. `eval/walker-walk` for one task's row of a multi-task evaluation.
            console: print the row (default: for "eval" rows, when the Logger prints).
        """
        row = {"step": int(step)}
        row.update({k: _cell(v) for k, v in metrics.items() if k != "step"})
        self._write_csv(category, row)
        tagged = {
            f"{scalars or category}/{key}": value
            for key, value in row.items()
            if key != "step" and not isinstance(value, str)
        }
        if self.tensorboard:
            writer = self._tb()
            for tag, value in tagged.items():
                writer.add_scalar(tag, value, int(step))
            writer.flush()
        if self.wandb is not None:
            self.wandb.log(int(step), tagged)
        if self.console and (category == "eval" if console is None else console):
            self._print(row)

    def _header(self, category: str) -> list[str]:
        if category not in self._headers:
            path = self.run_dir / f"{category}.csv"
            header = _read(path)[0] if path.exists() and path.stat().st_size else []
            if not header:
                header = list(EVAL_COLUMNS) if category == "eval" else ["step"]
            self._headers[category] = header
        return self._headers[category]

    def _write_csv(self, category: str, row: dict[str, Any]) -> None:
        path = self.run_dir / f"{category}.csv"
        header = self._header(category)
        new_keys = [k for k in row if k not in header]
        if new_keys or not path.exists() or not path.stat().st_size:
            old_rows = _read(path)[1] if path.exists() and path.stat().st_size else []
            header.extend(new_keys)
            header.sort(key=lambda k: k in TIMING_COLUMNS)  # stable: the clock columns last
            _rewrite(path, header, [*old_rows, row])
            return
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=header, restval="").writerow(row)

    def _tb(self) -> Any:
        if self._writer is None:
            SummaryWriter = _import_summary_writer()  # noqa: N806
            # tensorboardX names files by the second and opens them "wb": a unique suffix keeps a
            # writer reopened within the same second from overwriting the previous file
            self._writer = SummaryWriter(
                logdir=str(self.run_dir),
                purge_step=self._purge_step,
                filename_suffix=f".{uuid.uuid4().hex[:8]}",
            )
        return self._writer

    def _print(self, row: Mapping[str, Any]) -> None:
        from tqdm import tqdm  # tqdm.write keeps an active progress bar intact

        parts = [f"eval  step {row['step']:,}"]
        for key, value in row.items():
            if key in ("step", *TIMING_COLUMNS):
                continue
            name = key.removeprefix("episode_")
            if isinstance(value, str):
                parts.append(f"{name} {value}")
                continue
            number = f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
            parts.append(f"{name} {number}" if math.isfinite(value) else f"{name} {value}")
        tqdm.write("  ".join(parts))

    def truncate_after(self, step: int) -> None:
        """Drop every CSV row with step > `step`; TensorBoard discards events after it too; W&B
        is told the last step it holds (every row written so far was sent to it)."""
        logged: list[float] = []
        for path in sorted(self.run_dir.glob("*.csv")):
            header, rows = _read(path)
            if not header or header[0] != "step":
                continue  # not one of ours
            logged.extend(float(r["step"]) for r in rows if r["step"])
            kept = [r for r in rows if r["step"] and float(r["step"]) <= step]
            if len(kept) != len(rows):
                _rewrite(path, header, kept)
        if self.wandb is not None and logged:
            self.wandb.skip_through(int(max(logged)))
        self._purge_step = int(step) + 1
        if self._writer is not None:  # the next event file starts with the purge marker
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        """Flush and close the TensorBoard writer (CSV rows are written as they come)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def log_video(self, tag: str, step: int, path: str | Path) -> None:
        """The evaluation episode in the mp4 at `path` as TensorBoard image `tag` at `step`: an
        animated GIF preview (`mbdpo_core.video.preview_gif`), the way tensorboardX's add_video
        writes one, without moviepy; the mp4 stays the full-size record (docs/design.md#videos)."""
        if not self.tensorboard:
            return
        from .video import preview_gif

        gif, height, width = preview_gif(path)
        writer = self._tb()  # imports tensorboardX first (see _import_summary_writer)
        from tensorboardX.proto.summary_pb2 import Summary

        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        writer.file_writer.add_summary(summary, int(step))
        writer.flush()
