"""Run one training per (task, seed) through Hydra's multirun: `uv run apps/sweep key=value ...`.

Tasks: task_set=NAME (mt30, mt80, ...), suite=NAME (dmcontrol, metaworld, maniskill, myosuite)
or tasks=[a,b]; seeds=[1,2,3] (default); backend=torch|jax; launcher=joblib (default, local
processes) | submitit_local | submitit_slurm | ray; parallel=N trainings at once (default 2);
sweep_dir=DIR (default runs/sweep-<task_set|suite|tasks>). Steps: metaworld_steps (2M),
mt30_steps (4M), default_steps (2M), or steps=N for every task. `hydra.*` keys go to Hydra (e.g.
hydra.launcher.partition=gpu); any other key=value goes to every training. With wandb=true each
training is its own W&B run, grouped by the sweep: wandb_group defaults to the sweep_dir's name.
Examples:
    uv run apps/sweep task_set=mt30 seeds=[1,2,3]
    uv run apps/sweep tasks=[walker-walk,cheetah-run] steps=100000 preset=cpu parallel=4
    uv run apps/sweep suite=dmcontrol launcher=submitit_slurm hydra.launcher.partition=gpu
    uv run apps/sweep table runs/sweep-mt30

Each training is `apps/train` in a subprocess with run_dir <sweep_dir>/<task>/<backend>-seed<seed>
and its output in the same path + .log. Rerunning skips finished runs and resumes interrupted
ones. The end writes <sweep_dir>/sweep.csv; `table DIR` rebuilds it from the run directories.
Exit status 1 when a training failed (listed), 2 for a bad argument (nothing started).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import hydra
from mbdpo_core.backends import load_backend
from mbdpo_core.config import parse_overrides
from mbdpo_core.errors import MbdpoError, MissingExtraError
from mbdpo_core.sweep import (
    REMOTE_LAUNCHERS,
    TABLE_FILE,
    SweepSpec,
    check_jobs,
    next_action,
    parse_sweep_args,
    plan_jobs,
    record_exit,
    sweep_table,
    train_overrides,
    write_table,
)
from omegaconf import DictConfig

TRAIN_APP = Path(__file__).resolve().parents[1] / "train"
PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "uv sync --extra sweep"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "uv sync --extra slurm"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "uv sync --extra slurm"),
    "ray": (
        "hydra_plugins.hydra_ray_launcher",
        "uv pip install hydra-ray-launcher 'ray[default]==<your cluster's Ray version>' "
        "(not an extra: see the README)",
    ),
}


def check_plugin(launcher: str) -> None:
    """Raise MissingExtraError when the launcher's Hydra plugin is not installed."""
    module, install = PLUGINS[launcher]
    if find_spec(module) is None:
        raise MissingExtraError(
            f"launcher={launcher} needs the Hydra plugin {module.split('.')[-1]}: {install}."
        )


@hydra.main(version_base="1.3", config_path="conf", config_name="sweep")
def run_job(cfg: DictConfig) -> int:
    """One Hydra job: `apps/train` in a subprocess, its output appended to the job's log; the
    exit status is returned and recorded in the log (mbdpo_core.sweep.record_exit)."""
    entry = json.loads(Path(cfg.manifest).read_text())[cfg.job]
    log = Path(entry["log"])
    command = [sys.executable, str(TRAIN_APP), *entry["args"]]
    with open(log, "a") as f:
        f.write(f"[sweep] {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n")
        f.flush()
        code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT).returncode
    record_exit(log, code)
    return code


def group_wandb_runs(spec: SweepSpec) -> SweepSpec:
    """With wandb=true and no wandb_group: the trainings' W&B group is the sweep_dir's name."""
    keys = ("wandb", "wandb_group")  # other keys are checked per job (check_jobs)
    given = parse_overrides([o for o in spec.overrides if o.split("=")[0].lstrip("+") in keys])
    if not given.get("wandb") or "wandb_group" in given:
        return spec
    group = f"wandb_group='{spec.sweep_dir.absolute().name}'"  # quoted: commas, spaces
    return dataclasses.replace(spec, overrides=[*spec.overrides, group])


def launch(args: list[str]) -> int:
    """Plan, validate, launch the pending jobs, write the table; the exit status."""
    spec = group_wandb_runs(parse_sweep_args(args))
    check_plugin(spec.launcher)
    jobs = plan_jobs(spec)
    actions = [next_action(job) for job in jobs]
    remote = spec.launcher in REMOTE_LAUNCHERS  # its jobs run where the GPUs are
    gpu = remote or load_backend(spec.backend).gpu_available()
    check_jobs(jobs, spec.overrides, actions, gpu_available=gpu)

    pending = [(job, action) for job, action in zip(jobs, actions, strict=True) if action != "skip"]
    counts = {a: actions.count(a) for a in ("skip", "resume", "start")}
    print(
        f"[sweep] {len(jobs)} trainings in {spec.sweep_dir}: {counts['skip']} finished (skipped), "
        f"{counts['resume']} to resume, {counts['start']} to start; launcher={spec.launcher}"
    )
    if pending:
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        state = (spec.sweep_dir / ".sweep" / stamp).resolve()
        state.mkdir(parents=True, exist_ok=True)
        manifest = state / "jobs.json"
        entries = []
        for job, action in pending:
            job.log.parent.mkdir(parents=True, exist_ok=True)
            train_args = ["--backend", job.backend, *train_overrides(job, spec.overrides, action)]
            entries.append({"args": train_args, "log": str(job.log.resolve())})
        manifest.write_text(json.dumps(entries, indent=1) + "\n")
        hydra_args = [
            "--multirun",
            f"launcher={spec.launcher}",
            f"parallel={spec.parallel}",
            f"manifest='{manifest}'",  # quoted: a path may hold spaces or commas
            f"job={','.join(str(i) for i in range(len(entries)))}",
            f"hydra.sweep.dir='{state}'",
            *spec.hydra,
        ]
        sys.argv = [sys.argv[0], *hydra_args]
        run_job()

    rows = sweep_table(spec.sweep_dir)
    write_table(spec.sweep_dir, rows)
    ours = {(job.task, job.seed) for job in jobs}
    failed = [
        r
        for r in rows
        if (r["task"], r["seed"]) in ours
        and r["backend"] == spec.backend
        and r["status"] != "finished"
    ]
    print(f"[sweep] table: {spec.sweep_dir / TABLE_FILE}")
    for r in failed:
        print(
            f"[sweep] {r['status']}: {r['task']} seed {r['seed']} at step {r['step']}, "
            f"log {spec.sweep_dir / r['log']}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    try:
        if args[:1] == ["table"]:
            if len(args) != 2:
                print("usage: apps/sweep table SWEEP_DIR", file=sys.stderr)
                return 2
            path = write_table(args[1], sweep_table(args[1]))
            print(path.read_text(), end="")
            return 0
        return launch(args)
    except MbdpoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
