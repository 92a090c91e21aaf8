"""Stand-ins for the inputs a documented command needs, written under the names it uses when no
earlier command of the same document made them (a clean clone has no data, runs or downloads).

- `.pt` chunks in TD-MPC2's published format (random episodes of the mt30 / mt80 layout) for
  `apps/convert SRC DST`; a converted dataset for `data_dir=` (published_chunks.py).
- A run directory for `resume=true`, `checkpoint=runs/...`: a tiny training of the command's
  backend (online, on the command's task; offline on mt30 / mt80 when the path or the tasks
  call for a task set).
- `checkpoint=<run>/checkpoints/step_N` or `resume_from=step_N` beyond what a tiny run reaches:
  a copy of a tiny run's newest checkpoint (and replay snapshot) under the name `step_N`; the
  counters inside stay the copied run's.
- A published checkpoint `NAME.pt` (format=tdmpc2): the TD-MPC2 state-dict layout at the
  smallest size (model_size=1, which the apps infer from the shapes; TD-MPC2's multi-task
  widths), random weights (test_data_published_checkpoint.py); `mt30-*` / `mt80-*`
  multi-task, any other name single-task on the command's task.
- Run directories for apps/plot: `config.json` and an `eval.csv` of four evaluations.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from budget import OFFLINE, ONLINE, TINY_PLANNER, TINY_WIDTHS

CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.json$")
CHECKPOINT_FILES = ("step_{}.json", "step_{}.safetensors")
REPLAY_FILES = ("replay_step_{}.json", "replay_step_{}.safetensors")


def run_python(workdir: Path, *args: str) -> None:
    """`python args...` in `workdir` with the test's interpreter; fails the test on exit != 0."""
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"stand-in {args}: {done.stderr[-3000:]}"


def task_set(name: str) -> str:
    return "mt80" if "mt80" in name else "mt30"


def pt_chunks(folder: Path, dataset: str) -> None:
    """Two `.pt` chunks of 3 random episodes each in `dataset`'s published layout."""
    from mbdpo_data.layouts import LAYOUTS
    from published_chunks import episodes_arrays, write_chunk

    for i in range(2):
        write_chunk(folder / f"chunk_{i}.pt", episodes_arrays(LAYOUTS[dataset], 3, seed=i))


def dataset(workdir: Path, folder: Path, dataset_name: str) -> None:
    """A converted dataset at `folder` (its `.pt` chunks beside it, in `<folder>-pt.stand-in`)."""
    from mbdpo_data.convert import convert

    source = folder.with_name(folder.name + "-pt.stand-in")
    pt_chunks(source, dataset_name)
    convert(source, folder, dataset=dataset_name, progress=False, log=lambda line: None)


def newest_step(run_dir: Path) -> int | None:
    """The largest N of the `step_N.json` checkpoints of `run_dir` (not `step_N.eval.json`)."""
    names = [p.name for p in (run_dir / "checkpoints").glob("step_*.json")]
    return max((int(m[1]) for m in map(CHECKPOINT_NAME.match, names) if m), default=None)


def loop_step(run_dir: Path, step: int) -> int:
    """The step counter saved in checkpoint `step` of `run_dir`."""
    sidecar = json.loads((run_dir / "checkpoints" / f"step_{step}.json").read_text())
    return int(sidecar["meta"]["loop"]["step"])


def tiny_run(workdir: Path, run_dir: Path, backend: str, task: str) -> None:
    """A tiny training at `run_dir`: offline on a task set, else online on `task`."""
    args = ["apps/train", "--backend", backend, f"run_dir={run_dir}", *TINY_WIDTHS[:4]]
    args += [*TINY_PLANNER, "planner=policy", "batch_size=16"]
    if task in ("mt30", "mt80"):
        data = workdir / "stand-ins" / task
        if not data.exists():
            dataset(workdir, data, task)
        args += ["mode=offline", f"task={task}", f"data_dir={data}", *OFFLINE, "task_dim=8"]
        args.append("eval_tasks=walker-walk")
    else:
        args += [f"task={task}", *ONLINE]
    run_python(workdir, *args)


def copy_checkpoint(source: Path, step: int, target_dir: Path, name_step: int) -> None:
    """Checkpoint `step` of run `source` copied into `target_dir/checkpoints` as
    `step_<name_step>`, with its replay snapshot when both are one run (for resume_from)."""
    src, dst = source / "checkpoints", target_dir / "checkpoints"
    dst.mkdir(parents=True, exist_ok=True)
    for pattern in CHECKPOINT_FILES:
        shutil.copyfile(src / pattern.format(step), dst / pattern.format(name_step))
    if source == target_dir:  # the replay's segments are shared within the run's folder
        for pattern in REPLAY_FILES:
            shutil.copyfile(src / pattern.format(step), src / pattern.format(name_step))


def native_checkpoint(
    workdir: Path, path: str, backend: str, tasks: list[str], needs_set: bool
) -> None:
    """Make `path` (a run directory or `<run>/checkpoints/step_N`) a checkpoint that scores
    `tasks`; `needs_set`: it must be a multi-task one."""
    stem = Path(path)
    named = stem.parent.name == "checkpoints"
    run_dir, step = (
        (workdir / stem.parents[1], int(stem.name[5:])) if named else (workdir / stem, None)
    )
    have = newest_step(run_dir)
    if have is not None and (step is None or step == have):
        return
    source_task = task_set(path) if needs_set else tasks[0]
    if have is None and step is None:
        tiny_run(workdir, run_dir, backend, source_task)
        return
    source = run_dir
    if have is None or needs_set:  # another run's checkpoint under this run's name
        source = workdir / "stand-ins" / f"run-{source_task}"
    if newest_step(source) is None:
        tiny_run(workdir, source, backend, source_task)
    copy_checkpoint(source, newest_step(source), run_dir, step)


def published(workdir: Path, name: str, task: str) -> None:
    """A TD-MPC2-layout `.pt` checkpoint at `workdir/name`, model size 1, random weights."""
    import torch
    from mbdpo_core.config import load_config
    from test_data_published_checkpoint import build, published_state

    keys = [f"task={task}", "preset=cpu", "model_size=1"]
    if name.startswith(("mt30", "mt80")):  # TD-MPC2's multi-task widths
        keys = [f"task={task_set(name)}", "preset=cpu", "model_size=1", "mt30_dims=tdmpc2"]
    model, qs, targets = build(load_config(keys), energy=False)
    torch.save({"model": published_state(model, qs, targets, "nested")}, workdir / name)


def plot_run(run_dir: Path, task: str, backend: str, seed: int) -> None:
    """A run directory as apps/plot reads it: config.json and eval.csv at 4 steps."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"task": task, "backend": backend, "seed": seed, "obs": "state"}
    (run_dir / "config.json").write_text(json.dumps(config))
    with open(run_dir / "eval.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "episode_reward", "episode_success", "episode_length"])
        for step in range(4):
            writer.writerow([step * 1000, 100.0 * step + seed, 0.0, 500])


def plot_inputs(workdir: Path, path: str) -> None:
    """Stand-in run directories for `apps/plot path`: the run itself (a name with a seed) or a
    folder of two runs on two tasks of mt30 (a sweep's)."""
    folder = workdir / path
    if folder.exists():
        return
    if "seed" in folder.name:
        task = folder.parent.name
        backend, seed = folder.name.split("-seed")
        plot_run(folder, task, backend, int(seed))
    else:
        for task in ("walker-walk", "cheetah-run"):
            plot_run(folder / f"{task}-torch-seed1", task, "torch", 1)
