"""TD-MPC2's MPPI over the MBDPO value estimate (docs/method.md#mppi)."""

from __future__ import annotations

import torch
from mbdpo_core.noise import MppiNoise, ValueNoise

from ..fused import PlanningHeads
from ..value import clean_values
from ..world_model import WorldModel
from .common import action_mask, elite_indices, policy_rollouts, warm_start


@torch.no_grad()
def plan(
    model: WorldModel,
    z: torch.Tensor,
    prev_plan: torch.Tensor,
    t0: bool,
    eval_mode: bool,
    task: torch.Tensor | None,
    noise: MppiNoise,
    energy_stats: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One act of MPPI; elites are ordered by decreasing value.

    Args:
        model, z, prev_plan, t0, eval_mode, task, energy_stats: as planners.diffusion.plan.
        noise: pi_eps [H, P, A], sample_eps [I, N-P, H, A], value_pi_eps [I, N, A],
            value_q_pair [I, 2], gumbel [E], action_eps [A].

    Shapes: z [1, Z], prev_plan [H, A] -> (action [A], plan [H, A]) with plan the final mean.
    """
    cfg = model.cfg
    mask = action_mask(model, task)
    heads = PlanningHeads(model, z, task, energy_stats)
    P = noise.pi_eps.shape[1]
    pi_trajs = policy_rollouts(model, z, task, noise.pi_eps, mask) if P > 0 else None
    mean = warm_start(prev_plan, t0)
    std = torch.full_like(mean, cfg.max_std)
    for i in range(noise.sample_eps.shape[0]):
        actions = torch.clamp(mean + std * noise.sample_eps[i], -1.0, 1.0)
        if pi_trajs is not None:
            actions = torch.cat([pi_trajs, actions], dim=0)
        actions = actions * mask
        v = heads.value(actions, ValueNoise(noise.value_pi_eps[i], noise.value_q_pair[i]))
        v = clean_values(v[:, 0])
        idx = elite_indices(v, cfg.num_elites)
        v_elite, elites = v[idx], actions[idx]
        w = torch.exp(cfg.temperature * (v_elite - v_elite.max()))
        w = w / w.sum()
        total = w.sum() + 1e-9
        mean = torch.einsum("e,eha->ha", w, elites) / total
        var = torch.einsum("e,eha->ha", w, (elites - mean).square()) / total
        std = torch.clamp(torch.sqrt(var), cfg.min_std, cfg.max_std) * mask
    j = torch.argmax(torch.log(w) + noise.gumbel[: w.shape[0]])
    action = elites[j, 0]
    if not eval_mode:
        action = action + std[0] * noise.action_eps
    return torch.clamp(action, -1.0, 1.0), mean
