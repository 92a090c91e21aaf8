"""The checkpoint format: a `.safetensors` file of arrays plus a `.json` sidecar. No pickle.

A checkpoint at stem `<path>` is two files:

- `<path>.safetensors`: every array, under the names below.
- `<path>.json`: `{"format": "mbdpo-checkpoint", "format_version": 1, "safetensors": {"file",
  "sha256", "bytes"}, "arrays": [{"name", "shape", "dtype"}, ...], "meta": {...}}`.

Both are written atomically (temporary file in the same directory, flush, fsync, `os.replace`,
fsync of the directory). The JSON is written last, so a checkpoint is complete exactly when its
JSON exists; a stale JSON is removed before its arrays are replaced, so an interrupted overwrite
leaves an incomplete checkpoint rather than a mismatched pair.

The arrays and meta of an agent's state are laid out by mbdpo_core.agent_state (the one home
of that layout); the loops add their own meta (e.g. `loop`). See
docs/design.md#agent-state-and-checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from .errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "read_meta",
    "checkpoint_stem",
    "check_arrays",
    "checkpoint_path",
    "latest_checkpoint",
    "split_prefix",
    "add_prefix",
]

FORMAT_VERSION = 1
_FORMAT = "mbdpo-checkpoint"
_SUFFIXES = (".safetensors", ".json")
_STEP_RE = re.compile(r"^step_(\d+)\.json$")


def _stem(path: str | Path) -> Path:
    """`x`, `x.safetensors` and `x.json` all name the checkpoint stem `x`."""
    path = Path(path)
    for suffix in _SUFFIXES:
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def _files(stem: Path) -> tuple[Path, Path]:
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _save_arrays(tensors: dict[str, np.ndarray], path: Path) -> None:
    """safetensors' writer, with its I/O failures (e.g. a full disk) raised as OSError."""
    try:
        safetensors.numpy.save_file(tensors, path, metadata={"format": _FORMAT})
    except OSError:
        raise
    except Exception as err:  # the Rust writer raises SafetensorError "... (os error 28)"
        code = re.search(r"os error (\d+)", str(err))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from err


def _atomic_write(target: Path, write: Callable[[Path], object]) -> None:
    """Call write(tmp_path), fsync the temporary file and move it onto target."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o644)  # mkstemp creates 0600
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    """Write `<path>.safetensors` and then `<path>.json` atomically.

    Args:
        path: checkpoint stem (a `.safetensors` or `.json` suffix is stripped).
        arrays: name -> numpy array (any numpy dtype safetensors supports).
        meta: JSON-ready metadata (numpy scalars and arrays are converted to Python values).

    Raises:
        CheckpointError: meta is not JSON-serialisable or holds another `format_version`.
    """
    stem = _stem(path)
    tensors_file, json_file = _files(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if meta.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise CheckpointError(
            f"meta['format_version'] = {meta['format_version']!r}, but this writer produces "
            f"format version {FORMAT_VERSION}; drop the key, it is set on load."
        )
    meta = {k: v for k, v in meta.items() if k != "format_version"}
    tensors = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
    try:  # serialise before touching disk, so a bad meta leaves the old checkpoint intact
        json.dumps(meta, default=_json_default)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint meta for {stem} is not JSON-ready: {err}") from err

    if json_file.exists():  # an overwrite must never look complete with mismatched arrays
        json_file.unlink()
        _fsync_dir(stem.parent)
    _atomic_write(tensors_file, lambda tmp: _save_arrays(tensors, tmp))
    sidecar = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "safetensors": {
            "file": tensors_file.name,
            "sha256": _sha256(tensors_file),
            "bytes": tensors_file.stat().st_size,
        },
        "arrays": [
            {"name": name, "shape": list(value.shape), "dtype": value.dtype.name}
            for name, value in tensors.items()
        ],
        "meta": meta,
    }
    text = json.dumps(sidecar, indent=1, default=_json_default)
    _atomic_write(json_file, lambda tmp: tmp.write_text(text))
    _fsync_dir(stem.parent)


def _read_sidecar(json_file: Path, tensors_file: Path) -> dict:
    if not json_file.exists():
        if tensors_file.exists():
            raise CheckpointError(
                f"checkpoint {json_file} is missing but {tensors_file.name} exists: the checkpoint "
                "is incomplete (its write was interrupted); use an older checkpoint."
            )
        raise CheckpointError(f"checkpoint not found: {json_file} does not exist.")
    try:
        sidecar = json.loads(json_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {json_file} is corrupt (invalid JSON: {err})") from err
    if not isinstance(sidecar, dict) or sidecar.get("format") != _FORMAT:
        raise CheckpointError(f"{json_file} is not an mbdpo checkpoint sidecar (no format tag).")
    version = sidecar.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {json_file} has unknown format version {version!r}; this mbdpo-core "
            f"reads version {FORMAT_VERSION}. Upgrade mbdpo-core to read it."
        )
    return sidecar


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by `save_checkpoint` (by either backend).

    Args:
        path: the stem, the `.safetensors` path or the `.json` path.

    Returns:
        (arrays, meta): arrays as written; meta with `format_version` added.

    Raises:
        CheckpointError: a file is missing (named), the arrays are truncated or corrupt (hash or
            parse failure, or they disagree with the JSON list), or the format version is unknown.
    """
    tensors_file, json_file = _files(_stem(path))
    sidecar = _read_sidecar(json_file, tensors_file)
    if not tensors_file.exists():
        raise CheckpointError(
            f"checkpoint arrays {tensors_file} are missing (its sidecar {json_file.name} exists)."
        )
    try:
        expected = sidecar["safetensors"]
        listed = {a["name"]: (tuple(a["shape"]), a["dtype"]) for a in sidecar["arrays"]}
        meta = dict(sidecar["meta"])
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint sidecar {json_file} is malformed: {err!r}") from err
    size = tensors_file.stat().st_size
    if size != expected.get("bytes") or _sha256(tensors_file) != expected.get("sha256"):
        raise CheckpointError(
            f"checkpoint arrays {tensors_file} are truncated or corrupt: {size} bytes (expected "
            f"{expected['bytes']}) or sha256 differs from {json_file.name}."
        )
    try:
        arrays = safetensors.numpy.load_file(tensors_file)
    except Exception as err:  # the Rust parser raises SafetensorError, a bare Exception subclass
        raise CheckpointError(f"checkpoint arrays {tensors_file} cannot be parsed: {err}") from err
    found = {name: (value.shape, value.dtype.name) for name, value in arrays.items()}
    if listed != found:
        raise CheckpointError(
            f"checkpoint arrays {tensors_file} disagree with the list in {json_file.name}."
        )
    meta["format_version"] = sidecar["format_version"]
    return arrays, meta


def read_meta(path: str | Path) -> dict:
    """The meta of a checkpoint, from its JSON alone (the arrays are neither read nor checked).

    Raises:
        CheckpointError: the JSON is missing, corrupt or of an unknown format version.
    """
    tensors_file, json_file = _files(_stem(path))
    meta = _read_sidecar(json_file, tensors_file).get("meta")
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint sidecar {json_file} is malformed: no meta.")
    return meta


def check_arrays(
    expected: Mapping[str, tuple], arrays: Mapping[str, np.ndarray], what: str = "parameters"
) -> None:
    """Raise if `arrays` does not have exactly the names and shapes of `expected`.

    Args:
        expected: name -> shape the agent needs.
        arrays: name -> array from a checkpoint.
        what: what the arrays are, for the message ("parameters", "optimizer state").

    Raises:
        CheckpointError: listing every missing name, unexpected name and shape mismatch, e.g.
            "q.0.weight: checkpoint (5, 518, 512) vs agent (2, 134, 384)".
    """
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    mismatched = [
        f"{name}: checkpoint {tuple(arrays[name].shape)} vs agent {tuple(expected[name])}"
        for name in sorted(set(expected) & set(arrays))
        if tuple(arrays[name].shape) != tuple(expected[name])
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"checkpoint {what} do not match the agent:"]
    if missing:
        lines.append(f"  missing ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        lines.append(f"  unexpected ({len(unexpected)}): {', '.join(unexpected)}")
    if mismatched:
        lines.append(f"  shape mismatches ({len(mismatched)}):")
        lines.extend(f"    {line}" for line in mismatched)
    lines.append(
        "Build the agent with the config the checkpoint was trained with (model_size, tasks, obs)."
    )
    raise CheckpointError("\n".join(lines))


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """The checkpoint stem `<run_dir>/checkpoints/step_<step>`."""
    return Path(run_dir) / "checkpoints" / f"step_{int(step)}"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Stem of the complete checkpoint (its JSON exists) with the largest step, or None."""
    directory = Path(run_dir) / "checkpoints"
    if not directory.is_dir():
        return None
    steps = [int(m.group(1)) for p in directory.iterdir() if (m := _STEP_RE.match(p.name))]
    return checkpoint_path(run_dir, max(steps)) if steps else None


def checkpoint_stem(path: str | Path) -> Path:
    """The checkpoint `path` names: a stem, its .json or .safetensors, or a run directory (its
    newest complete checkpoint).

    Raises:
        CheckpointError: a directory without complete checkpoints.
    """
    path = Path(path)
    if not path.is_dir():
        return _stem(path)
    newest = latest_checkpoint(path)
    if newest is None:
        raise CheckpointError(
            f"checkpoint={path} is a directory without complete checkpoints "
            f"(no {path / 'checkpoints' / 'step_N.json'}); give a run directory or a "
            "checkpoint such as <run>/checkpoints/step_N."
        )
    return newest


def split_prefix(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays whose name starts with prefix, with the prefix removed."""
    return {name[len(prefix) :]: value for name, value in arrays.items() if name.startswith(prefix)}


def add_prefix(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays with prefix prepended to every name."""
    return {prefix + name: value for name, value in arrays.items()}
