"""The policy-prior planner (docs/method.md#policy-planner): no search, the prior's action."""

from __future__ import annotations

import torch
from mbdpo_core.noise import PolicyNoise

from ..world_model import WorldModel
from .common import action_mask


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval: the squashed mean (masked); training: a sample with noise.action_eps [A].

    t0 and energy_stats are unused (one signature for every planner).
    Shapes: z [1, Z], prev_plan [H, A] -> (action [A], prev_plan unchanged).
    """
    action, info = model.pi(z, task, noise.action_eps[None])
    if eval_mode:
        return info["mean"][0] * action_mask(model, task), prev_plan
    return action[0], prev_plan
