"""The policy-prior planner (spec "Policy planner"): no search, the prior's action."""

from __future__ import annotations

import torch
from mbdpo_core.noise import PolicyNoise

from ..world_model import WorldModel
from .value import action_mask


@torch.no_grad()
def plan(
    model: WorldModel,
    z: torch.Tensor,
    prev_plan: torch.Tensor,
    t0: bool,
    eval_mode: bool,
    task: torch.Tensor | None,
    noise: PolicyNoise,
    energy_stats: torch.Tensor,
    fast: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval: the squashed mean (masked); training: a sample with noise.action_eps [A].

    Shapes: z [1, Z], prev_plan [H, A] -> (action [A], prev_plan unchanged).
    """
    action, info = model.pi(z, task, noise.action_eps[None])
    if eval_mode:
        return info["mean"][0] * action_mask(model, task, z.device), prev_plan
    return action[0], prev_plan
