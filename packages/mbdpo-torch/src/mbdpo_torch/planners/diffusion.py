"""The MBDPO diffusion planner (docs/method.md#diffusion-planner).

Reverse steps tau = T-1 .. 1 over a plan x [H, A]. Monte-Carlo score: sample N clean sequences
around x / sqrt(alpha_bar_tau), value them with the model, softmax-weight the top E; or, when
cfg.score_net_plans, the learned score network (the published code then computes the
Monte-Carlo score too and discards it; skipped here, same actions).
"""

from __future__ import annotations

import torch
from mbdpo_core.noise import DiffusionNoise, ValueNoise
from mbdpo_core.schedule import noise_schedule

from ..fused import PlanningHeads
from ..value import clean_values
from ..world_model import WorldModel
from .common import action_mask, policy_rollouts, warm_start, weighted_mean


@torch.no_grad()
def plan(
    model: WorldModel,
    z: torch.Tensor,
    prev_plan: torch.Tensor,
    t0: bool,
    eval_mode: bool,
    task: torch.Tensor | None,
    noise: DiffusionNoise,
    energy_stats: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One act of the diffusion planner.

    Args:
        model: the world model.
        z: the encoded observation [1, Z].
        prev_plan: the previous plan (warm start) [H, A].
        t0: first step of an episode (no warm start).
        eval_mode: no exploration noise when True.
        task: task id [1] or None.
        noise: sample_eps [I, N, H, A], pi_eps [I, H, P, A], value_pi_eps [I, N, A],
            value_q_pair [I, 2], action_eps [A].
        energy_stats: running (mu, sigma) of F logits [2].

    Shapes: -> (action [A], plan [H, A]).
    """
    cfg = model.cfg
    alpha, ab = (torch.as_tensor(s, device=z.device) for s in noise_schedule(cfg))
    T = ab.shape[0]
    mask = action_mask(model, task)
    x = torch.sqrt(ab[T - 1]) * warm_start(prev_plan, t0) * mask
    heads = None if cfg.score_net_plans else PlanningHeads(model, z, task, energy_stats)
    I, H, P, A = noise.pi_eps.shape
    if heads is not None and P > 0:  # every level's rollouts in one batch: [I, P, H, A]
        eps = noise.pi_eps.transpose(0, 1).reshape(H, I * P, A)
        rollouts = policy_rollouts(model, z, task, eps, mask).reshape(I, P, H, A)
    for i, tau in enumerate(range(T - 1, 0, -1)):
        if heads is None:
            score = model.score(z, x[None], tau, task)[0]
        else:
            m, s = x / torch.sqrt(ab[tau]), torch.sqrt((1.0 - ab[tau]) / ab[tau])
            samples = torch.clamp(mask * (m + s * noise.sample_eps[i]), -1.0, 1.0)  # [N, H, A]
            if P > 0:
                samples = torch.cat([rollouts[i], samples[P:]], dim=0)
            v = heads.value(samples, ValueNoise(noise.value_pi_eps[i], noise.value_q_pair[i]))
            a_bar = weighted_mean(
                clean_values(v[:, 0]), samples, cfg.diffusion_num_elites, cfg.diffusion_temperature
            )
            score = (-x + torch.sqrt(ab[tau]) * a_bar) / (1.0 - ab[tau] + 1e-8)
        x = (x + (1.0 - ab[tau]) * score) / torch.sqrt(alpha[tau]) * mask
    plan_x = torch.clamp(mask * x, -1.0, 1.0)
    action = plan_x[0]
    if not eval_mode:
        action = torch.clamp(
            mask * (action + cfg.diffusion_action_noise * noise.action_eps), -1.0, 1.0
        )
    return action, plan_x
