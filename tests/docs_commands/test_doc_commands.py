"""Every command of the README and the docs runs as written on a fresh clone (doc_commands.py
says which fences hold commands and how a block splits into commands).

Each distinct command runs once, in the first document that has it, in that document's own
temporary working directory, in document order; the directory links what a clone has and .venv
(docs/images is a copy), so `uv run apps/train` works there, and what a command writes (runs/,
data/, plots/, docs/images/, site/) stays there. `uv run` gets UV_NO_SYNC=1: CI synced the
environment with every extra (`uv sync --locked --all-packages --all-extras`); `uv run` would
sync again before each command (inexactly: it adds what is missing and keeps the rest), so the
command's text stays as written and nothing is re-resolved or re-installed.
A command runs with a small budget appended (budget.py) and with stand-ins for the inputs no
earlier command made (stand_ins.py). Commands that cannot run in CI are in NOT_IN_CI, each with
its reason.
"""

from __future__ import annotations

import csv
import os
import re
import resource
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import stand_ins
from budget import budgeted, keys
from doc_commands import Command, doc_commands

ROOT = Path(__file__).resolve().parents[2]

NOT_IN_CI: dict[str, str] = {
    r"^uv run pytest": "the test suites themselves: CI runs exactly these (.ci/run)",
    r"^uv run mkdocs build --strict$": "CI's own step builds the site so (.ci/run)",
    r"^uv venv \.venv-jax": "a fresh virtual environment with the JAX backend alone: "
    ".ci/install-alone.sh installs the same packages into an empty venv and trains with them",
    r"^pip install \.?/?packages/": "an install into an empty environment: "
    ".ci/install-alone.sh installs each package alone (suite extras included) and imports it",
    r"wget .*huggingface\.co": "downloads the 44 GB mt30 dataset",
    r"launcher=submitit_slurm": "needs a SLURM cluster",
    r"launcher=ray": "needs a running Ray cluster (Ray is not an extra: apps/sweep says why)",
    r"^JAX_COORDINATOR_ADDRESS=": "needs two hosts (jax.distributed across machines)",
}
"""Regular expression over a command's text -> why CI does not run it."""

SLOW = (
    r"^(?:[A-Z_]+=\S+ )*uv run apps/train --backend (?!.* mode=)(?!.* resume=true)",
    r"apps/sweep ",
    r"torchrun ",
    r"data_parallel_devices=",
)
"""Regular expressions of the commands the slow suite runs (`-m slow`): online trainings from
scratch, sweeps, data-parallel runs; the fast suite runs the others
(listings, conversion, plots, offline updates, fine-tuning, resumed runs, evaluation), so that
the two suites, which CI runs side by side, take about the same time."""

COMMANDS = doc_commands(ROOT)
LINE_ONE = re.compile(
    r"^(?:[A-Z_]+=\S+ )*(?:uv run (?:apps/|python |torchrun |mkdocs )|uv sync --extra )"
)
"""The single-line commands CI knows how to run (budget.py shortens those that need it)."""


def listed(command: Command) -> str | None:
    return next((reason for p, reason in NOT_IN_CI.items() if re.search(p, command.text)), None)


def distinct_commands() -> list[Command]:
    """The first occurrence of each command CI runs, in document order."""
    seen: dict[str, Command] = {}
    for command in COMMANDS:
        if listed(command) is None:
            seen.setdefault(command.text, command)
    return list(seen.values())


def param(command: Command):
    slow = any(re.search(p, command.text) for p in SLOW)
    return pytest.param(command, id=command.where, marks=[pytest.mark.slow] if slow else [])


def clone(path: Path) -> Path:
    """`path` as a working directory with what a clone has, and .venv: links to the repository's
    top-level files and folders, except docs/, a folder of links but for a copy of docs/images
    (a command writes an image there)."""
    listing = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(listing, cwd=ROOT, capture_output=True, text=True, check=True)
    top = {line.split("/")[0] for line in files.stdout.splitlines()} | {".venv"}
    for name in sorted(top - {"docs"}):
        (path / name).symlink_to(ROOT / name)
    (path / "docs").mkdir()
    for entry in (ROOT / "docs").iterdir():
        if entry.name == "images":
            shutil.copytree(entry, path / "docs" / "images")
        else:
            (path / "docs" / entry.name).symlink_to(entry)
    return path


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """document -> its working directory (made on first use)."""
    made: dict[str, Path] = {}

    def workdir(document: str) -> Path:
        if document not in made:
            made[document] = clone(tmp_path_factory.mktemp(re.sub(r"\W", "-", document)))
        return made[document]

    return workdir


def prepare(command: Command, workdir: Path) -> int | None:
    """Write the stand-ins `command` needs; the step it resumes from (resume=true), else None."""
    if "\n" in command.text:
        return None
    tokens = shlex.split(command.text)
    given = keys(tokens)
    backend = tokens[tokens.index("--backend") + 1] if "--backend" in tokens else "torch"
    tasks = given.get("task", "cartpole-balance").split()
    at = next((i for i, t in enumerate(tokens) if t.startswith("apps/")), None)
    app = tokens[at].split("/")[1] if at is not None else None
    positional = tokens[at + 1 :] if at is not None else []
    if app == "convert" and not (workdir / positional[0]).exists():
        stand_ins.pt_chunks(workdir / positional[0], stand_ins.task_set(positional[0]))
    if app == "plot":
        values = {tokens[i + 1] for i, t in enumerate(tokens) if t in ("--out", "--xmax")}
        for path in positional:
            if not path.startswith("-") and path not in values:
                stand_ins.plot_inputs(workdir, path)
    if "data_dir" in given and not (workdir / given["data_dir"]).exists():
        stand_ins.dataset(workdir, workdir / given["data_dir"], given["task"])
    checkpoint = given.get("checkpoint")
    if checkpoint and checkpoint.endswith(".pt"):
        if not (workdir / checkpoint).exists():
            stand_ins.published(workdir, checkpoint, tasks[0])
    elif checkpoint:
        needs_set = bool(re.search(r"mt30|mt80", checkpoint)) or len(tasks) > 1
        stand_ins.native_checkpoint(workdir, checkpoint, backend, tasks, needs_set)
    if given.get("resume") != "true":
        return None
    run_dir = workdir / given["run_dir"]
    if stand_ins.newest_step(run_dir) is None:
        stand_ins.tiny_run(workdir, run_dir, backend, tasks[0])
    step = stand_ins.newest_step(run_dir)
    if "resume_from" in given:
        wanted = int(given["resume_from"].removeprefix("step_"))
        if not (run_dir / "checkpoints" / f"step_{wanted}.json").exists():
            stand_ins.copy_checkpoint(run_dir, step, run_dir, wanted)
        step = wanted
    return stand_ins.loop_step(run_dir, step)


def environment(text: str) -> dict[str, str]:
    """The CI environment of a command: no re-sync by `uv run`, one thread, EGL rendering, and
    N host CPU devices for a JAX `data_parallel_devices=N` (standing in for N accelerators)."""
    env = {**os.environ, "UV_NO_SYNC": "1", "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    devices = re.search(r"--backend jax .*data_parallel_devices=(\d+)", text)
    if devices:
        flag = f"--xla_force_host_platform_device_count={devices.group(1)}"
        env["XLA_FLAGS"] = f"{flag} {env.get('XLA_FLAGS', '')}".strip()  # XLA stops at a
        # malformed flag, such as CI's `intra_op_parallelism_threads=1`: this one goes first
    return env


def children_cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes (the cost on a busy machine)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_films(run: Path) -> None:
    """A filmed training run (its budget evaluates at two steps, both filmed): one mp4 per
    evaluation at 384x384 with the reset and every step of the episode whose return was logged,
    and the same episodes as 96x96 GIFs in TensorBoard."""
    import imageio.v2 as imageio
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with open(run / "eval.csv") as f:
        evaluations = list(csv.DictReader(f))
    steps = [int(row["step"]) for row in evaluations]
    assert len(steps) == 2, steps
    assert sorted(p.name for p in (run / "videos").iterdir()) == sorted(
        f"step_{step}.mp4" for step in steps
    )
    for step, row in zip(steps, evaluations, strict=True):
        reader = imageio.get_reader(run / "videos" / f"step_{step}.mp4")
        try:
            frames = np.stack(list(reader.iter_data()))
        finally:
            reader.close()
        assert len(frames) == float(row["episode_length"]) + 1
        assert frames.shape[1:] == (384, 384, 3)
        assert frames[0].std() > 10  # a scene, not a blank image
        assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 0.5  # something moved
    events = EventAccumulator(str(run), size_guidance={"images": 0}).Reload()
    assert events.Tags()["images"] == ["eval/video"]
    images = events.Images("eval/video")
    assert [image.step for image in images] == steps
    for image in images:
        assert image.encoded_image_string[:6] == b"GIF89a"
        assert (image.height, image.width) == (96, 96)


def check_outputs(command: Command, workdir: Path, stdout: str) -> None:
    """What a command wrote, where checking it is cheap."""
    run_dir = re.search(r"^\[mbdpo\] run directory: (.+)$", stdout, re.M)
    if run_dir:
        run = workdir / run_dir.group(1).strip()
        assert (run / "eval.csv").is_file(), "no eval.csv"
        if "video_every=" in command.text:
            check_films(run)
    tokens = shlex.split(command.text) if "\n" not in command.text else []
    if "apps/convert" in tokens:
        dst = tokens[tokens.index("apps/convert") + 2]
        assert (workdir / dst / "manifest.json").is_file(), "no manifest.json"
    if "apps/plot" in tokens:
        out = tokens[tokens.index("--out") + 1] if "--out" in tokens else "plots"
        assert (workdir / out / "curves.png").is_file(), "no curves.png"


def test_every_command_is_run_or_listed():
    unknown = [
        c.where for c in distinct_commands() if "\n" not in c.text and not LINE_ONE.match(c.text)
    ]
    assert not unknown, (
        f"documented commands CI cannot shorten: {unknown}; teach budget.py or add them to "
        "NOT_IN_CI with the reason"
    )


def test_every_table_entry_still_names_a_documented_command():
    stale = [p for p in NOT_IN_CI if not any(re.search(p, c.text) for c in COMMANDS)]
    assert not stale, f"NOT_IN_CI entries that match no documented command: {stale}"


@pytest.mark.parametrize("command", [param(c) for c in distinct_commands()])
def test_documented_command_runs(command: Command, workdirs):
    workdir = workdirs(command.path)
    resume_step = prepare(command, workdir)
    text = budgeted(command.text, resume_step)
    started, cpu = time.perf_counter(), children_cpu_seconds()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", text],
        cwd=workdir,
        env=environment(text),
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu
    print(f"\n{command.where} {seconds:.1f} s wall, {cpu:.1f} s CPU: {text}")
    assert done.returncode == 0, f"{command.where}: {text}\n{done.stderr[-3000:]}"
    check_outputs(command, workdir, done.stdout)
