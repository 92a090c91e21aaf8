"""TD-MPC2's MPPI planner (spec "MPPI", anatomy 4.5), for comparison inside one system."""

from __future__ import annotations

import torch
from mbdpo_core.noise import MppiNoise, ValueNoise

from ..world_model import WorldModel
from .fused import PlanningHeads
from .value import action_mask, policy_rollouts, top_indices, value_estimate, warm_start


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
    fast: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One act of MPPI.

    Args:
        model, z, prev_plan, t0, eval_mode, task, energy_stats, fast: as planners.diffusion.plan.
        noise: pi_eps [H, P, A], sample_eps [I, N-P, H, A], value_pi_eps [I, N, A],
            value_q_pair [I, 2], gumbel [E], action_eps [A].

    Shapes: z [1, Z], prev_plan [H, A] -> (action [A], plan [H, A]).
    """
    cfg = model.cfg
    mask = action_mask(model, task, z.device)
    heads = PlanningHeads(model, z, task, energy_stats) if fast else None
    P = noise.pi_eps.shape[1]
    if P > 0:
        pi_trajs = (
            heads.rollouts(noise.pi_eps, mask)
            if heads
            else policy_rollouts(model, z, task, noise.pi_eps, mask)
        )
    mean = warm_start(prev_plan, t0)
    std = torch.full_like(mean, cfg.max_std)
    for i in range(noise.sample_eps.shape[0]):
        actions = torch.clamp(mean + std * noise.sample_eps[i], -1.0, 1.0)
        if P > 0:
            actions = torch.cat([pi_trajs, actions], dim=0)
        actions = actions * mask
        vnoise = ValueNoise(noise.value_pi_eps[i], noise.value_q_pair[i])
        if heads is not None:
            v = heads.value(actions, vnoise)
        else:
            v = value_estimate(model, z, actions, task, vnoise, energy_stats)
        v = torch.nan_to_num(v[:, 0], nan=0.0)
        idx = top_indices(v, cfg.num_elites)
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
