"""mbdpo-data figures: conversion throughput against `cp`, peak memory, sampling against updates.

1. Writes a chunk in TD-MPC2's published format (torch.save of a TensorDict, mt80 layout, random
   values) of `--episodes` windows (110,000 by default: 2.1 GB).
2. Times `cp` + fsync of it onto the same disk, and `mbdpo_data.convert` of it (which fsyncs
   too), each `--reps` times alternately, in child processes (start-up included); reports the
   median MB/s of both and the median over reps of their ratio (the disk's speed drifts, so each
   conversion is compared with the copy just before it; `os.sync()` before each, so no
   write-back of an earlier step is pending; the conversion is also timed inside its process,
   without interpreter start-up and imports), and the converting process's peak RSS
   (VmHWM) against the chunk size. The chunk is read from the page cache in both (it was just
   written, and the machine has the RAM to keep it).
3. Samples batches (H=3) of the converted chunk at B=256 and 1024 with `DatasetSampler`
   (prefetch=0: the cost of drawing one) and reports batches/s.
4. Runs `--updates` torch updates of an mt80 agent at model size 5 (batch 256) fed by a
   prefetching `DatasetSampler`, and as many on one batch held in memory; reports both
   updates/s, the time the loop waited for batches, and sampling batches/s over the update rate.

Usage:
    uv run python benchmarks/data.py [--episodes 110000] [--workdir /tmp/mbdpo-data-bench]
        [--reps 3] [--updates 30] [--json out.json]
The conversion uses 3 threads (read and check, hash, write) and `cp` the kernel: time them on a
quiet machine. The update figures use 1 torch thread; the matmul figure is printed beside.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "packages/mbdpo-data/tests"))

from speed import matmul_gflops  # noqa: E402

_CONVERT = """
import sys, time
from mbdpo_data.convert import convert
start = time.perf_counter()
convert(sys.argv[1], sys.argv[2], progress=False, log=lambda line: None)
seconds = time.perf_counter() - start
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) * 1024, seconds)
"""


def timed_child(command: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of one child process."""
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def write_source(path: Path, episodes: int) -> None:
    import pytest
    from mbdpo_data.layouts import LAYOUTS
    from published_chunks import episodes_arrays, write_chunk

    write_chunk(
        path, episodes_arrays(LAYOUTS["mt80"], episodes, seed=0), "new", pytest.MonkeyPatch()
    )


def sampling_rate(dataset, batch_size: int, seconds: float = 2.0) -> float:
    from mbdpo_data.sampler import DatasetSampler

    sampler = DatasetSampler(dataset, seed=0, prefetch=0)
    sampler.sample(batch_size, 3)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.sample(batch_size, 3)
        count += 1
    return count / (time.perf_counter() - start)


def fed_updates(backend: str, data: Path, model_size: int, batch: int, updates: int) -> dict:
    """Updates/s of an mt80 agent fed by a prefetching DatasetSampler of the converted dataset
    `data`, against updates/s on one batch held in memory: alternating blocks of `updates`,
    twice each, the faster block of each kind; the first update (JAX: compilation) apart."""
    from mbdpo_core.backends import load_backend
    from mbdpo_core.config import load_config
    from mbdpo_data import DatasetSampler, OfflineDataset

    overrides = ["task=mt80", "preset=paper", f"model_size={model_size}", f"batch_size={batch}"]
    cfg = load_config(overrides, backend=backend)
    agent = load_backend(backend).Agent(cfg)
    sampler = DatasetSampler(OfflineDataset(data), seed=0, prefetch=4)
    in_memory = sampler.sample(cfg.batch_size, cfg.horizon)
    start = time.perf_counter()
    agent.update(in_memory)
    first_s = time.perf_counter() - start
    fed_s, memory_s, waited = [], [], 0.0
    for _ in range(2):
        start = time.perf_counter()
        for _ in range(updates):
            before = time.perf_counter()
            drawn = sampler.sample(cfg.batch_size, cfg.horizon)
            waited += time.perf_counter() - before
            agent.update(drawn)
        fed_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(updates):
            agent.update(in_memory)
        memory_s.append(time.perf_counter() - start)
    sampler.close()
    return {
        "fed_updates_per_s": updates / min(fed_s),
        "in_memory_updates_per_s": updates / min(memory_s),
        "fed_over_in_memory": min(memory_s) / min(fed_s),
        "waited_fraction": waited / sum(fed_s),
        "first_update_s": first_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=110_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mbdpo-data-bench"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    matmul = matmul_gflops()
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    (work / "src").mkdir(parents=True)
    source = work / "src" / "chunk_0.pt"
    write_source(source, args.episodes)
    size = source.stat().st_size
    print(f"source chunk: {size / 1e9:.2f} GB ({args.episodes} mt80 windows)")

    copy = work / "copy.pt"
    cp_s, convert_s, rss = [], [], []
    inside_s = []  # the conversion alone, without the child's interpreter start and imports
    for rep in range(args.reps):
        copy.unlink(missing_ok=True)
        os.sync()  # each timing starts with no write-back pending from the previous one
        seconds, _ = timed_child(["sh", "-c", f"cp {source} {copy} && sync {copy}"])
        cp_s.append(seconds)
        shutil.rmtree(work / "npz", ignore_errors=True)
        os.sync()
        convert = [sys.executable, "-c", _CONVERT, str(work / "src"), str(work / "npz")]
        seconds, printed = timed_child(convert)
        peak, inside = int(printed.split()[0]), float(printed.split()[1])
        convert_s.append(seconds)
        inside_s.append(inside)
        rss.append(peak)
        print(
            f"rep {rep}: cp+sync {size / cp_s[-1] / 1e6:.0f} MB/s, convert "
            f"{size / seconds / 1e6:.0f} MB/s ({size / inside / 1e6:.0f} MB/s without start-up), "
            f"peak RSS {peak / 1e6:.0f} MB"
        )
    copy.unlink(missing_ok=True)

    from mbdpo_data.dataset import OfflineDataset

    dataset = OfflineDataset(work / "npz")
    rates = {b: sampling_rate(dataset, b) for b in (256, 1024)}
    fed = fed_updates("torch", work / "npz", 5, 256, args.updates)
    result = {
        "matmul_gflops": matmul,
        "chunk_bytes": size,
        "cp_mb_s": size / statistics.median(cp_s) / 1e6,
        "convert_mb_s": size / statistics.median(convert_s) / 1e6,
        "convert_over_cp": statistics.median(c / v for c, v in zip(cp_s, convert_s, strict=True)),
        "convert_without_startup_mb_s": size / statistics.median(inside_s) / 1e6,
        "convert_without_startup_over_cp": statistics.median(
            c / v for c, v in zip(cp_s, inside_s, strict=True)
        ),
        "reps": [
            {"cp_s": c, "convert_s": v, "convert_without_startup_s": i}
            for c, v, i in zip(cp_s, convert_s, inside_s, strict=True)
        ],
        "peak_rss_bytes": max(rss),
        "peak_rss_over_chunk": max(rss) / size,
        "npz_bytes": (work / "npz" / "chunk_0.npz").stat().st_size,
        "batches_per_s": {str(b): r for b, r in rates.items()},
        "update_model_size_5": fed,
        "sampling_over_updates": rates[256] / fed["fed_updates_per_s"],
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
