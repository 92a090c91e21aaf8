"""Run directories: where a run writes its outputs, checked before anything is written, locked
while a process uses it, with its saved config and its history (docs/design.md#run-directories).

A run directory belongs to one run: a new run refuses a directory that is not empty, and only
`resume=true` continues what is there. `<run_dir>/history.jsonl` gets one line per session
(start or resume, step, backend, command line) and one when it ends (finished, stopped, failed).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .config import Config, config_from_dict, config_to_dict
from .config.validate import WANDB_KEYS
from .errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "HISTORY_FILE",
    "RESUMABLE",
    "default_run_dir",
    "check_run_dir",
    "write_config",
    "read_config",
    "resume_config",
    "RunLock",
    "record",
]

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
RESUMABLE = (
    "run_dir",
    "resume",
    "resume_from",
    "allow_backend_switch",
    "steps",
    "eval_freq",
    "eval_episodes",
    "save_every",
    "keep_checkpoints",
    "device",
    "video_every",
    *WANDB_KEYS,
)
"""Keys that may differ between a run and its resumption."""


def default_run_dir(cfg: Config, root: str | Path = "runs") -> Path:
    """runs/<task>/<backend>-seed<seed>-<timestamp>."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / cfg.task / f"{cfg.backend}-seed{cfg.seed}-{stamp}"


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse, before anything is written, a run_dir the run cannot use.

    Raises ConfigError: run_dir (or a parent) is a file, cannot be written, is not empty for a
    new run, or is not a run directory for `resume=true`.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir={run_dir} is a file, not a directory; give a directory path.")
    ancestor = run_dir
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"run_dir={run_dir} cannot be created: {ancestor} is a file.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(
            f"run_dir={run_dir} cannot be written: {ancestor} is not writable by this user "
            "(or is on a read-only filesystem); choose another run_dir."
        )
    if resume:
        read_config(run_dir)
    elif run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        what = "a run (config.json)" if (run_dir / CONFIG_FILE).exists() else "files"
        raise ConfigError(
            f"run_dir={run_dir} is not empty: it holds {what}. Continue that run with "
            f"resume=true run_dir={run_dir}, or give another run_dir (or none, for a new "
            "folder under runs/). Nothing was written."
        )


def write_config(run_dir: Path, cfg: Config) -> None:
    """Write the resolved config as JSON (atomically)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{CONFIG_FILE}.tmp"
    tmp.write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")
    os.replace(tmp, run_dir / CONFIG_FILE)


def read_config(run_dir: Path) -> Config:
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"resume=true but {path} does not exist: not a run directory.")
    try:
        return config_from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path} is not a valid run config: {err}") from None


def resume_config(run_dir: Path, requested: Config, explicit: dict[str, Any]) -> Config:
    """The saved config of run_dir, with the explicitly given resumable keys applied.

    The backend is part of a run's identity: another backend than the saved one is refused
    unless `allow_backend_switch=true`, and then noted (the continuation is not bit-exact).

    Raises ConfigError when an explicit override contradicts the saved run.
    """
    saved = read_config(run_dir)
    changed: dict[str, Any] = {}
    for key, value in explicit.items():
        if key in RESUMABLE:
            changed[key] = getattr(requested, key)
        elif getattr(saved, key) != getattr(requested, key):
            raise ConfigError(
                f"Cannot resume {run_dir} with {key}={value!r}: the run was started with "
                f"{key}={getattr(saved, key)!r}. Only {', '.join(RESUMABLE)} may change."
            )
    notes = list(requested.notes)
    if requested.backend != saved.backend:
        if not requested.allow_backend_switch:
            raise ConfigError(
                f"{run_dir} is a {saved.backend} run: resume it with --backend {saved.backend}, "
                f"or pass allow_backend_switch=true to continue it with {requested.backend} "
                "(from the same checkpoint, but not bit-exact: the backends draw other random "
                "numbers and round differently)."
            )
        changed["backend"] = requested.backend
        notes.append(
            f"Backend switch: this {saved.backend} run continues with {requested.backend}, "
            f"from the same checkpoint but not bit-exactly; recorded in {HISTORY_FILE}."
        )
    changed.update(resume=True, notes=tuple(notes))
    return dataclasses.replace(saved, **changed)


class RunLock:
    """An exclusive lock on a run directory for as long as the process holds it.

    Raises ConfigError when another process holds it (two processes never write one run).
    """

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "?"
            self._file.close()
            raise ConfigError(
                f"run_dir={run_dir} is in use by another process (pid {holder}); wait for it "
                "to finish or stop it, or give another run_dir."
            ) from None
        self._file.truncate(0)
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        self._file.close()  # closing drops the flock


def record(run_dir: Path, event: str, **fields: Any) -> None:
    """Append one line to `<run_dir>/history.jsonl`: time, event and fields; a "start" or
    "resume" line also names the host, the process and its command line."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **fields}
    if event in ("start", "resume"):
        line.update(host=socket.gethostname(), pid=os.getpid(), argv=sys.argv)
    with open(run_dir / HISTORY_FILE, "a") as f:
        f.write(json.dumps(line) + "\n")
