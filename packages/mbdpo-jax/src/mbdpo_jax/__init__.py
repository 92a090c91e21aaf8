"""mbdpo_jax: the JAX/Flax/Optax backend of MBDPO (same interfaces as mbdpo_torch)."""

from __future__ import annotations

import jax

from .agent import Agent
from .planners import make_planner
from .world_model import WorldModel

__all__ = ["Agent", "WorldModel", "make_planner", "gpu_available"]


def gpu_available() -> bool:
    """Whether JAX sees a GPU."""
    try:
        return len(jax.devices("gpu")) > 0
    except RuntimeError:
        return False
