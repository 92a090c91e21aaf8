"""apps/train end to end: a short real run per backend, exact resume, and clear errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mbdpo_core.checkpoint import latest_checkpoint, load_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.rundir import write_config

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "task=cartpole-balance",
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
    "seed_steps=500",
    "eval_freq=500",
    "eval_episodes=1",
    "save_every=500",
]


def train(backend: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": "egl"}
    cmd = [sys.executable, str(ROOT / "apps" / "train"), "--backend", backend, *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_short_run_writes_every_output(tmp_path, backend):
    pytest.importorskip(f"mbdpo_{backend}.agent")
    run = tmp_path / "run"
    out = train(backend, *TINY, "steps=1000", f"run_dir={run}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "preset=cpu" in out.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "cpu" and config["backend"] == backend
    rows = read_csv(run / "eval.csv")
    assert [int(float(r["step"])) for r in rows] == [0, 500, 1000]
    assert list(rows[0])[:4] == ["step", "episode_reward", "episode_success", "episode_length"]
    assert all(np.isfinite(float(r["episode_reward"])) for r in rows)
    train_rows = read_csv(run / "train.csv")
    assert len(train_rows) == 2 and "value_loss" in train_rows[-1]
    assert list(run.glob("events.out.tfevents.*"))
    assert latest_checkpoint(run).name == "step_1000"


@pytest.mark.slow
def test_resume_gives_the_same_run_as_an_uninterrupted_one(tmp_path):
    pytest.importorskip("mbdpo_torch.agent")
    full, split = tmp_path / "full", tmp_path / "split"
    assert train("torch", *TINY, "steps=1500", f"run_dir={full}").returncode == 0
    first = train("torch", *TINY, "steps=1000", f"run_dir={split}")
    assert first.returncode == 0, first.stderr[-3000:]
    second = train("torch", *TINY, "steps=1500", f"run_dir={split}", "resume=true")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed at step 1000" in second.stdout
    assert read_csv(full / "eval.csv") == read_csv(split / "eval.csv")
    a, _ = load_checkpoint(latest_checkpoint(full))
    b, _ = load_checkpoint(latest_checkpoint(split))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize(
    "args, message",
    [
        (["stpes=10"], "Did you mean: steps"),
        (["task=cartpole-balanc"], "Did you mean: cartpole-balance"),
        (["model_size=6"], "Valid choices: 1, 5, 19, 48, 317"),
        (["resume=true"], "needs run_dir"),
    ],
)
def test_bad_input_is_a_clear_error(args, message):
    out = train("torch", *args)
    assert out.returncode == 2
    assert message in out.stderr


def test_resume_refuses_a_changed_hyperparameter(tmp_path):
    run = tmp_path / "run"
    write_config(run, load_config(["preset=cpu"], backend="torch"))
    out = train("torch", f"run_dir={run}", "resume=true", "lr=0.1")
    assert out.returncode == 2
    assert "Cannot resume" in out.stderr and "lr=0.0003" in out.stderr
