"""Run directories: where a run writes its outputs, and its saved config."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .config import Config, config_from_dict, config_to_dict
from .errors import ConfigError

CONFIG_FILE = "config.json"
RESUMABLE = ("run_dir", "resume", "steps", "eval_freq", "eval_episodes", "save_every", "device")
"""Keys that may differ between a run and its resumption."""


def default_run_dir(cfg: Config, root: str | Path = "runs") -> Path:
    """runs/<task>/<backend>-seed<seed>-<timestamp>."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / cfg.task / f"{cfg.backend}-seed{cfg.seed}-{stamp}"


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

    Raises ConfigError when an explicit override contradicts the saved run.
    """
    import dataclasses

    saved = read_config(run_dir)
    changed = {}
    for key, value in explicit.items():
        if key in RESUMABLE:
            changed[key] = getattr(requested, key)
        elif getattr(saved, key) != getattr(requested, key):
            raise ConfigError(
                f"Cannot resume {run_dir} with {key}={value!r}: the run was started with "
                f"{key}={getattr(saved, key)!r}. Only {', '.join(RESUMABLE)} may change."
            )
    return dataclasses.replace(saved, **changed)
