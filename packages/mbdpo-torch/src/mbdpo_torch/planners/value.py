"""The planning value estimate V(z, actions) (spec "Value estimate", anatomy 4.4).

Two equal computations: `value_estimate` calls the world model's heads one by one (the
straightforward reading of the spec); `value_estimate_fused` (planners/fused.py) computes the
same numbers with shared and fused matmuls. Both return [K, 1].
"""

from __future__ import annotations

import torch
from mbdpo_core.noise import ValueNoise

from ..math import two_hot_inv
from ..world_model import WorldModel


def discount(model: WorldModel, task: torch.Tensor | None) -> torch.Tensor | float:
    """gamma of the task ([..., 1] tensor) in multi-task, else the single task's float."""
    if task is None or not model.cfg.multitask:
        return float(model.cfg.discounts[0])
    table = torch.tensor(model.cfg.discounts, dtype=torch.float32, device=task.device)
    return table[task].reshape(-1, 1)


def shaped_reward(
    model: WorldModel, r_logits: torch.Tensor, f_logit: torch.Tensor, energy_stats: torch.Tensor
) -> torch.Tensor:
    """r + eta clip((F - mu) / max(sigma, 1e-6), -clip, clip).

    Shapes: r_logits [K, num_bins], f_logit [K, 1] -> [K, 1].
    """
    cfg = model.cfg
    f = (f_logit - energy_stats[0]) / torch.clamp(energy_stats[1], min=1e-6)
    f = torch.clamp(f, -cfg.contrastive_clip, cfg.contrastive_clip)
    return two_hot_inv(r_logits, cfg) + cfg.contrastive_eta * f


def value_estimate(
    model: WorldModel,
    z: torch.Tensor,
    actions: torch.Tensor,
    task: torch.Tensor | None,
    noise: ValueNoise,
    energy_stats: torch.Tensor,
) -> torch.Tensor:
    """H-step shaped return bootstrapped with the mean of two online Q members.

    Args:
        z: latent(s) [K, Z] or [1, Z] (broadcast to every candidate).
        actions: candidate sequences [K, H, A].
        task: task id [1] or None.
        noise: pi_eps [K, A], q_pair [2].
        energy_stats: (mu, sigma) of F logits [2].

    Shapes: -> [K, 1].
    """
    cfg = model.cfg
    K = actions.shape[0]
    z = z.expand(K, z.shape[-1])
    gamma = discount(model, task)
    G = torch.zeros(K, 1, device=z.device)
    disc: torch.Tensor | float = 1.0
    term = torch.zeros(K, 1, device=z.device)
    for t in range(actions.shape[1]):
        a_t = actions[:, t]
        r = shaped_reward(model, model.reward(z, a_t, task), model.F(z, a_t, task), energy_stats)
        z = model.next(z, a_t, task)
        G = G + disc * (1.0 - term) * r
        disc = disc * gamma
        if cfg.episodic:
            done = (torch.sigmoid(model.termination(z, task)) > 0.5).float()
            term = torch.clamp(term + done, max=1.0)
    a_H, _ = model.pi(z, task, noise.pi_eps)
    q = two_hot_inv(model.Q(z, a_H, task)[noise.q_pair], cfg).mean(0)
    return G + disc * (1.0 - term) * q


def top_indices(v: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` largest values, decreasing (first index on ties). Shapes: [N]."""
    return torch.sort(v, descending=True, stable=True).indices[:count]


def warm_start(prev_plan: torch.Tensor, t0: bool) -> torch.Tensor:
    """zeros [H, A] at t0, else the previous plan shifted by one step (zeros appended)."""
    if t0:
        return torch.zeros_like(prev_plan)
    return torch.cat([prev_plan[1:], torch.zeros_like(prev_plan[:1])], dim=0)


def action_mask(model: WorldModel, task: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """Action mask of the task [A] (ones single-task)."""
    mask = model.mask(task)
    if mask is None:
        return torch.ones(model.cfg.action_dim, device=device)
    return mask.reshape(-1, model.cfg.action_dim)[0]


def policy_rollouts(
    model: WorldModel,
    z: torch.Tensor,
    task: torch.Tensor | None,
    pi_eps: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Policy-prior trajectories from one latent.

    Shapes: z [1, Z], pi_eps [H, P, A], mask [A] -> [P, H, A].
    """
    P = pi_eps.shape[1]
    zp = z.expand(P, z.shape[-1])
    steps = []
    for h in range(pi_eps.shape[0]):
        ap, _ = model.pi(zp, task, pi_eps[h])
        ap = torch.clamp(mask * ap, -1.0, 1.0)
        steps.append(ap)
        zp = model.next(zp, ap, task)
    return torch.stack(steps, dim=1)
