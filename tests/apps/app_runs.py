"""What the apps tests share: the tiny model and planner, and running an app as a user does."""

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = [
    "preset=cpu",
    "mlp_dim=32",
    "enc_dim=32",
    "latent_dim=16",
    "num_q=2",
    "batch_size=16",
    "diffusion_steps=3",
    "diffusion_num_samples=16",
    "diffusion_num_elites=4",
    "diffusion_num_pi_trajs=2",
]
"""Overrides of a model and planner small enough for a test (add the task and the run keys)."""


def run_app(app: str, *args: str) -> subprocess.CompletedProcess:
    """`python apps/<app> args...` from the repository root, one thread, rendering with EGL."""
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "apps" / app), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
