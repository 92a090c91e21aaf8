"""Shared fixtures of the torch backend's unit tests: tiny configs and random parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.config.schema import Config
from mbdpo_core.params import init_params

TINY = [
    "preset=paper",
    "device=cpu",
    "model_size=1",
    "enc_dim=24",
    "mlp_dim=32",
    "latent_dim=16",
    "num_q=3",
    "batch_size=6",
    "horizon=3",
    "diffusion_steps=5",
    "diffusion_num_samples=16",
    "diffusion_num_elites=4",
    "diffusion_num_pi_trajs=3",
    "num_samples=16",
    "num_elites=4",
    "num_pi_trajs=3",
    "iterations=3",
    "diffusion_num_samples_mf=8",
    "diffusion_time_embed_dim=8",
]


def make_cfg(*overrides: str, task: str = "cheetah-run") -> Config:
    """A tiny config (CPU, small widths and planner) with extra key=value overrides."""
    return load_config([*TINY, f"task={task}", *overrides], backend="torch")


def random_params(cfg: Config, seed: int = 0) -> dict[str, np.ndarray]:
    """Canonical parameters with every entry random (no zero last layers, target != online)."""
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    out = {}
    for name, value in params.items():
        if name.endswith("ln.weight"):
            new = 1.0 + 0.2 * rng.standard_normal(value.shape)
        elif name.endswith("bias"):
            new = 0.2 * rng.standard_normal(value.shape)
        elif name == "task_emb.weight":
            new = 0.6 * rng.standard_normal(value.shape)  # some rows above norm 1
        else:
            new = rng.standard_normal(value.shape) / np.sqrt(value.shape[-2])
            if name == "pi.2.weight":  # keep tanh away from saturation (float32 log(1 - a^2))
                new = 0.3 * new
        out[name] = new.astype(np.float32)
    return out


def random_batch(cfg: Config, seed: int = 0) -> Batch:
    """A batch of the config's shapes with random contents (terminations set when episodic)."""
    rng = np.random.default_rng(seed)
    H, B, A = cfg.horizon, cfg.batch_size, cfg.action_dim
    terminated = np.zeros((H, B, 1), np.float32)
    if cfg.episodic:
        terminated = (rng.random((H, B, 1)) < 0.3).astype(np.float32)
    return Batch(
        obs=rng.standard_normal((H + 1, B, *cfg.obs_shape)).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        reward=(3 * rng.standard_normal((H, B, 1))).astype(np.float32),
        terminated=terminated,
        task=rng.integers(0, cfg.n_tasks, B) if cfg.multitask else None,
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests are tiny: one thread avoids OpenMP oversubscription on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny():
    return make_cfg


@pytest.fixture
def rparams():
    return random_params


@pytest.fixture
def rbatch():
    return random_batch
