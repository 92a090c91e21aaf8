"""Test-session settings shared by every package's tests (pytest loads this rootdir conftest).

- torch runs on one intra-op thread: the test models are tiny, and torch's thread pool thrashes
  on a loaded 2-core machine (an update of the parity config took 0.6 s with 2 threads against
  11 ms with 1).
- JAX keeps compiled programs in a persistent cache, so a second test session (a local rerun, or
  CI restoring the folder) skips most XLA compilation (the JAX agent and loss tests: 110 s cold,
  21 s warm). The folder is $MBDPO_JAX_CACHE_DIR, by default ~/.cache/mbdpo/jax-tests; set
  MBDPO_JAX_CACHE_DIR to an empty value to turn the cache off. Cached programs are keyed by
  their HLO, the JAX version and the XLA flags, so results are the same as without it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def pytest_configure(config) -> None:
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401  before any test module loads Mesa's LLVM (see mbdpo_envs._gl)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)
    cache_dir = os.environ.get("MBDPO_JAX_CACHE_DIR", str(Path.home() / ".cache/mbdpo/jax-tests"))
    if cache_dir and importlib.util.find_spec("jax") is not None:
        import jax

        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
