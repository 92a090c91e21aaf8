"""Shared setup of the parity tests: one tiny configuration and perturbed parameters."""

from collections.abc import Callable

import numpy as np
import pytest
from mbdpo_core.config.schema import Config
from mbdpo_core.params import init_params

# One Config for every parity file, so JAX compiles each function once for all of them.
TINY_OVERRIDES = (
    "preset=cpu",
    "mlp_dim=32",
    "latent_dim=16",
    "enc_dim=32",
    "num_q=2",
    "batch_size=8",
    "diffusion_num_samples=32",
    "diffusion_num_elites=8",
    "diffusion_num_pi_trajs=4",
    "diffusion_steps=5",
    "diffusion_num_samples_mf=16",
    "num_samples=32",
    "num_elites=8",
    "num_pi_trajs=4",
    "iterations=3",
)


@pytest.fixture(scope="session")
def tiny() -> list[str]:
    """Config overrides of a tiny model and planner (add a task or variant after them)."""
    return list(TINY_OVERRIDES)


def _perturbed_params(cfg: Config, seed: int = 0) -> dict[str, np.ndarray]:
    """Initial parameters plus N(0, 0.1) noise: values then differ clearly between candidate
    plans (a fresh agent's zeroed heads value every plan alike, so its elite choice would be
    rounding noise), and no output is trivially zero."""
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    return {
        k: (v + rng.standard_normal(v.shape) * 0.1).astype(np.float32) for k, v in params.items()
    }


@pytest.fixture(scope="session")
def random_params() -> Callable[..., dict[str, np.ndarray]]:
    """random_params(cfg, seed=0) -> canonical parameters shared by both backends."""
    return _perturbed_params
