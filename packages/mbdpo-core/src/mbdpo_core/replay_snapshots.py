"""Incremental replay snapshots: immutable segments of rows plus one small index per checkpoint.

A `ReplayBuffer` numbers its rows by how many were written before them (`written` counts them
all; row i sits in ring row i % capacity), and a row's data never changes once written. So a
snapshot needs only the rows added since the previous one; the rows still in the ring,
[written - capacity, written), are the union of a few segments. Layout in `directory` (a run's
`checkpoints/`), every pair written by `save_checkpoint` (atomic, complete when its JSON exists):

- `replay/rows_<first>_<end>_<digest>`: rows first..end-1, arrays obs [R, *O], action [R, A],
  reward [R], terminated [R], task [R], left [R] with R = end - first, as `ReplayBuffer.state_dict`
  names them (`left` as it was when the segment was written); meta {first, end}. `<digest>`, 16
  hex digits of the sha256 of the arrays, keeps two histories apart (a run resumed from an older
  snapshot never reuses the segments of the future it abandoned) and lets equal rows be written
  once. A segment never crosses a multiple of capacity, so it is one slice of the ring.
- `replay_step_<N>`: the index, no arrays; meta {format, step, replay: the ring's bookkeeping
  (written, rows stored, has_task, sampler RNG state, capacity and shapes), segments: [[name,
  first, end], ...]}. It is written after its segments, so a complete index has all of them.

Which rows a replay has saved is remembered per replay object: the segments of the snapshot it
last wrote or loaded. Those still present in `directory` are reused (their names fix their
content); every other row of the ring is written, so a new replay, another directory or a pruned
segment cost a full write once, never a wrong snapshot. Episode bookkeeping that changes for
old rows (`left` of a partly overwritten episode) is rebuilt on load: the stored rows are exactly
[written - rows, written), the others get left = -1. See docs/design.md#agent-state-and-checkpoints.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .buffer import ReplayBuffer
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import CheckpointError

__all__ = ["save_snapshot", "load_snapshot", "prune_snapshots", "snapshot_steps"]

_FORMAT = "mbdpo-replay-snapshot"
_FIELDS = ("obs", "action", "reward", "terminated", "task", "left")
_CONFIG = ("capacity", "obs_shape", "action_dim", "obs_dtype")
_INDEX_RE = re.compile(r"^replay_step_(\d+)\.(json|safetensors)$")
_SEGMENT_RE = re.compile(r"^(rows_\d+_\d+_[0-9a-f]{16})\.(json|safetensors)$")


class _Segment(NamedTuple):
    name: str
    first: int
    end: int


# replay -> the segments of the snapshot it last wrote or loaded (those on disk are reused)
_saved: weakref.WeakKeyDictionary[ReplayBuffer, tuple[_Segment, ...]] = weakref.WeakKeyDictionary()


def _index(directory: Path, step: int) -> Path:
    return directory / f"replay_step_{int(step)}"


def _segment_file(directory: Path, name: str, suffix: str = ".json") -> Path:
    return directory / "replay" / f"{name}{suffix}"


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    sha = hashlib.sha256()
    for name in _FIELDS:
        value = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
        sha.update(value.data)
    return sha.hexdigest()[:16]


def _write_rows(
    directory: Path, ring: Mapping[str, np.ndarray], capacity: int, first: int, end: int
) -> list[_Segment]:
    """Write rows first..end-1 of the ring as segments, one per stretch between wrap points."""
    segments = []
    while first < end:
        stop = min(end, (first // capacity + 1) * capacity)
        start = first % capacity
        rows = {name: ring[name][start : start + stop - first] for name in _FIELDS}
        segment = _Segment(f"rows_{first}_{stop}_{_digest(rows)}", first, stop)
        if not _segment_file(directory, segment.name).exists():  # equal rows are stored once
            save_checkpoint(
                _segment_file(directory, segment.name, ""), rows, {"first": first, "end": stop}
            )
        segments.append(segment)
        first = stop
    return segments


def save_snapshot(replay: ReplayBuffer, directory: str | Path, step: int) -> None:
    """Write the rows added since the replay's last snapshot, then the index `replay_step_<step>`.

    Args:
        replay: the replay to save (unchanged).
        directory: the run's `checkpoints/` directory.
        step: the loop step the snapshot belongs to.
    """
    directory = Path(directory)
    ring, meta = replay.state_dict()
    capacity, written = meta["capacity"], meta["written"]
    oldest = max(0, written - capacity)  # rows before it are overwritten
    segments, cursor = [], oldest
    for segment in _saved.get(replay, ()):  # reuse those in the ring and on disk, rewrite others
        if segment.end > oldest and _segment_file(directory, segment.name).exists():
            segments += _write_rows(directory, ring, capacity, cursor, segment.first)
            segments.append(segment)
            cursor = segment.end
    segments += _write_rows(directory, ring, capacity, cursor, written)
    index = {
        "format": _FORMAT,
        "step": int(step),
        "replay": {key: meta[key] for key in (*_CONFIG, "written", "rows", "has_task", "rng")},
        "segments": [list(segment) for segment in segments],
    }
    save_checkpoint(_index(directory, step), {}, index)
    _saved[replay] = tuple(segments)


def _read_index(directory: Path, step: int) -> tuple[dict[str, Any], list[_Segment]]:
    """The index's replay bookkeeping and segments; CheckpointError names a bad index."""
    path = _index(directory, step)
    _, meta = load_checkpoint(path)
    try:
        if meta.get("format") != _FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, not {_FORMAT!r}")
        ring = dict(meta["replay"])
        segments = [_Segment(str(n), int(a), int(b)) for n, a, b in meta["segments"]]
        written, rows = int(ring["written"]), int(ring["rows"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"replay snapshot {path}.json is not an index of replay segments ({err!r}); a "
            "snapshot of an older mbdpo-core cannot be resumed by this one."
        ) from err
    oldest = max(0, written - int(ring["capacity"]))
    chained = all(a.end == b.first for a, b in zip(segments, segments[1:], strict=False))
    covered = (segments[0].first <= oldest, segments[-1].end) if segments else (True, oldest)
    if not (0 <= rows <= written - oldest and chained and covered == (True, written)):
        raise CheckpointError(
            f"replay snapshot {path}.json is inconsistent: its segments "
            f"{[s[1:] for s in segments]} do not cover rows {oldest}..{written - 1} in order, "
            f"or it stores {rows} rows."
        )
    return ring, segments


def _check_rows(
    path: Path, rows: Mapping[str, np.ndarray], first: int, stored: int, left_before: int | None
) -> None:
    """Check the stored rows (numbered >= stored) of a segment's rows starting at row `first`.

    left_before is `left` of row first - 1 when that row is stored, else None (first starts
    the oldest stored episode). Within the stored rows each episode counts down to 0, and only the
    first row of an episode may hold NaN action, reward and terminated.
    """
    skip = max(stored - first, 0)
    left = rows["left"][skip:].astype(np.int64)
    if left.size == 0:
        return
    before = np.concatenate([[-1 if skip or left_before is None else left_before], left[:-1]])
    starts = before <= 0  # the oldest stored row, or the row after an episode's last row
    broken = (left < 0) | np.where(starts, left < 1, left != before - 1)
    if broken.any():
        raise CheckpointError(
            f"replay segment {path} is inconsistent: row {first + skip + int(np.argmax(broken))} "
            "breaks the count of rows left in its episode."
        )
    for name in ("obs", "action", "reward", "terminated"):
        value = rows[name][skip:]
        if not np.issubdtype(value.dtype, np.floating):
            continue
        finite = np.isfinite(value.reshape(len(value), -1)).all(axis=1)
        if name != "obs":
            finite |= starts  # row 0 of an episode holds NaN action, reward and terminated
        if not finite.all():
            raise CheckpointError(
                f"replay segment {path} holds a non-finite {name} in row "
                f"{first + skip + int(np.argmin(finite))}; the snapshot cannot be resumed."
            )


def load_snapshot(replay: ReplayBuffer, directory: str | Path, step: int) -> None:
    """Rebuild the replay (ring, counters, sampler state) as it was saved at `step`.

    Reads and checks the index and every segment before the replay changes.

    Args:
        replay: a replay with the capacity, observation shape and dtype and action size of the
            saved one; its content is replaced.
        directory: the run's `checkpoints/` directory.
        step: the step of the snapshot (`replay_step_<step>`).

    Raises:
        CheckpointError: naming the index or segment file that is missing, corrupt, inconsistent
            or holds a non-finite value, or when the replay's capacity or shapes differ.
    """
    directory = Path(directory)
    ring, segments = _read_index(directory, step)
    empty, mine = replay.state_dict()  # `empty` only for the trailing shapes and dtypes
    if [ring[k] for k in _CONFIG] != [mine[k] for k in _CONFIG]:
        raise CheckpointError(
            f"replay snapshot {_index(directory, step)}.json has (capacity, obs_shape, "
            f"action_dim, obs_dtype) = {tuple(ring[k] for k in _CONFIG)}, but this replay has "
            f"{tuple(mine[k] for k in _CONFIG)}; build it with the config of the run."
        )
    capacity, written = int(ring["capacity"]), int(ring["written"])
    oldest, stored = max(0, written - capacity), written - int(ring["rows"])
    arrays = {
        name: np.zeros((written - oldest, *value.shape[1:]), value.dtype)
        for name, value in empty.items()
    }
    left_before = None
    for segment in segments:
        path = _segment_file(directory, segment.name)
        try:
            rows, meta = load_checkpoint(path)
        except CheckpointError as err:
            raise CheckpointError(
                f"replay snapshot {_index(directory, step)}.json needs segment {path}: {err}"
            ) from None
        count = segment.end - segment.first
        for name, value in arrays.items():
            if name not in rows or rows[name].shape != (count, *value.shape[1:]):
                raise CheckpointError(
                    f"replay segment {path} has no {name!r} of shape {(count, *value.shape[1:])}."
                )
        named = (segment.first, segment.end, segment.name[-16:])
        if (meta.get("first"), meta.get("end"), _digest(rows)) != named:
            raise CheckpointError(f"replay segment {path} does not hold the rows its name says.")
        _check_rows(path, rows, segment.first, stored, left_before)
        left_before = int(rows["left"][-1]) if segment.end > stored else None
        skip = max(oldest - segment.first, 0)
        place = np.arange(segment.first + skip, segment.end) % capacity
        for name, value in arrays.items():
            value[place] = rows[name][skip:]
    if written > stored and left_before != 0:
        raise CheckpointError(
            f"replay snapshot {_index(directory, step)}.json ends inside an episode."
        )
    arrays["left"][np.arange(oldest, stored) % capacity] = -1
    replay.load_state_dict(
        arrays,
        {
            **ring,
            "write": written % capacity,
            "filled": written - oldest,
            "episodes": int(np.count_nonzero(arrays["left"] == 0)),
        },
    )
    _saved[replay] = tuple(segments)


def snapshot_steps(directory: str | Path) -> list[int]:
    """Steps of the complete snapshot indexes (their JSON exists) in `directory`, ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = (_INDEX_RE.match(p.name) for p in directory.iterdir())
    return sorted(int(m[1]) for m in found if m and m[2] == "json")


def prune_snapshots(directory: str | Path, keep_steps: Iterable[int]) -> None:
    """Remove the indexes not in keep_steps, then every segment no kept index needs.

    When a kept index cannot be read, no segment is removed (what it needs is unknown).
    """
    directory = Path(directory)
    keep = {int(s) for s in keep_steps}
    if not directory.is_dir():
        return
    found = [(m, p) for p in directory.iterdir() if (m := _INDEX_RE.match(p.name))]
    _remove(p for m, p in found if int(m[1]) not in keep)
    needed = set()
    for step in snapshot_steps(directory):
        try:
            needed.update(segment.name for segment in _read_index(directory, step)[1])
        except CheckpointError:
            return
    segments = directory / "replay"
    if segments.is_dir():
        found = [(m, p) for p in segments.iterdir() if (m := _SEGMENT_RE.match(p.name))]
        _remove(p for m, p in found if m[1] not in needed)


def _remove(paths: Iterable[Path]) -> None:
    """Delete file pairs, every JSON first: an interrupted removal leaves incomplete pairs."""
    for path in sorted(paths, key=lambda p: p.suffix != ".json"):
        path.unlink(missing_ok=True)
