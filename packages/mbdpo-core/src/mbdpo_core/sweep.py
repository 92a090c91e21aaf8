"""Sweeps: one training per (task, seed), each in its own run directory under the sweep folder,
what a rerun does with each, and the table merged from the run directories (docs/design.md#sweeps).

The launcher (Hydra's joblib, submitit, Ray) lives in apps/sweep; this module only plans jobs and
reads files. Job layout under `sweep_dir`: `<task>/<backend>-seed<seed>/` (the run directory of
`apps/train`) and `<task>/<backend>-seed<seed>.log` (its console output, one section per attempt,
each ending with `EXIT_PREFIX <code>`).
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tasks as task_registry
from .checkpoint import checkpoint_path, read_meta
from .config import load_config, parse_overrides
from .errors import ConfigError, MbdpoError, suggest
from .loops.checkpointing import checkpoint_steps
from .rundir import CONFIG_FILE, HISTORY_FILE, resume_config
from .scores import normalised_score

__all__ = [
    "BUDGETS",
    "LAUNCHERS",
    "REMOTE_LAUNCHERS",
    "SET_BY_SWEEP",
    "SUITES",
    "SWEEP_KEYS",
    "TABLE_COLUMNS",
    "TABLE_FILE",
    "EXIT_PREFIX",
    "Job",
    "SweepSpec",
    "parse_sweep_args",
    "plan_jobs",
    "step_budget",
    "next_action",
    "train_overrides",
    "check_jobs",
    "record_exit",
    "last_exit",
    "job_row",
    "sweep_table",
    "write_table",
]

LAUNCHERS = ("joblib", "submitit_local", "submitit_slurm", "ray")
"""Hydra launcher plugins apps/sweep can use (its config group `launcher`)."""
REMOTE_LAUNCHERS = ("submitit_slurm", "ray")
"""Launchers whose jobs run on other machines (their GPUs are not this machine's)."""
BUDGETS = {"metaworld_steps": 2_000_000, "mt30_steps": 4_000_000, "default_steps": 2_000_000}
"""Steps per task of the published launcher: `mw-*` tasks, mt30 tasks, any other task."""
SWEEP_KEYS = (
    "task_set",
    "suite",
    "tasks",
    "seeds",
    "backend",
    "launcher",
    "parallel",
    "sweep_dir",
    "steps",
    *BUDGETS,
)
"""Keys of the sweep itself; `hydra.*` keys go to Hydra, any other key to every training."""
SET_BY_SWEEP = ("task", "seed", "run_dir", "resume", "resume_from")
"""Training keys the sweep sets per job, refused as overrides."""
SUITES = ("dmcontrol", "metaworld", "maniskill", "myosuite")
TABLE_FILE = "sweep.csv"
TABLE_COLUMNS = (
    "task",
    "seed",
    "backend",
    "status",
    "step",
    "steps",
    "eval_step",
    "episode_reward",
    "episode_success",
    "normalised_score",
    "run_dir",
    "log",
)
EXIT_PREFIX = "[sweep] exit code"
_JOB_NAME = re.compile(r"^(?P<backend>[a-z]+)-seed(?P<seed>\d+)(?P<log>\.log)?$")


@dataclass(frozen=True)
class Job:
    """One training of a sweep.

    Attributes:
        task: the task name; seed: its seed; backend: "torch" | "jax".
        steps: environment steps to train for.
        run_dir: `<sweep_dir>/<task>/<backend>-seed<seed>`; log: the same path + ".log".
    """

    task: str
    seed: int
    backend: str
    steps: int
    run_dir: Path
    log: Path


@dataclass(frozen=True)
class SweepSpec:
    """A parsed `apps/sweep` command line.

    Attributes:
        tasks: the tasks, in order; seeds: the seeds; backend, launcher, parallel (trainings
        at once), sweep_dir: as given; steps: `steps=N` for every task or None; budgets: the
        per-suite steps (BUDGETS keys); overrides: `key=value` for every training; hydra:
        `hydra.*` overrides for the launcher.
    """

    tasks: list[str]
    seeds: list[int]
    backend: str = "torch"
    launcher: str = "joblib"
    parallel: int = 2
    sweep_dir: Path = Path("runs/sweep")
    steps: int | None = None
    budgets: dict[str, int] = field(default_factory=lambda: dict(BUDGETS))
    overrides: list[str] = field(default_factory=list)
    hydra: list[str] = field(default_factory=list)


def _parse_value(text: str) -> Any:
    """The value of `key=value` by Hydra's grammar; `a,b` and `[a,b]` give a list."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        (override,) = OverridesParser.create().parse_overrides([text])
    except HydraException as err:
        raise ConfigError(f"Cannot parse {text!r}: {err}") from None
    if override.is_sweep_override():
        return list(override.sweep_iterator())
    return override.value()


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"Invalid {key}={value!r}: must be an integer >= {minimum}.")
    return value


def _select_tasks(given: dict[str, Any]) -> list[str]:
    chosen = [k for k in ("task_set", "suite", "tasks") if k in given]
    if len(chosen) != 1:
        what = f"got {', '.join(chosen)}" if chosen else "got none"
        raise ConfigError(
            f"Give exactly one of task_set=NAME ({', '.join(task_registry.TASK_SETS)}), "
            f"suite=NAME ({', '.join(SUITES)}) or tasks=[a,b]; {what}."
        )
    key = chosen[0]
    value = given[key]
    if key == "task_set":
        if value not in task_registry.TASK_SETS:
            raise ConfigError(
                f"Unknown task_set={value!r}.{suggest(str(value), task_registry.TASK_SETS)} "
                f"Valid: {', '.join(task_registry.TASK_SETS)}."
            )
        return list(task_registry.TASK_SETS[value])
    if key == "suite":
        if value not in SUITES:
            raise ConfigError(
                f"Unknown suite={value!r}.{suggest(str(value), SUITES)} Valid: {', '.join(SUITES)}."
            )
        return list(task_registry.TASK_SETS[value])
    names = [str(t) for t in _as_list(value)]
    for name in names:
        task_registry.get(name)
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"Invalid tasks={value!r}: give one or more distinct tasks.")
    return names


def parse_sweep_args(args: list[str]) -> SweepSpec:
    """Parse `key=value` arguments of `apps/sweep` (SWEEP_KEYS, `hydra.*`, training keys).

    Raises:
        ConfigError: a malformed argument, an unknown task, set, suite, launcher or backend, bad
            seeds or steps, or a training key the sweep sets itself (SET_BY_SWEEP).
    """
    given: dict[str, Any] = {}
    overrides: list[str] = []
    hydra: list[str] = []
    for text in args:
        key = text.split("=", 1)[0].lstrip("+~")
        if "=" not in text:
            raise ConfigError(f"Argument {text!r} is not of the form key=value.")
        if key.startswith(("hydra.", "hydra/")):
            hydra.append(text)
        elif key in SWEEP_KEYS:
            given[key] = _parse_value(text)
        elif key in SET_BY_SWEEP:
            raise ConfigError(
                f"{text!r}: the sweep sets {key} for each training; choose tasks with task_set=, "
                "suite= or tasks=[...], seeds with seeds=[...] and the folder with sweep_dir=."
            )
        else:
            overrides.append(text)
    tasks = _select_tasks(given)
    seeds = [_int("seeds", s, 0) for s in _as_list(given.get("seeds", [1, 2, 3]))]
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ConfigError(f"Invalid seeds={given['seeds']!r}: give one or more distinct seeds.")
    backend = given.get("backend", "torch")
    if backend not in ("torch", "jax"):
        raise ConfigError(f"Invalid backend={backend!r}. Valid: torch, jax.")
    launcher = given.get("launcher", "joblib")
    if launcher not in LAUNCHERS:
        raise ConfigError(
            f"Invalid launcher={launcher!r}.{suggest(str(launcher), LAUNCHERS)} "
            f"Valid: {', '.join(LAUNCHERS)}."
        )
    default_dir = f"runs/sweep-{given.get('task_set') or given.get('suite') or 'tasks'}"
    if not isinstance(given.get("sweep_dir", default_dir), str):
        raise ConfigError(
            f"Invalid sweep_dir={given['sweep_dir']!r}: give one folder; quote a path with "
            "commas or spaces: 'sweep_dir=\"PATH\"'."
        )
    return SweepSpec(
        tasks=tasks,
        seeds=seeds,
        backend=backend,
        launcher=launcher,
        parallel=_int("parallel", given.get("parallel", 2), 1),
        sweep_dir=Path(given.get("sweep_dir", default_dir)),
        steps=_int("steps", given["steps"], 1) if "steps" in given else None,
        budgets={k: _int(k, given.get(k, v), 1) for k, v in BUDGETS.items()},
        overrides=overrides,
        hydra=hydra,
    )


def step_budget(task: str, budgets: dict[str, int] = BUDGETS) -> int:
    """Steps of `task` by the published launcher's rule: `mw-*` -> metaworld_steps, an mt30
    task -> mt30_steps, any other -> default_steps."""
    if task.startswith("mw-"):
        return budgets["metaworld_steps"]
    if task in task_registry.TASK_SETS["mt30"]:
        return budgets["mt30_steps"]
    return budgets["default_steps"]


def plan_jobs(spec: SweepSpec) -> list[Job]:
    """Every (task, seed) of the sweep, task-major, with its steps and files (absolute paths:
    a launcher's worker may start in another folder)."""
    jobs = []
    for task in spec.tasks:
        steps = spec.steps or step_budget(task, spec.budgets)
        for seed in spec.seeds:
            run_dir = spec.sweep_dir.absolute() / task / f"{spec.backend}-seed{seed}"
            log = run_dir.with_name(run_dir.name + ".log")
            jobs.append(Job(task, seed, spec.backend, steps, run_dir, log))
    return jobs


def _newest_meta(run_dir: Path) -> dict[str, Any] | None:
    steps = checkpoint_steps(run_dir) if run_dir.is_dir() else []
    return read_meta(checkpoint_path(run_dir, steps[-1])) if steps else None


def _finished(meta: dict[str, Any] | None, steps: int) -> bool:
    """The newest checkpoint is the end of a run of `steps` (docs/design.md#loops): its step
    reached, the updates paid and the final evaluation done at that step."""
    if meta is None:
        return False
    loop = meta.get("loop", {})
    step = loop.get("step", 0)
    evaluated = (meta.get("last_eval") or {}).get("step")
    return step >= steps and not loop.get("updates_due") and evaluated == step


def next_action(job: Job) -> str:
    """What a (re)run of the sweep does with `job`: "skip" (finished), "resume" (it has a
    complete checkpoint) or "start" (anything else; apps/train refuses a path it cannot use)."""
    meta = _newest_meta(job.run_dir)
    if _finished(meta, job.steps):
        return "skip"
    return "resume" if meta is not None else "start"


def train_overrides(job: Job, overrides: list[str], action: str) -> list[str]:
    """The `apps/train` arguments of `job` (after `--backend`)."""
    where = f"run_dir='{job.run_dir}'"  # quoted: a path may hold commas or spaces
    mine = [f"task={job.task}", f"seed={job.seed}", f"steps={job.steps}", where]
    return [*overrides, *mine, *(["resume=true"] if action == "resume" else [])]


def check_jobs(
    jobs: list[Job], overrides: list[str], actions: list[str], gpu_available: bool
) -> None:
    """Validate every job's training config as apps/train will, before any job starts.

    Raises:
        ConfigError: a bad key or value (`load_config`), or a resumed run whose saved config
            contradicts an override (`resume_config`); the message names the job.
    """
    for job, action in zip(jobs, actions, strict=True):
        if action == "skip":
            continue
        try:
            args = train_overrides(job, overrides, action)
            explicit = parse_overrides(args)
            cfg = load_config(explicit, gpu_available=gpu_available, backend=job.backend)
            if cfg.mode == "offline":
                raise ConfigError(
                    "mode=offline trains one model on a task set; a sweep trains one task per "
                    "job (mode=online or mode=finetune)."
                )
            if action == "resume":
                resume_config(job.run_dir, cfg, explicit)
        except MbdpoError as err:
            raise ConfigError(f"{job.task} seed {job.seed}: {err}") from None


def record_exit(log: Path, code: int) -> None:
    """Append the exit status of a training to its log."""
    with open(log, "a") as f:
        f.write(f"\n{EXIT_PREFIX} {code}\n")


def last_exit(log: Path) -> int | None:
    """The exit status of the last finished attempt in `log`, or None (no attempt ended)."""
    if not log.is_file():
        return None
    codes = [
        line.removeprefix(EXIT_PREFIX).strip()
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith(EXIT_PREFIX)
    ]
    return int(codes[-1]) if codes else None


def _last_event(run_dir: Path) -> str | None:
    path = run_dir / HISTORY_FILE
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    return json.loads(lines[-1]).get("event") if lines else None


def _last_eval_row(run_dir: Path) -> dict[str, str]:
    path = run_dir / "eval.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else {}


def job_row(sweep_dir: Path, task: str, backend: str, seed: int) -> dict[str, Any]:
    """One row of the table, from the job's run directory and log alone.

    status: "finished" (the newest checkpoint ends a run of config.json's steps), "failed"
    (the last attempt exited non-zero, or history.jsonl ends with "failed"), else "interrupted"
    (stopped, killed, or still running). step: of the newest complete checkpoint (0 without
    one); eval_step, episode_reward, episode_success: the last eval.csv row; normalised_score:
    `mbdpo_core.scores.normalised_score` of that row (blank for an unregistered task).
    """
    run_dir = sweep_dir / task / f"{backend}-seed{seed}"
    log = run_dir.with_name(run_dir.name + ".log")
    is_run = run_dir.is_dir() and (run_dir / CONFIG_FILE).is_file()
    steps = json.loads((run_dir / CONFIG_FILE).read_text()).get("steps") if is_run else None
    try:
        meta = _newest_meta(run_dir) if is_run else None
    except MbdpoError:  # a corrupt newest checkpoint: apps/train's resume will say which
        meta = None
    exit_code = last_exit(log)
    if steps is not None and _finished(meta, steps):
        status = "finished"
    elif (exit_code or 0) != 0 or (is_run and _last_event(run_dir) == "failed"):
        status = "failed"
    else:
        status = "interrupted"
    last = _last_eval_row(run_dir) if is_run else {}
    score = ""
    if last and task in task_registry.TASKS:
        score = normalised_score(
            task, float(last["episode_reward"]), float(last.get("episode_success") or 0.0)
        )
    return {
        "task": task,
        "seed": seed,
        "backend": backend,
        "status": status,
        "step": meta["loop"]["step"] if meta else 0,
        "steps": steps if steps is not None else "",
        "eval_step": last.get("step", ""),
        "episode_reward": last.get("episode_reward", ""),
        "episode_success": last.get("episode_success", ""),
        "normalised_score": score,
        "run_dir": str(run_dir.relative_to(sweep_dir)),
        "log": str(log.relative_to(sweep_dir)) if log.is_file() else "",
    }


def sweep_table(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of every job found under `sweep_dir` (a `<task>/<backend>-seed<seed>` run
    directory or its `.log`), sorted by task, backend and seed.

    Raises:
        ConfigError: `sweep_dir` is not a directory.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ConfigError(f"sweep_dir={sweep_dir} is not a directory (no sweep ran there).")
    found = set()
    for task_dir in sweep_dir.iterdir():
        if task_dir.is_dir() and not task_dir.name.startswith("."):
            for entry in task_dir.iterdir():
                if m := _JOB_NAME.match(entry.name):
                    found.add((task_dir.name, m["backend"], int(m["seed"])))
    return [job_row(sweep_dir, *key) for key in sorted(found)]


def write_table(sweep_dir: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write `rows` to `<sweep_dir>/sweep.csv` atomically (temporary file, fsync, rename)."""
    path = Path(sweep_dir) / TABLE_FILE
    tmp = path.with_name(f".{TABLE_FILE}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
