"""Update throughput of data-parallel updates (docs/design.md#data-parallel-updates): updates per
second of `agent.update(batch)` with data_parallel_devices=N, per backend and model size.

For each backend, model size (--model-sizes) and device count N (--devices) a fresh worker (this
file with --worker) builds an agent (task cheetah-run: obs 17, action 6; preset=cpu,
batch_size=--batch-size, data_parallel_devices=N) and times `update` on random numpy batches
(shapes as the data-parallel tests' `_random_batch`, a new batch per call, drawn before timing):
--warmup untimed calls (the first, timed alone, is the "first call": JAX traces and compiles
there), then the median of --updates timed calls. Each worker also times a float32 1024x1024
numpy matmul (median of 5) in its own process, the machine's reference ("units" = ms per update
over matmul ms).
- torch: `python -m torch.distributed.run --standalone --nproc_per_node=N` runs N gloo processes
  (OMP_NUM_THREADS=--threads each, CUDA_VISIBLE_DEVICES=""); N = 1 goes through torchrun too, the
  same code path. Rank 0 writes its timings to a temporary JSON file.
- jax: one process with N host-platform CPU devices of one thread each (XLA_FLAGS), no
  persistent compilation cache, so the first call includes compilation; --threads sets only
  its numpy matmul's OMP_NUM_THREADS.
The table gives per (backend, size, N): updates/s, ms per update, units, speed-up over N=1 and
the first call's seconds; --json PATH writes the same rows.

Usage:
    uv run python benchmarks/data_parallel.py [--backend torch] [--model-sizes 1,5]
        [--devices 1,2] [--batch-size 256] [--updates 20] [--warmup 3] [--threads 1]
        [--json rows.json]
Time it on a quiet machine with at least max(--devices) x --threads free cores: the processes
and devices of one measurement share the machine's cores.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import ConfigError

BACKENDS = ("torch", "jax")
TASK = "cheetah-run"
"""Observation 17, action 6."""


def overrides(size: int, devices: int, batch_size: int) -> list[str]:
    return [
        f"task={TASK}",
        "preset=cpu",
        f"model_size={size}",
        f"batch_size={batch_size}",
        f"data_parallel_devices={devices}",
    ]


def matmul_ms() -> float:
    """Median ms of 5 float32 1024x1024 numpy matmuls (after one untimed) in this process."""
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    a @ a
    times = []
    for _ in range(5):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def random_batch(cfg: Config, rng: np.random.Generator) -> Batch:
    """A single-task batch: obs [H+1, B, O], action [H, B, A], reward and terminated [H, B, 1]."""
    H, B, A = cfg.horizon, cfg.batch_size, cfg.action_dim
    return Batch(
        obs=rng.standard_normal((H + 1, B, cfg.obs_shape[0])).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        reward=(3 * rng.standard_normal((H, B, 1))).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
    )


# ----- worker: one (backend, size, N) in this process ----------------------------------------
def worker(backend: str, size: int, devices: int, args: argparse.Namespace) -> None:
    """Time the updates of one agent; rank 0 writes {matmul_ms, first_call_s, update_s: [...]}
    to args.worker. Under torchrun every rank runs this on the same batches."""
    matmul = matmul_ms()
    module = importlib.import_module(f"mbdpo_{backend}")
    rank = importlib.import_module(f"mbdpo_{backend}.data_parallel").init_processes()[0]
    cfg = load_config(overrides(size, devices, args.batch_size), backend=backend)
    agent = module.Agent(cfg)
    rng = np.random.default_rng(0)  # the same batches on every rank
    batches = [random_batch(cfg, rng) for _ in range(args.warmup + args.updates)]
    times = []
    for batch in batches:
        start = time.perf_counter()
        agent.update(batch)  # metrics come back as floats: the update has finished
        times.append(time.perf_counter() - start)
    if rank == 0:
        result = {"matmul_ms": matmul, "first_call_s": times[0], "update_s": times[args.warmup :]}
        Path(args.worker).write_text(json.dumps(result))


# ----- parent: start the workers, tabulate ---------------------------------------------------
def worker_command(backend: str, devices: int) -> tuple[list[str], dict[str, str]]:
    """The launcher prefix and environment of a worker with `devices` processes/devices."""
    if backend == "torch":
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launcher += [f"--nproc_per_node={devices}", __file__]
        return launcher, {"CUDA_VISIBLE_DEVICES": ""}
    flags = f"--xla_force_host_platform_device_count={devices} --xla_cpu_multi_thread_eigen=false"
    return [sys.executable, __file__], {
        "XLA_FLAGS": f"{flags} intra_op_parallelism_threads=1",
        "JAX_PLATFORMS": "cpu",
    }


def measure(backend: str, size: int, devices: int, args: argparse.Namespace) -> dict:
    """Run one worker and return its row (without the speed-up)."""
    launcher, env = worker_command(backend, devices)
    env = {**os.environ, **env, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory(prefix="mbdpo-dp-bench-") as folder:
        out = Path(folder) / "rank0.json"
        command = [*launcher, "--worker", str(out), "--backend", backend]
        command += ["--model-sizes", str(size), "--devices", str(devices)]
        command += ["--batch-size", str(args.batch_size), "--updates", str(args.updates)]
        command += ["--warmup", str(args.warmup)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(
                f"{backend} size {size} N={devices} worker failed:\n{done.stderr[-3000:]}"
            )
        result = json.loads(out.read_text())
    seconds = statistics.median(result["update_s"])
    return {
        "backend": backend,
        "model_size": size,
        "devices": devices,
        "updates_per_s": 1 / seconds,
        "ms_per_update": seconds * 1e3,
        "matmul_ms": result["matmul_ms"],
        "units": seconds * 1e3 / result["matmul_ms"],
        "first_call_s": result["first_call_s"],
    }


def with_speedups(rows: list[dict]) -> list[dict]:
    """Each row with speedup = its updates/s over the N=1 row of its backend and size (None
    without one)."""
    one = {(r["backend"], r["model_size"]): r for r in rows if r["devices"] == 1}
    out = []
    for row in rows:
        base = one.get((row["backend"], row["model_size"]))
        speedup = row["updates_per_s"] / base["updates_per_s"] if base else None
        out.append({**row, "speedup": speedup})
    return out


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\nbatch {args.batch_size}, {TASK} 17/6, preset=cpu: median of {args.updates} updates "
        f"after {args.warmup} warm-up, OMP_NUM_THREADS={args.threads}"
    )
    print(
        f"{'backend':<8}{'size':>5}{'N':>3}{'updates/s':>11}{'ms/update':>11}{'units':>8}"
        f"{'speed-up':>10}{'first call s':>14}{'matmul ms':>11}"
    )
    for r in rows:
        speedup = "-" if r["speedup"] is None else f"{r['speedup']:.2f}"
        print(
            f"{r['backend']:<8}{r['model_size']:>5}{r['devices']:>3}{r['updates_per_s']:>11.2f}"
            f"{r['ms_per_update']:>11.1f}{r['units']:>8.1f}{speedup:>10}"
            f"{r['first_call_s']:>14.2f}{r['matmul_ms']:>11.2f}"
        )


def int_list(name: str):
    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} takes comma-separated integers (e.g. 1,2), got {text!r}"
            ) from None
        if any(v < 1 for v in values):
            raise argparse.ArgumentTypeError(f"{name} values must be >= 1, got {text!r}")
        return values

    return parse


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One-line errors before anything runs or is written."""
    if args.warmup < 1:
        parser.error(f"--warmup {args.warmup}: must be >= 1 (the first call is timed alone)")
    if args.updates < 1:
        parser.error(f"--updates {args.updates}: must be >= 1")
    if args.threads < 1:
        parser.error(f"--threads {args.threads}: must be >= 1")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: folder {args.json.parent} does not exist")
    for size in args.model_sizes:
        for devices in args.devices:
            try:
                load_config(overrides(size, devices, args.batch_size))
            except ConfigError as error:
                parser.error(str(error))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, action="append", help="default: both")
    parser.add_argument("--model-sizes", type=int_list("--model-sizes"), default=[1, 5])
    parser.add_argument("--devices", type=int_list("--devices"), default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--updates", type=int, default=20, help="timed updates (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    parser.add_argument(
        "--threads", type=int, default=1, help="OMP_NUM_THREADS of each worker process"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--worker", help="(internal) time one combination, write JSON here")
    args = parser.parse_args()
    check_args(parser, args)
    backends = args.backend or list(BACKENDS)
    if args.worker:
        worker(backends[0], args.model_sizes[0], args.devices[0], args)
        return
    rows = []
    for backend in backends:
        for size in args.model_sizes:
            for devices in args.devices:
                rows.append(measure(backend, size, devices, args))
                r = rows[-1]
                print(
                    f"  {backend} size {size} N={devices}: {r['ms_per_update']:.1f} ms/update, "
                    f"first call {r['first_call_s']:.2f} s",
                    flush=True,
                )
    rows = with_speedups(rows)
    print_table(rows, args)
    if args.json is not None:
        args.json.write_text(json.dumps({"batch_size": args.batch_size, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
