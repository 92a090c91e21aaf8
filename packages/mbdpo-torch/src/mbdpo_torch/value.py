"""The planning value estimate and its parts (docs/method.md#value-estimate), used by the
planners and the score loss. Shapes: N candidates, H horizon, A action, Z latent, Kb bins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from mbdpo_core.config.schema import Config
from mbdpo_core.noise import ValueNoise

from .math import two_hot_inv

if TYPE_CHECKING:
    from .world_model import WorldModel


def discount(model: WorldModel, task: torch.Tensor | None) -> torch.Tensor | float:
    """gamma of the task(s) ([..., 1] tensor) in multi-task, else the single task's float."""
    if task is None or not model.cfg.multitask:
        return float(model.cfg.discounts[0])
    table = torch.tensor(model.cfg.discounts, dtype=torch.float32, device=task.device)
    return table[task].reshape(-1, 1)


def shaped_reward(
    r_logits: torch.Tensor, f_logit: torch.Tensor, energy_stats: torch.Tensor, cfg: Config
) -> torch.Tensor:
    """r + energy_eta clip((F - mu) / max(sigma, 1e-6), +-energy_clip), (mu, sigma) = stats.

    Shapes: r_logits [N, Kb], f_logit [N, 1], energy_stats [2] -> [N, 1].
    """
    f = (f_logit - energy_stats[0]) / torch.clamp(energy_stats[1], min=1e-6)
    f = torch.clamp(f, -cfg.energy_clip, cfg.energy_clip)
    return two_hot_inv(r_logits, cfg) + cfg.energy_eta * f


def clean_values(v: torch.Tensor) -> torch.Tensor:
    """NaN -> 0 and +-inf -> the largest finite float32 (numpy.nan_to_num(v, nan=0.0))."""
    return torch.nan_to_num(v, nan=0.0)


def value_estimate(
    model: WorldModel,
    z: torch.Tensor,
    actions: torch.Tensor,
    task: torch.Tensor | None,
    noise: ValueNoise,
    energy_stats: torch.Tensor,
) -> torch.Tensor:
    """H-step shaped return from z, bootstrapped with the mean of two online Q members.

    Computed by fused.PlanningHeads (the planners build it once per act and reuse it).

    Args:
        z: the latent every candidate starts from [1, Z].
        actions: candidate sequences [N, H, A].
        task: task id [1] or None.
        noise: pi_eps [N, A], q_pair [2], q_keep [2, N, M] or None (dropout: the score target).
        energy_stats: (mu, sigma) of F logits [2].

    Shapes: -> [N, 1].
    """
    from .fused import PlanningHeads  # fused builds on discount and shaped_reward above

    return PlanningHeads(model, z, task, energy_stats).value(actions, noise)
