"""mbdpo_jax: the JAX/Flax NNX/Optax backend of MBDPO (the same modules and public API as
mbdpo_torch; docs/design.md#mirrored-backends)."""

from __future__ import annotations

from .agent import Agent
from .data_parallel import init_processes
from .planners import make_planner
from .runtime import gpu_available, use_compilation_cache
from .world_model import WorldModel

__all__ = [
    "Agent",
    "WorldModel",
    "make_planner",
    "gpu_available",
    "init_processes",
    "use_compilation_cache",
]
