"""Short training runs on one task of every suite, per backend; prints a table.

Each run is `apps/train` with the CPU preset, a short random-action phase and a few hundred
learning steps: a check that every suite trains end to end with each backend, not a measure
of final performance.

    uv run python benchmarks/suites.py                      # both backends, all suites
    uv run python benchmarks/suites.py --backend jax --task mw-reach
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS: dict[str, list[str]] = {
    # task: overrides (steps = random seeding + a short learning phase)
    "walker-run-backwards": ["steps=1500", "seed_steps=1000", "eval_freq=1500"],
    "mw-reach": ["steps=1300", "seed_steps=1000", "eval_freq=1300"],
    "myo-reach": ["steps=1300", "seed_steps=1000", "eval_freq=1300"],
    "pick-cube": ["steps=1300", "seed_steps=1000", "eval_freq=1300"],
    "walker-walk": ["obs=rgb", "steps=1500", "seed_steps=1000", "eval_freq=1500"],
}


def run(backend: str, task: str, overrides: list[str], root: Path) -> dict[str, str]:
    run_dir = root / f"{task}-{backend}"
    cmd = [
        sys.executable,
        str(ROOT / "apps" / "train"),
        "--backend",
        backend,
        f"task={task}",
        "preset=cpu",
        "eval_episodes=2",
        f"run_dir={run_dir}",
        *overrides,
    ]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ}, cwd=ROOT)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        return {"task": task, "backend": backend, "status": f"FAILED ({out.stderr[-300:]!r})"}
    with open(run_dir / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    first, last = rows[0], rows[-1]
    return {
        "task": task,
        "backend": backend,
        "status": "ok",
        "wall_s": f"{wall:.0f}",
        "steps": last["step"],
        "return_0": f"{float(first['episode_reward']):.1f}",
        "return_end": f"{float(last['episode_reward']):.1f}",
        "success_end": f"{float(last['episode_success']):.2f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["torch", "jax"], action="append")
    parser.add_argument("--task", choices=list(RUNS), action="append")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.task or list(RUNS):
            for backend in args.backend or ["torch", "jax"]:
                result = run(backend, task, RUNS[task], Path(tmp))
                print(result, flush=True)
                results.append(result)
    keys = ["task", "backend", "status", "steps", "return_0", "return_end", "success_end", "wall_s"]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in results:
        print("| " + " | ".join(r.get(k, "") for k in keys) + " |")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
