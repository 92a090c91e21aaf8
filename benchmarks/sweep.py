"""apps/sweep's overhead: a 2 x 2 sweep (2 tasks, 2 seeds, a tiny budget) through each Hydra
launcher against the same 4 `apps/train` runs started by hand with the same parallelism.

By hand: a pool of `--parallel` threads, each running `python apps/train ...` to completion (what
a shell script with `xargs -P` does). Through apps/sweep: `python apps/sweep ...` with
launcher=joblib (`--parallel` at once), submitit_local (every job at once: its local executor has
no bound; compared with the by-hand runs all at once too) and ray (when hydra-ray-launcher is
installed). Each is timed from the command's start to its end, interpreter start-up, planning,
validation and the table included, in a fresh sweep folder; `--reps` rounds alternate the
variants and the table gives the medians and their ratio to by hand.

Usage:
    uv run python benchmarks/sweep.py [--parallel 2] [--reps 1] [--workdir /tmp/mbdpo-sweep-bench]
Time it on a quiet machine: the trainings share its cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = ["mw-reach", "mw-push"]
SEEDS = [1, 2]
RUN = [
    "preset=cpu",
    "mlp_dim=32",
    "enc_dim=32",
    "latent_dim=16",
    "num_q=2",
    "batch_size=16",
    "planner=policy",
    "seed_steps=100",
    "steps=110",
    "eval_freq=0",
    "eval_episodes=1",
    "save_every=0",
]
ENV = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}


def by_hand(folder: Path, parallel: int) -> float:
    """Seconds to run the 4 trainings with `parallel` at once, each a plain apps/train."""

    def train(task_seed: tuple[str, int]) -> None:
        task, seed = task_seed
        run_dir = folder / task / f"torch-seed{seed}"
        command = [sys.executable, str(REPO / "apps/train"), "--backend", "torch", *RUN]
        command += [f"task={task}", f"seed={seed}", f"run_dir={run_dir}"]
        done = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"apps/train {task} seed {seed} failed:\n{done.stderr[-3000:]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(train, [(t, s) for t in TASKS for s in SEEDS]))
    return time.perf_counter() - start


def through_sweep(folder: Path, launcher: str, parallel: int) -> float:
    """Seconds of `apps/sweep` running the same 4 trainings."""
    command = [sys.executable, str(REPO / "apps/sweep"), f"tasks=[{','.join(TASKS)}]"]
    command += ["seeds=[1,2]", f"launcher={launcher}", f"parallel={parallel}"]
    command += [f"sweep_dir={folder}", *RUN]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"apps/sweep launcher={launcher} failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mbdpo-sweep-bench"))
    args = parser.parse_args()
    jobs = len(TASKS) * len(SEEDS)
    variants = {
        f"by hand, {args.parallel} at once": lambda d: by_hand(d, args.parallel),
        f"joblib, {args.parallel} at once": lambda d: through_sweep(d, "joblib", args.parallel),
        f"by hand, {jobs} at once": lambda d: by_hand(d, jobs),
        f"submitit_local, {jobs} at once": lambda d: through_sweep(d, "submitit_local", jobs),
    }
    if find_spec("hydra_plugins.hydra_ray_launcher") is not None:
        variants[f"ray (1 CPU per job), {args.parallel} at once"] = lambda d: through_sweep(
            d, "ray", args.parallel
        )
    baseline = {
        "joblib": f"by hand, {args.parallel} at once",
        "ray": f"by hand, {args.parallel} at once",
        "submitit_local": f"by hand, {jobs} at once",
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(args.reps):
        for i, (name, run) in enumerate(variants.items()):
            folder = args.workdir / f"{rep}-{i}"
            shutil.rmtree(folder, ignore_errors=True)
            times[name].append(run(folder))
            shutil.rmtree(folder, ignore_errors=True)
            print(f"  rep {rep}: {name}: {times[name][-1]:.1f} s", flush=True)
    print(f"\n2 tasks x 2 seeds, {' '.join(RUN[6:])}, torch, {os.cpu_count()} CPUs")
    print(f"{'variant':<36} {'seconds':>8} {'ratio':>7}")
    for name, values in times.items():
        seconds = statistics.median(values)
        launcher = name.split(" ")[0].split(",")[0]
        ratio = (
            seconds / statistics.median(times[baseline[launcher]]) if launcher in baseline else 1
        )
        print(f"{name:<36} {seconds:>8.1f} {ratio:>7.2f}")


if __name__ == "__main__":
    main()
