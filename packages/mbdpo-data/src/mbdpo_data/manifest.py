"""A converted dataset's `manifest.json`: what it holds and how to check it (docs/data.md#manifest).

{"format": "mbdpo-data", "format_version": 1, "dataset": "mt80", "episode_rows": 101,
 "obs_dim": 39, "action_dim": 6, "n_tasks": 80, "complete": bool, "episodes": int,
 "task_range": [low, high],
 "chunks": [{"name": "chunk_0.npz", "source": "chunk_0.pt", "source_bytes": int,
             "source_mtime_ns": int, "bytes": int, "episodes": int, "task_range": [low, high],
             "arrays": {"obs": {"dtype": "float32", "shape": [...], "sha256": hex}, ...}}]}

`complete` turns true when every source chunk is converted; a reader refuses an incomplete one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mbdpo_core.errors import DataFormatError

from .layouts import DatasetLayout

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "fsync_dir",
    "new_manifest",
    "read_manifest",
    "write_manifest",
]

MANIFEST = "manifest.json"
FORMAT = "mbdpo-data"
FORMAT_VERSION = 1


def new_manifest(layout: DatasetLayout) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dataset": layout.name,
        "episode_rows": layout.episode_rows,
        "obs_dim": layout.obs_dim,
        "action_dim": layout.action_dim,
        "n_tasks": layout.n_tasks,
        "complete": False,
        "episodes": 0,
        "task_range": None,
        "chunks": [],
    }


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of folder `root`, or None when it has none; DataFormatError if unreadable."""
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path}: unreadable manifest ({err}).") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise DataFormatError(
            f"{path}: format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}; this reader knows {FORMAT!r} {FORMAT_VERSION}."
        )
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write `root/manifest.json` atomically (temporary file, fsync, rename, fsync folder)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, root / MANIFEST)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(root)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
