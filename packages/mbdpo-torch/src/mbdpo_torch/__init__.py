"""PyTorch backend of MBDPO: world model, losses, planners and the agent."""

from __future__ import annotations

import torch

from .agent import Agent
from .planners import make_planner
from .world_model import WorldModel


def gpu_available() -> bool:
    """Whether torch sees a CUDA device (decides preset=auto)."""
    return torch.cuda.is_available()


__all__ = ["Agent", "WorldModel", "make_planner", "gpu_available"]
