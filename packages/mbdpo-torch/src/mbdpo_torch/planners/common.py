"""Pieces the planners share: action masks, warm start, policy rollouts, elite weighting
(docs/method.md#diffusion-planner, docs/method.md#mppi).

Shapes: N candidates, E elites, P policy rollouts, H horizon, A action, Z latent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..world_model import WorldModel


def action_mask(model: WorldModel, task: torch.Tensor | None) -> torch.Tensor:
    """Action mask of the planning task [A] (ones single-task). Shapes: task [1] or None."""
    return model.action_mask(task).reshape(-1, model.cfg.action_dim)[0]


def warm_start(prev_plan: torch.Tensor, t0: bool | torch.Tensor) -> torch.Tensor:
    """zeros at t0, else the previous plan shifted by one step; t0 a bool, or a bool tensor []
    (one environment of a batched call). Shapes: [H, A] -> [H, A]."""
    if isinstance(t0, torch.Tensor):
        shifted = torch.cat([prev_plan[1:], torch.zeros_like(prev_plan[:1])], dim=0)
        return torch.where(t0, torch.zeros_like(prev_plan), shifted)
    if t0:
        return torch.zeros_like(prev_plan)
    return torch.cat([prev_plan[1:], torch.zeros_like(prev_plan[:1])], dim=0)


def policy_rollouts(
    model: WorldModel,
    z: torch.Tensor,
    task: torch.Tensor | None,
    pi_eps: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Policy-prior trajectories from one latent; the first policy step is evaluated once at z
    and broadcast over the rollouts.

    Shapes: z [1, Z], pi_eps [H, P, A], mask [A] -> [P, H, A].
    """
    P = pi_eps.shape[1]
    zp, steps = z, []
    for h in range(pi_eps.shape[0]):
        ap, _ = model.pi(zp, task, pi_eps[h])
        ap = torch.clamp(mask * ap, -1.0, 1.0)
        steps.append(ap)
        zp = model.next(zp.expand(P, zp.shape[-1]), ap, task)
    return torch.stack(steps, dim=1)


def elite_indices(v: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` largest values, decreasing (first index on ties). Shapes: [N]."""
    return torch.sort(v, descending=True, stable=True).indices[:count]


def weighted_mean(
    v: torch.Tensor, samples: torch.Tensor, elites: int, temperature: float
) -> torch.Tensor:
    """Mean of the top `elites` samples (all when 0 or >= N) weighted by the softmax of their
    standardised values / temperature (std < 1e-4 counts as 1).

    Shapes: v [N], samples [N, H, A] -> [H, A].
    """
    sv = v.std() if v.shape[0] > 1 else torch.zeros((), device=v.device)
    sv = torch.where(sv < 1e-4, torch.ones_like(sv), sv)
    logits = ((v - v.mean()) / sv) / max(temperature, 1e-6)
    if 0 < elites < v.shape[0]:
        idx = elite_indices(v, elites)
        logits, samples = logits[idx], samples[idx]
    return torch.einsum("n,nha->ha", torch.softmax(logits, dim=0), samples)
