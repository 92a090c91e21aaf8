"""An offline W&B run read back from its files, for the tests of the W&B tracking.

`<dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb` is the run's transaction log as wandb-core
writes it: a 7-byte header (":W&B", magic 0xBEE1, version), then protobuf `Record`s in LevelDB-log
framing (32 KiB blocks; each chunk has a 7-byte header: crc32, length, type full/first/middle/last).
wandb 0.31 ships no Python reader of it, so this reads the framing and parses the records with
wandb's own protobuf classes.
"""

import csv
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto.wandb_internal_pb2 import Record

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Record]:
    """Every Record of a .wandb file, in order."""
    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1), path
    pos, chunks = 7, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding to the end of the block
            pos += BLOCK - pos % BLOCK
            continue
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            yield Record.FromString(chunks)
            chunks = b""


@dataclass
class OfflineRun:
    """What one offline session of a W&B run holds.

    history: step -> {key: value} of its logged rows; summary: the last summary of each key;
    artifacts: (name, type, aliases, {path in the artifact: staged copy on disk}).
    """

    id: str = ""
    name: str = ""
    group: str = ""
    project: str = ""
    job_type: str = ""
    config: dict = field(default_factory=dict)
    history: dict[int, dict] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    artifacts: list[tuple[str, str, list[str], dict[str, Path]]] = field(default_factory=list)
    exit_code: int | None = None


def read_run(path: Path) -> OfflineRun:
    """The run, config, history, summary, artefacts and exit code of one .wandb file."""
    run = OfflineRun()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.id, run.name, run.group = r.run_id, r.display_name, r.run_group
            run.project, run.job_type = r.project, r.job_type
        elif kind == "config":
            run.config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            row = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json)
                for i in record.history.item
            }
            run.history[int(row["_step"])] = row
        elif kind == "summary":
            for i in record.summary.update:
                run.summary[i.key or ".".join(i.nested_key)] = json.loads(i.value_json)
        elif kind == "artifact":
            a = record.artifact
            files = {c.path: Path(c.local_path) for c in a.manifest.contents}
            run.artifacts.append((a.name, a.type, list(a.aliases), files))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Every offline session under `<wandb_dir>/wandb/`, oldest first."""
    return [read_run(p) for p in sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))]


def csv_history(run_dir: Path, skip: tuple[str, ...] = ()) -> dict[int, dict[str, float]]:
    """The history W&B should hold, from the run's CSV files: step -> {"<category>/<column>":
    number} over every row (a row labelled with a `task` cell: "<category>/<task>/<column>"),
    without the columns in `skip`."""
    history: dict[int, dict[str, float]] = {}
    for path in sorted(run_dir.glob("*.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                label = row.pop("task", "")
                prefix = f"{path.stem}/{label}" if label else path.stem
                cells = {
                    f"{prefix}/{k}": float(v)
                    for k, v in row.items()
                    if k != "step" and k not in skip and v
                }
                history.setdefault(int(row["step"]), {}).update(cells)
    return history
