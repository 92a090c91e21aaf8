"""Test-session settings shared by every package's tests (pytest loads this rootdir conftest).

- torch runs on one intra-op thread: the test models are tiny, and torch's thread pool thrashes
  on a loaded 2-core machine (an update of the parity config took 0.6 s with 2 threads against
  11 ms with 1).
- Fixtures: `tiny`, the config overrides of a tiny model and planner shared by the parity tests
  and the JAX agent test (one Config, so JAX compiles each function once for all of them), and
  `random_params`, perturbed canonical parameters.
- JAX keeps compiled programs in a persistent cache, so a second test session (a local rerun, or
  CI restoring the folder) skips most XLA compilation (the JAX agent and loss tests: 110 s cold,
  21 s warm). The folder is $MBDPO_JAX_CACHE_DIR, by default ~/.cache/mbdpo/jax-tests; set
  MBDPO_JAX_CACHE_DIR to an empty value to turn the cache off. The apps that tests run in
  subprocesses use the same folder (JAX_COMPILATION_CACHE_DIR, which the apps' default cache
  defers to). Cached programs are keyed by their HLO, the JAX version and the XLA flags, so
  results are the same as without it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mbdpo_core.config.schema import Config
from mbdpo_core.params import init_params


def pytest_configure(config) -> None:
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401  before any test module loads Mesa's LLVM (see mbdpo_envs._gl)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)
    cache_dir = os.environ.get("MBDPO_JAX_CACHE_DIR", str(Path.home() / ".cache/mbdpo/jax-tests"))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache_dir  # the apps that tests start use it too
    if cache_dir and importlib.util.find_spec("jax") is not None:
        import jax

        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# One Config for the parity files and the JAX agent test, so JAX compiles each function once.
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


def _perturbed_params(cfg: Config, seed: int | np.random.Generator = 0) -> dict[str, np.ndarray]:
    """Initial parameters plus N(0, 0.1) noise: values then differ clearly between candidate
    plans (a fresh agent's zeroed heads value every plan alike, so its elite choice would be
    rounding noise), and no output is trivially zero. A Generator `seed` is drawn from and
    advanced, so a test can go on drawing its data from it."""
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    return {
        k: (v + rng.standard_normal(v.shape) * 0.1).astype(np.float32) for k, v in params.items()
    }


@pytest.fixture(scope="session")
def random_params() -> Callable[..., dict[str, np.ndarray]]:
    """random_params(cfg, seed_or_rng=0) -> canonical parameters shared by both backends."""
    return _perturbed_params
