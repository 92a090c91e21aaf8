"""Startup of a new process: seconds to the first action and the first update, with a cold and a
warm compilation cache (docs/design.md#runtime).

For each backend, two child processes run one after the other with the same fresh cache folder
(XDG_CACHE_HOME in a temporary directory, as the apps' default `use_compilation_cache()` reads
it): the first compiles (cold), the second finds the programs on disk (warm). A child imports the
backend, builds the agent (the paper planner or the CPU preset's, cheetah-run dims), calls
`use_compilation_cache()` as the apps do, then times its first `act` and first `update`
(batch 256). Torch runs eagerly unless --compile (torch.compile of the planner). Python's
bytecode cache is on in the children (PYTHONDONTWRITEBYTECODE removed), as on a user's machine.

Columns (seconds): import (the backend package), agent (Agent(cfg)), first_act, first_update,
to_first_action (from the child's start to its first action returned, interpreter start
excluded).

Usage:
    uv run python benchmarks/startup.py [--backend jax] [--model-size 1] [--preset cpu]
        [--compile] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKENDS = ("torch", "jax")
COLUMNS = ("import", "agent", "first_act", "first_update", "to_first_action")


def child(backend: str, size: int, preset: str, compile_planner: bool) -> dict[str, float]:
    """One new process's first-call seconds (runs inside the child)."""
    start = time.perf_counter()
    import importlib

    import numpy as np

    module = importlib.import_module(f"mbdpo_{backend}")
    imported = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mbdpo_core.config.load import load_config
    from speed import random_batch

    module.use_compilation_cache()
    overrides = ["task=cheetah-run", f"model_size={size}", f"preset={preset}", "device=cpu"]
    if compile_planner:
        overrides.append("compile=true")
    cfg = load_config(overrides, gpu_available=False, backend=backend)
    agent = module.Agent(cfg)
    built = time.perf_counter()
    rng = np.random.default_rng(0)
    agent.act(rng.standard_normal(cfg.obs_shape).astype(np.float32), True, False)
    acted = time.perf_counter()
    agent.update(random_batch(cfg, rng))
    updated = time.perf_counter()
    return {
        "import": imported - start,
        "agent": built - imported,
        "first_act": acted - built,
        "first_update": updated - acted,
        "to_first_action": acted - start,
    }


def run_child(args: argparse.Namespace, backend: str, cache_home: str) -> dict[str, float]:
    """Start one child process on `cache_home` and return its timings."""
    command = [
        sys.executable,
        __file__,
        "--child",
        "--backend",
        backend,
        "--model-size",
        str(args.model_size),
        "--preset",
        args.preset,
    ]
    if args.compile:
        command.append("--compile")
    env = {**os.environ, "XDG_CACHE_HOME": cache_home, "OMP_NUM_THREADS": "1"}
    # Python's own bytecode cache on, as for a user: without it every import compiles its
    # sources again (torch.optim alone imports torch._dynamo: 5 s of compiling here)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in ("JAX_COMPILATION_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"):
        env.pop(name, None)  # the default folder under XDG_CACHE_HOME, as for a user
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{backend} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    parser.add_argument("--model-size", type=int, default=1, choices=(1, 5, 19, 48, 317))
    parser.add_argument("--preset", choices=("paper", "cpu"), default="paper")
    parser.add_argument("--compile", action="store_true", help="torch: compile=true")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        backend = args.backend[0]
        print(json.dumps(child(backend, args.model_size, args.preset, args.compile)))
        return

    rows = []
    for backend in args.backend or BACKENDS:
        with tempfile.TemporaryDirectory(prefix="mbdpo-startup-") as cache_home:
            for cache in ("cold", "warm"):
                row = {"backend": backend, "cache": cache, **run_child(args, backend, cache_home)}
                rows.append(row)
                if not args.json:
                    cells = " ".join(f"{k} {row[k]:6.2f}" for k in COLUMNS)
                    print(f"{backend:5s} {cache}: {cells}", flush=True)
    if args.json:
        setting = {"model_size": args.model_size, "preset": args.preset, "compile": args.compile}
        print(json.dumps({**setting, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
