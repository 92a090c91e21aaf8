"""What `apps/plot` reads: run directories, sweep directories and folders of runs, each turned
into one `Series` per (task, seed) of its eval.csv (docs/design.md#plots).

Every path is checked before anything is drawn or written; a bad one is a ConfigError naming it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from curves import Series, plot_score
from mbdpo_core import tasks as task_registry
from mbdpo_core.errors import ConfigError, MbdpoError
from mbdpo_core.scores import normalised_score
from mbdpo_core.sweep import TABLE_FILE

CONFIG_FILE = "config.json"
EVAL_FILE = "eval.csv"


def run_label(backend: str, obs: str) -> str:
    """The legend text of a run's curve without its seed count, e.g. "mbdpo torch"."""
    return f"mbdpo {backend}" + ("" if obs == "state" else f" {obs}")


def read_run(run_dir: Path) -> tuple[list[Series], str]:
    """The series of one run directory (one per task of its eval.csv) and its obs ("state" or
    "rgb"), from config.json (task, backend, seed, obs) and eval.csv (step, episode_reward,
    episode_success; a multi-task run's rows also name their `task`).

    Raises:
        ConfigError: no eval.csv, an unreadable config.json or eval.csv, an unknown task.
    """
    eval_file = run_dir / EVAL_FILE
    if not eval_file.is_file():
        raise ConfigError(f"{run_dir} is a run directory without {EVAL_FILE} (not evaluated yet).")
    try:
        cfg = json.loads((run_dir / CONFIG_FILE).read_text())
        backend, seed, obs = str(cfg["backend"]), int(cfg["seed"]), str(cfg.get("obs", "state"))
        with open(eval_file, newline="") as f:
            rows = list(csv.DictReader(f))
        by_task: dict[str, list[tuple[int, float, float]]] = {}
        for r in rows:
            task = r.get("task") or str(cfg["task"])
            success = float(r.get("episode_success") or 0.0)
            by_task.setdefault(task, []).append(
                (int(float(r["step"])), float(r["episode_reward"]), success)
            )
        label = run_label(backend, obs)
        series = [_series(task, seed, label, points) for task, points in by_task.items()]
    except MbdpoError as err:
        raise ConfigError(f"{run_dir}: {err}") from None
    except (ValueError, KeyError, TypeError) as err:
        what = f"missing {err}" if isinstance(err, KeyError) else str(err)
        raise ConfigError(
            f"{run_dir}: cannot read {CONFIG_FILE} + {EVAL_FILE} ({what}); expected a run "
            "directory of apps/train."
        ) from None
    if not series:
        raise ConfigError(f"{eval_file} has no rows (not evaluated yet).")
    return series, obs


def _series(task: str, seed: int, label: str, points: list[tuple[int, float, float]]) -> Series:
    task_registry.get(task)
    points.sort()
    steps = np.array([p[0] for p in points])
    score = np.array([plot_score(task, p[1], p[2]) for p in points])
    normalised = np.array([normalised_score(task, p[1], p[2]) for p in points])
    return Series(task, seed, label, steps, score, normalised)


def sweep_runs(sweep_dir: Path) -> tuple[list[Path], list[Path]]:
    """The run directories listed in `<sweep_dir>/sweep.csv` that have an eval.csv, and those
    without one (a job that failed or has not evaluated yet)."""
    with open(sweep_dir / TABLE_FILE, newline="") as f:
        listed = [sweep_dir / r["run_dir"] for r in csv.DictReader(f) if r.get("run_dir")]
    ready = [p for p in listed if (p / EVAL_FILE).is_file()]
    return ready, [p for p in listed if p not in ready]


def find_runs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Run directories from the given paths (a run directory, a sweep directory with sweep.csv,
    or a folder whose subfolders are run directories), in order without repeats; and the
    sweeps' runs skipped for want of an eval.csv.

    Raises:
        ConfigError: a path that is none of these.
    """
    runs: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        missing: list[Path] = []
        if (path / CONFIG_FILE).is_file():
            found = [path]
        elif (path / TABLE_FILE).is_file():
            found, missing = sweep_runs(path)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if (p / CONFIG_FILE).is_file())
        else:
            found = []
        if not found and not missing:
            raise ConfigError(
                f"{path} is not a run directory (config.json + eval.csv), a sweep directory "
                "(sweep.csv) or a folder of run directories."
            )
        runs += [p for p in found if p not in runs]
        skipped += missing
    return runs, skipped
