"""Convert TD-MPC2 `.pt` chunks to `.npz` chunks: safe, streamed, validated, resumable.

`convert(src, dst)` reads every `*.pt` of folder `src` with `pt_chunk.read_chunk` (no code from
the file runs), checks names, shapes and dtypes of all of them before writing anything, then
writes one uncompressed `.npz` per chunk with the same arrays, shapes and dtypes, streaming each
array in blocks of whole episodes (`BLOCK_BYTES`, `BUFFERS` of them in flight): each block is
checked (`checks.check_values`), hashed (sha256, stored in the manifest), checked against the
zip's CRC-32, and written. A chunk is written under a temporary name, fsynced and renamed, then
recorded in `manifest.json`, so a killed conversion leaves only complete outputs and temporaries
the next run removes. A rerun skips every chunk the manifest records whose output still hashes
to its checksums. `jobs` > 1 converts chunks in parallel processes (docs/data.md#conversion).
"""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
import re
import sys
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mbdpo_core.errors import ConfigError, DataFormatError
from tqdm import tqdm

from .checks import check_structure, check_values, infer_layout
from .layouts import ARRAYS, LAYOUTS, OPTIONAL_ARRAYS, DatasetLayout
from .manifest import MANIFEST, fsync_dir, new_manifest, read_manifest, write_manifest
from .npz_io import NpzWriter, open_npz
from .pt_chunk import StoredArray, read_chunk

__all__ = ["BLOCK_BYTES", "SourceChunk", "convert", "plan_sources", "verify_chunk"]

BLOCK_BYTES = 32 << 20
"""Bytes of whole episodes read, checked, hashed and written at a time."""

BUFFERS = 3
"""Blocks in flight (read and checked, hashed, written): memory is about BUFFERS x BLOCK_BYTES."""

LOCK = ".lock"
_TEMPORARY = re.compile(r"^\..+\.tmp$")  # .<name>.<suffix>.tmp: outputs not yet renamed


@dataclass(frozen=True)
class SourceChunk:
    """One `.pt` chunk, inspected: its arrays' places, episodes, size and modification time."""

    path: Path
    arrays: dict[str, StoredArray]
    episodes: int
    bytes: int
    mtime_ns: int

    @property
    def output(self) -> str:
        return f"{self.path.stem}.npz"


def _natural(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def plan_sources(src: Path, dataset: str | None = None) -> tuple[DatasetLayout, list[SourceChunk]]:
    """Inspect every `*.pt` of `src` (records only, no array data) and check it against one
    layout: `dataset` (mt30 or mt80) or, if None, the one the first chunk matches."""
    if not src.is_dir():
        raise ConfigError(f"SRC {src} is not a folder; give the folder of chunk_<i>.pt files.")
    paths = sorted(src.glob("*.pt"), key=_natural)
    if not paths:
        raise ConfigError(f"SRC {src} holds no .pt file; give the folder of chunk_<i>.pt files.")
    if dataset is not None and dataset not in LAYOUTS:
        raise ConfigError(f"dataset={dataset!r} is unknown; valid: {', '.join(LAYOUTS)}.")
    layout = LAYOUTS[dataset] if dataset else None
    sources = []
    for path in paths:
        arrays, batch_size = read_chunk(path)
        layout = layout or infer_layout(path, arrays)
        episodes = check_structure(path, arrays, batch_size, layout)
        stat = path.stat()
        sources.append(SourceChunk(path, arrays, episodes, stat.st_size, stat.st_mtime_ns))
    assert layout is not None
    return layout, sources


def _hash_range(f: Any, offset: int, nbytes: int, buffer: bytearray) -> str:
    sha = hashlib.sha256()
    f.seek(offset)
    left = nbytes
    while left:
        view = memoryview(buffer)[: min(left, len(buffer))]
        got = f.readinto(view)
        if not got:
            raise DataFormatError(f"{f.name}: ends {left} bytes early.")
        sha.update(view[:got])
        left -= got
    return sha.hexdigest()


def verify_chunk(root: Path, record: dict[str, Any]) -> str | None:
    """The first way `root/<record name>` differs from its manifest record, or None."""
    path = root / record["name"]
    if not path.is_file():
        return "missing"
    if path.stat().st_size != record["bytes"]:
        return f"{path.stat().st_size} bytes, the manifest says {record['bytes']}"
    try:
        arrays = open_npz(path)
    except DataFormatError as err:
        return str(err)
    if sorted(arrays) != sorted(record["arrays"]):
        return f"arrays {sorted(arrays)}, the manifest says {sorted(record['arrays'])}"
    buffer = bytearray(BLOCK_BYTES)
    with open(path, "rb") as f:
        for name, expected in record["arrays"].items():
            array = arrays[name]
            if [*array.shape] != expected["shape"] or array.dtype.name != expected["dtype"]:
                return f"{name} is {array.dtype.name} {list(array.shape)}, expected {expected}"
            offset = array.offset if isinstance(array, np.memmap) else 0
            if _hash_range(f, offset, array.nbytes, buffer) != expected["sha256"]:
                return f"{name} does not match its sha256"
    return None


def _read_exactly(f: Any, view: memoryview) -> bool:
    """Fill view from f; False when the file ends first."""
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            return False
        done += got
    return True


def _stream_array(
    source: SourceChunk,
    array: StoredArray,
    f: Any,
    writer: NpzWriter,
    layout: DatasetLayout,
    report: Callable[[int], None],
    hasher: ThreadPoolExecutor,
    scribe: ThreadPoolExecutor,
    observe: Callable[[np.ndarray], None] = lambda block: None,
) -> str:
    """Copy one array block by block, checking it (and showing each block to `observe`);
    return its sha256.

    The calling thread reads, checks and CRCs block k while `hasher` hashes block k-1 and
    `scribe` writes it (hashlib, zlib and file writes release the GIL), in `BUFFERS` buffers.
    """
    sha = hashlib.sha256()
    crc = 0
    episodes = array.shape[0]
    per_episode = array.nbytes // episodes if episodes else 0
    per_block = max(1, BLOCK_BYTES // max(per_episode, 1))
    buffers = [bytearray(min(per_block, episodes) * per_episode) for _ in range(BUFFERS)]
    in_flight: deque[tuple[Future, Future]] = deque()
    f.seek(array.offset)
    with writer.array(array.name, array.dtype, array.shape) as out:
        try:
            for index, first in enumerate(range(0, episodes, per_block)):
                if len(in_flight) == BUFFERS:  # the oldest buffer is about to be refilled
                    for future in in_flight.popleft():
                        future.result()
                count = min(per_block, episodes - first)
                view = memoryview(buffers[index % BUFFERS])[: count * per_episode]
                if not _read_exactly(f, view):
                    raise DataFormatError(f"{source.path}: {array.name} ends early; truncated.")
                block = np.frombuffer(view, array.dtype).reshape(count, *array.shape[1:])
                problem = check_values(array.name, block, layout)
                if problem:
                    raise DataFormatError(
                        f"{source.path}: {problem} (episodes {first}..{first + count - 1})."
                    )
                observe(block)
                crc = zlib.crc32(view, crc)
                in_flight.append((hasher.submit(sha.update, view), scribe.submit(out.write, view)))
                report(len(view))
        finally:
            wait([future for pair in in_flight for future in pair])
        for pair in in_flight:
            for future in pair:
                future.result()
    if array.member_crc is not None and crc != array.member_crc:
        raise DataFormatError(
            f"{source.path}: {array.name} fails the archive's CRC-32 check; the file is "
            "corrupt, download it again."
        )
    return sha.hexdigest()


def convert_chunk(
    source: SourceChunk, layout: DatasetLayout, dst: Path, report: Callable[[int], None]
) -> dict[str, Any]:
    """Write `dst/<stem>.npz` from one source chunk atomically; return its manifest record."""
    target = dst / source.output
    tmp = dst / f".{source.output}.{os.getpid()}.tmp"
    names = [n for n in (*ARRAYS, *OPTIONAL_ARRAYS) if n in source.arrays]
    tasks: list[tuple[int, int]] = []  # (low, high) of each block of task ids

    def task_range(block: np.ndarray) -> None:
        tasks.append((int(block.min()), int(block.max())))

    try:
        records = {}
        writer = NpzWriter(tmp)
        try:
            with (
                open(source.path, "rb", buffering=0) as f,
                ThreadPoolExecutor(1) as hasher,
                ThreadPoolExecutor(1) as scribe,
            ):
                for name in names:
                    array = source.arrays[name]
                    observe = task_range if name == "task" else (lambda block: None)
                    digest = _stream_array(
                        source, array, f, writer, layout, report, hasher, scribe, observe
                    )
                    shape = list(array.shape)
                    records[name] = {"dtype": array.dtype.name, "shape": shape, "sha256": digest}
        finally:
            writer.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "name": source.output,
        "source": source.path.name,
        "source_bytes": source.bytes,
        "source_mtime_ns": source.mtime_ns,
        "bytes": target.stat().st_size,
        "episodes": source.episodes,
        "task_range": [min(t[0] for t in tasks), max(t[1] for t in tasks)] if tasks else None,
        "arrays": records,
    }


_counter: Any = None  # a worker process's shared byte counter


def _init_worker(counter: Any) -> None:
    global _counter
    _counter = counter


def _report_shared(nbytes: int) -> None:
    with _counter.get_lock():
        _counter.value += nbytes


def _convert_in_worker(source: SourceChunk, layout: DatasetLayout, dst: Path) -> dict[str, Any]:
    return convert_chunk(source, layout, dst, _report_shared)


class _DatasetLock:
    """flock on `dst/.lock`: one conversion per output folder at a time."""

    def __init__(self, dst: Path) -> None:
        self._file = open(dst / LOCK, "a+")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise ConfigError(f"DST {dst} is being converted by another process.") from None

    def release(self) -> None:
        self._file.close()


def _check_dst(dst: Path, layout: DatasetLayout) -> dict[str, Any] | None:
    if dst.exists() and not dst.is_dir():
        raise ConfigError(f"DST {dst} is a file; give a new or empty folder, or a dataset's.")
    manifest = read_manifest(dst) if dst.is_dir() else None
    if manifest is None and dst.is_dir():
        foreign = [p.name for p in dst.iterdir() if p.name != LOCK and not _TEMPORARY.match(p.name)]
        if foreign:
            raise ConfigError(
                f"DST {dst} holds {len(foreign)} files and no {MANIFEST} ({foreign[0]}, ...); "
                "give a new or empty folder, or the folder of an earlier conversion."
            )
    if manifest is not None and manifest["dataset"] != layout.name:
        raise ConfigError(
            f"DST {dst} holds the {manifest['dataset']} dataset; SRC has {layout.name} chunks."
        )
    return manifest


def _summarise(manifest: dict[str, Any], complete: bool) -> None:
    chunks = sorted(manifest["chunks"], key=lambda c: _natural(Path(c["name"])))
    ranges = [c["task_range"] for c in chunks if c["task_range"]]
    manifest["chunks"] = chunks
    manifest["episodes"] = sum(c["episodes"] for c in chunks)
    manifest["task_range"] = (
        [min(r[0] for r in ranges), max(r[1] for r in ranges)] if ranges else None
    )
    manifest["complete"] = complete


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    jobs: int = 1,
    dataset: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda line: tqdm.write(line, file=sys.stderr),
) -> dict[str, Any]:
    """Convert every `*.pt` chunk of folder `src` into folder `dst`; return the manifest.

    Args:
        jobs: chunks converted at once, each in its own process (1: in this process).
        dataset: "mt30" or "mt80"; None infers it from the first chunk's T and widths.
        overwrite: convert again chunks already converted (also those whose source changed).
        progress: show a progress bar of bytes and chunks on stderr.
        log: where one line per chunk (converted, skipped, converted again) goes.

    Raises:
        ConfigError: bad SRC, DST or argument, before anything is written.
        DataFormatError: a chunk is corrupt, truncated or of another layout; the message names
            the file. Chunks finished before it stay converted and recorded.
    """
    src, dst = Path(src), Path(dst)
    if jobs < 1:
        raise ConfigError(f"jobs={jobs}; give 1 or more.")
    layout, sources = plan_sources(src, dataset)
    manifest = _check_dst(dst, layout)
    dst.mkdir(parents=True, exist_ok=True)
    lock = _DatasetLock(dst)
    try:
        for path in dst.iterdir():
            if _TEMPORARY.match(path.name):
                path.unlink()
        manifest = manifest or new_manifest(layout)
        recorded = {c["source"]: c for c in manifest["chunks"]}
        pending = []
        for source in sources:
            record = recorded.get(source.path.name)
            if record is None or overwrite:
                pending.append(source)
                continue
            stamp = (record["source_bytes"], record["source_mtime_ns"])
            if stamp != (source.bytes, source.mtime_ns):
                raise ConfigError(
                    f"{source.path} changed since it was converted to {dst / record['name']}; "
                    "pass --overwrite (overwrite=True) to convert it again."
                )
            problem = verify_chunk(dst, record)
            if problem is None:
                log(f"{source.path.name}: already converted and verified, skipped")
                continue
            log(f"{record['name']}: {problem}; converting it again")
            pending.append(source)
        pending_names = {s.path.name for s in pending}
        manifest["chunks"] = [c for c in manifest["chunks"] if c["source"] not in pending_names]
        before = read_manifest(dst)
        _summarise(manifest, complete=not pending)
        if manifest != before:  # a rerun with nothing to do rewrites nothing
            write_manifest(dst, manifest)
        if pending:
            _run(pending, layout, dst, jobs, progress, manifest, log)
            _summarise(manifest, complete=True)
            write_manifest(dst, manifest)
    finally:
        lock.release()
    return manifest


def _run(
    pending: list[SourceChunk],
    layout: DatasetLayout,
    dst: Path,
    jobs: int,
    progress: bool,
    manifest: dict[str, Any],
    log: Callable[[str], None],
) -> None:
    bar = tqdm(
        total=sum(a.nbytes for s in pending for a in s.arrays.values()),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="converting",
        disable=not progress,
        file=sys.stderr,
        mininterval=0.5 if sys.stderr.isatty() else 30,
    )

    def finished(record: dict[str, Any]) -> None:
        manifest["chunks"].append(record)
        _summarise(manifest, complete=False)
        write_manifest(dst, manifest)
        done = len(manifest["chunks"])
        bar.set_postfix_str(f"{done} chunks done")
        log(f"{record['source']} -> {record['name']}: {record['episodes']} episodes")

    with bar:
        if jobs == 1 or len(pending) == 1:
            for source in pending:
                finished(convert_chunk(source, layout, dst, bar.update))
            return
        context = multiprocessing.get_context("spawn")
        counter = context.Value("q", 0)
        shown = 0
        with ProcessPoolExecutor(
            min(jobs, len(pending)), context, initializer=_init_worker, initargs=(counter,)
        ) as pool:
            running: set[Future] = {
                pool.submit(_convert_in_worker, s, layout, dst) for s in pending
            }
            try:
                while running:
                    done, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                    bar.update(counter.value - shown)
                    shown = counter.value
                    for future in done:
                        finished(future.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
