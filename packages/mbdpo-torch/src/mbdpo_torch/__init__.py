"""PyTorch backend of MBDPO: world model, losses, planners and the agent."""

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
