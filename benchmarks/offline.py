"""Offline (multi-task) training figures: does it learn, and how fast does it run.

`learning`: a short `apps/train mode=offline task=mt30` run on generated mt30 chunks whose
reward is a known function of the observation before the action and the action,
r = 1 - mean_i (a_i - tanh(o_i))^2 over the task's own action dims (obs and actions zero-padded
beyond the task's widths, as published). Reports the reward and value losses of the first and
last `--window` updates (train.csv rows), then on held-out episodes (another seed): for each
of `--states` states and K = `--candidates` random actions, the true reward against the trained
model's predicted reward and mean Q (the numpy oracle `mbdpo_core.reference.model` on the final
checkpoint): Spearman correlation over the K actions (mean over states) and top-1 accuracy
against chance 1/K. The next observation does not depend on the action, so Q ranks as r does.

`speed`: on a converted mt80-shaped dataset of `--episodes` episodes, updates/s fed by a
prefetching `DatasetSampler` against updates/s on one batch held in memory (model size 1 and 5,
batch 256 and 1024, per backend); the peak RSS of an `apps/train mode=offline task=mt80` run
against the dataset and model sizes; the wall time of evaluating 10 mt30 tasks (1 episode each,
model size 1) with 1 and 2 workers. The float32 1024x1024 matmul GFLOP/s of this process
(benchmarks/speed.py) is printed beside.

Usage:
    uv run python benchmarks/offline.py [--json out.json] learning --backend torch|jax
    uv run python benchmarks/offline.py [--json out.json] speed [--backend torch jax] [--quick]
Torch and XLA run one intra-op thread here and in apps/train (the sampler's prefetch thread
and the evaluation workers are more): time on a quiet machine with at least 2 free cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "packages/mbdpo-data/tests"))

from speed import matmul_gflops  # noqa: E402

_SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

LEARNING = (
    "task=mt30 mode=offline preset=cpu planner=policy eval_freq=0 eval_episodes=1 "
    "eval_tasks=cartpole-balance eval_workers=1 save_every=0"
).split()
"""apps/train overrides of the learning run (model size 1 of the CPU preset, batch 64); the one
evaluation at the end is a single cheap episode: the figures come from held-out data."""


def task_widths(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(obs widths [M], action widths [M]) of the tasks of mt30/mt80, in task-id order."""
    from mbdpo_core.tasks import TASK_SETS, get

    specs = [get(name) for name in TASK_SETS[dataset]]
    return np.array([s.obs_dim for s in specs]), np.array([s.action_dim for s in specs])


def known_reward(obs: np.ndarray, action: np.ndarray, action_dim: np.ndarray) -> np.ndarray:
    """1 - mean over the first action_dim dims of (action - tanh(obs))^2.

    Shapes: obs [..., O] (O >= A), action [..., A], action_dim [...] int -> [...].
    """
    A = action.shape[-1]
    used = np.arange(A) < action_dim[..., None]
    error = np.where(used, (action - np.tanh(obs[..., :A])) ** 2, 0.0)
    return 1.0 - error.sum(-1) / action_dim


def reward_episodes(dataset: str, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Random episodes of `dataset`'s layout, zero-padded per task, rewarded by known_reward.

    Shapes: obs [N, T, O], action [N, T, A], reward [N, T] (row 0 NaN), task [N, T].
    """
    from mbdpo_data.layouts import LAYOUTS
    from published_chunks import episodes_arrays

    layout = LAYOUTS[dataset]
    arrays = episodes_arrays(layout, episodes, seed)
    obs_dims, action_dims = task_widths(dataset)
    task = arrays["task"][:, 0]
    arrays["obs"] *= np.arange(layout.obs_dim) < obs_dims[task][:, None, None]
    action = arrays["action"][:, 1:]  # a view: row 0 stays NaN
    action *= np.arange(layout.action_dim) < action_dims[task][:, None, None]
    rewards = known_reward(arrays["obs"][:, :-1], action, action_dims[task][:, None])
    arrays["reward"][:, 1:] = rewards.astype(np.float32)
    return arrays


def write_dataset(root: Path, dataset: str, episodes: int, seed: int) -> Path:
    """Write one `.pt` chunk of reward_episodes under root/pt, convert it to root/npz."""
    from mbdpo_data.convert import convert
    from published_chunks import write_chunk

    write_chunk(root / "pt" / "chunk_0.pt", reward_episodes(dataset, episodes, seed))
    convert(root / "pt", root / "npz", progress=False, log=lambda line: None)
    return root / "npz"


_PEAK_RSS = """
import runpy, sys
app, out = sys.argv[1], sys.argv[2]
sys.argv = [app, *sys.argv[3:]]
try:
    runpy.run_path(app, run_name="__main__")
finally:  # VmHWM of this process's own memory: a child's ru_maxrss can count its parent's
    open(out, "w").write(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


def run_app(app: str, args: list[str], log: Path) -> tuple[float, int]:
    """Run apps/<app> with `args` (output to `log`); (wall seconds, its peak RSS in bytes).
    Raises RuntimeError with the log's end when it fails."""
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    peak = log.with_suffix(".peak")
    command = [sys.executable, "-c", _PEAK_RSS, str(REPO / "apps" / app), str(peak), *args]
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(command, stdout=out, stderr=out, env=env)
    if done.returncode:
        raise RuntimeError(f"apps/{app} failed ({done.returncode}):\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start, int(peak.read_text()) * 1024


def loss_windows(run_dir: Path) -> dict[str, dict[str, float]]:
    """Loss -> {start, end}: the first and last train.csv rows (each the mean of log_freq
    updates) of the reward, value and consistency losses."""
    with open(run_dir / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = ("reward_loss", "value_loss", "consistency_loss")
    return {n: {"start": float(rows[0][n]), "end": float(rows[-1][n])} for n in names}


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rank correlation over axis 0 (no ties expected). Shapes: x, y [K, S] -> [S]."""
    rx = np.argsort(np.argsort(x, axis=0), axis=0) - (len(x) - 1) / 2
    ry = np.argsort(np.argsort(y, axis=0), axis=0) - (len(y) - 1) / 2
    return (rx * ry).sum(0) / np.sqrt((rx**2).sum(0) * (ry**2).sum(0))


def heldout_ranking(run_dir: Path, arrays: dict, states: int, candidates: int) -> dict:
    """Spearman and top-1 of the trained model's reward and mean Q against known_reward.

    `arrays` are held-out episodes (reward_episodes); states are random rows of them, each
    with `candidates` uniform actions on the task's own action dims.
    """
    from mbdpo_core.checkpoint import latest_checkpoint, load_checkpoint, split_prefix
    from mbdpo_core.reference import model, two_hot_inv
    from mbdpo_core.rundir import read_config

    cfg = read_config(run_dir)
    params = split_prefix(load_checkpoint(latest_checkpoint(run_dir))[0], "params/")
    rng = np.random.default_rng(12345)
    N, T, _ = arrays["obs"].shape
    episode, row = rng.integers(0, N, states), rng.integers(0, T - 1, states)
    obs, task = arrays["obs"][episode, row], arrays["task"][episode, row]  # [S, O], [S]
    action_dim = task_widths(cfg.task)[1][task]  # [S]
    action = rng.uniform(-1, 1, (candidates, states, cfg.action_dim))  # [K, S, A]
    action *= np.arange(cfg.action_dim) < action_dim[:, None]
    true = known_reward(obs, action, action_dim)  # [K, S]
    z = np.broadcast_to(model.encode(params, cfg, obs, task), (candidates, states, cfg.latent_dim))
    predicted = {
        "reward": two_hot_inv(model.reward(params, cfg, z, action, task), cfg=cfg)[..., 0],
        "q": two_hot_inv(model.Q(params, cfg, z, action, task), cfg=cfg)[..., 0].mean(0),
    }
    return {
        head: {
            "spearman": float(np.mean(spearman(true, p))),
            "top1": float(np.mean(p.argmax(0) == true.argmax(0))),
        }
        for head, p in predicted.items()
    } | {"chance_top1": 1 / candidates, "states": states, "candidates": candidates}


def learning(args: argparse.Namespace) -> dict:
    """Train on generated mt30 data with a known reward; losses and held-out ranking."""
    work = args.workdir / f"learning-{args.backend}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    start = time.perf_counter()
    data = write_dataset(work, "mt30", args.episodes, seed=0)
    data_s = time.perf_counter() - start
    overrides = [*LEARNING, *args.override, f"steps={args.steps}", f"log_freq={args.window}"]
    run = [f"--backend={args.backend}", *overrides, f"data_dir={data}", f"run_dir={work / 'run'}"]
    train_s, rss = run_app("train", run, work / "train.log")
    heldout = reward_episodes("mt30", args.heldout, seed=1)
    result = {
        "backend": args.backend,
        "command": "apps/train " + " ".join(run),
        "episodes": args.episodes,
        "losses": loss_windows(work / "run"),
        "window": args.window,
        "heldout": heldout_ranking(work / "run", heldout, args.states, args.candidates),
        "data_s": data_s,
        "train_s": train_s,
        "train_peak_rss_bytes": rss,
    }
    for name, pair in result["losses"].items():
        print(
            f"{args.backend} {name} (mean of {args.window} updates): {pair['start']:.4f} -> "
            f"{pair['end']:.4f}"
        )
    for head, r in [(h, result["heldout"][h]) for h in ("reward", "q")]:
        print(
            f"{args.backend} held-out {head}: Spearman {r['spearman']:.3f}, top-1 "
            f"{r['top1']:.3f} (chance {1 / args.candidates:.3f})"
        )
    print(f"data {data_s:.0f} s, training {train_s:.0f} s")
    return result


def mt80_dataset(root: Path, episodes: int) -> Path:
    """An mt80-shaped dataset of random episodes (benchmarks/data.py's chunk), converted;
    one already converted under `root` is reused."""
    from data import write_source
    from mbdpo_data.convert import convert

    if not (root / "npz" / "manifest.json").exists():
        write_source(root / "pt" / "chunk_0.pt", episodes)
        convert(root / "pt", root / "npz", progress=False, log=lambda line: None)
        shutil.rmtree(root / "pt")
    return root / "npz"


def peak_rss(backend: str, data: Path, model_size: int, steps: int, work: Path) -> dict:
    """VmHWM of an `apps/train mode=offline task=mt80` run of `steps` updates (batch 256, one
    evaluation episode in the process), against the dataset's size on disk and the model's."""
    from mbdpo_core.checkpoint import latest_checkpoint, load_checkpoint

    run_dir = work / f"rss-{backend}-{model_size}"
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = [*LEARNING[1:], "task=mt80", "preset=paper", f"model_size={model_size}"]
    args = [f"--backend={backend}", *overrides, f"steps={steps}", f"data_dir={data}"]
    seconds, rss = run_app("train", [*args, f"run_dir={run_dir}"], run_dir.with_suffix(".log"))
    arrays = load_checkpoint(latest_checkpoint(run_dir))[0]
    params = sum(a.size for name, a in arrays.items() if name.startswith("params/"))
    dataset_bytes = sum(p.stat().st_size for p in data.iterdir())
    return {
        "peak_rss_bytes": rss,
        "dataset_bytes": dataset_bytes,
        "model_parameters": params,
        "peak_rss_over_dataset": rss / dataset_bytes,
        "run_s": seconds,
    }


def evaluation_times(backend: str, tasks: int, planner: str) -> dict:
    """Wall seconds of evaluating the first `tasks` mt30 tasks (1 episode each, model size 1,
    an untrained agent) with 1 and 2 workers: the first evaluation (environments built,
    workers started) and a second one."""
    from mbdpo_core.backends import load_backend
    from mbdpo_core.config import load_config
    from mbdpo_core.loops import TaskEvaluator
    from mbdpo_envs import make_agent_env

    cfg = load_config(["task=mt30", "preset=cpu", f"planner={planner}"], backend=backend)
    agent = load_backend(backend).Agent(cfg)
    names = list(cfg.tasks[:tasks])
    result = {"tasks": names, "planner": planner}
    for workers in (1, 2):
        seconds = []
        with TaskEvaluator(cfg, names, 1, make_agent_env, workers) as evaluator:
            for step in (0, 1):
                start = time.perf_counter()
                evaluator.per_task(agent, step)
                seconds.append(time.perf_counter() - start)
        result[f"workers_{workers}"] = {"first_s": seconds[0], "second_s": seconds[1]}
    return result


def speed(args: argparse.Namespace) -> dict:
    """Fed against in-memory updates, peak RSS and evaluation times, per backend."""
    from data import fed_updates, sampling_rate
    from mbdpo_data import OfflineDataset

    work = args.workdir / "speed"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = mt80_dataset(work / f"mt80-{args.episodes}", args.episodes)
    result: dict = {"episodes": args.episodes, "data_s": time.perf_counter() - start}
    dataset = OfflineDataset(data)
    result["batches_per_s"] = {b: sampling_rate(dataset, b, 1.0) for b in args.batch_sizes}
    for backend in args.backend:
        figures: dict = {"updates": {}, "rss": {}}
        for size in args.model_sizes:
            for batch in args.batch_sizes:
                fed = fed_updates(backend, data, size, batch, args.updates)
                figures["updates"][f"model_size_{size}_batch_{batch}"] = fed
                print(
                    f"{backend} model size {size} batch {batch}: fed "
                    f"{fed['fed_updates_per_s']:.2f} updates/s, in memory "
                    f"{fed['in_memory_updates_per_s']:.2f} (ratio "
                    f"{fed['fed_over_in_memory']:.2f})"
                )
            rss = peak_rss(backend, data, size, args.rss_steps, work)
            figures["rss"][f"model_size_{size}"] = rss
            print(
                f"{backend} model size {size}: peak RSS {rss['peak_rss_bytes'] / 2**20:.0f} MiB"
                f" ({rss['model_parameters'] / 1e6:.2f} M parameters, dataset "
                f"{rss['dataset_bytes'] / 2**20:.0f} MiB)"
            )
        timing = figures["evaluation"] = evaluation_times(backend, args.eval_tasks, args.planner)
        for workers in (1, 2):
            first, second = timing[f"workers_{workers}"].values()
            print(
                f"{backend} evaluation of {args.eval_tasks} tasks ({args.planner}), {workers} "
                f"worker(s): {first:.1f} s (first), {second:.1f} s (second)"
            )
        result[backend] = figures
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mbdpo-offline-bench"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    sub = parser.add_subparsers(dest="command", required=True)
    learn = sub.add_parser("learning", help="losses and held-out action ranking")
    learn.add_argument("--backend", choices=("torch", "jax"), default="torch")
    learn.add_argument("--steps", type=int, default=600, help="updates")
    learn.add_argument("--window", type=int, default=50, help="updates per loss mean")
    learn.add_argument("--episodes", type=int, default=60, help="training episodes (501 rows)")
    learn.add_argument("--heldout", type=int, default=8, help="held-out episodes")
    learn.add_argument("--states", type=int, default=512, help="held-out states ranked")
    learn.add_argument("--candidates", type=int, default=16, help="actions per state (K)")
    learn.add_argument("override", nargs="*", help="more apps/train key=value overrides")
    fast = sub.add_parser("speed", help="fed/in-memory updates, peak RSS, evaluation time")
    fast.add_argument("--backend", nargs="+", choices=("torch", "jax"), default=["torch"])
    fast.add_argument("--episodes", type=int, default=15_000, help="mt80 episodes (101 rows)")
    fast.add_argument("--model-sizes", type=int, nargs="+", default=[1, 5])
    fast.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    fast.add_argument("--updates", type=int, default=20, help="updates per timed block")
    fast.add_argument("--rss-steps", type=int, default=30, help="updates of the RSS run")
    fast.add_argument("--eval-tasks", type=int, default=10, help="mt30 tasks evaluated")
    fast.add_argument("--planner", default="policy", help="planner of the evaluation")
    fast.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "speed" and args.quick:
        args.episodes, args.updates, args.rss_steps, args.eval_tasks = 500, 2, 3, 2
    os.environ.setdefault("XLA_FLAGS", _SINGLE_THREAD_XLA)  # before JAX is imported
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    run = learning if args.command == "learning" else speed
    result = {"command": sys.argv, "matmul_gflops": matmul_gflops(), **run(args)}
    result["wall_s"] = time.perf_counter() - start
    print(f"matmul {result['matmul_gflops']:.1f} GFLOP/s; {result['wall_s']:.0f} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
