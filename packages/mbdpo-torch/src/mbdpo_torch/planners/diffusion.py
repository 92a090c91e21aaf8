"""The MBDPO diffusion planner (spec "Diffusion planner", anatomy 4.2 and 4.3).

Reverse steps tau = T-1 .. 1 over a plan x [H, A]. Monte-Carlo score: sample N clean sequences
around x / sqrt(alpha_bar_tau), value them with the model, softmax-weight the top E; or, in
score-only mode, the learned score network.
"""

from __future__ import annotations

import torch
from mbdpo_core.noise import DiffusionNoise, ValueNoise

from ..math import noise_schedule
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
    noise: DiffusionNoise,
    energy_stats: torch.Tensor,
    fast: bool = True,
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
        fast: use the fused value estimate (same numbers, fewer FLOPs).

    Shapes: -> (action [A], plan [H, A]).
    """
    cfg = model.cfg
    alpha, ab = noise_schedule(cfg, z.device)
    T = ab.shape[0]
    mask = action_mask(model, task, z.device)
    x = torch.sqrt(ab[T - 1]) * warm_start(prev_plan, t0) * mask
    if cfg.score_only_inference:
        for tau in range(T - 1, 0, -1):
            score = model.score(z, x[None], tau, task)[0]
            x = (x + (1.0 - ab[tau]) * score) / torch.sqrt(alpha[tau]) * mask
    else:
        N, E = cfg.diffusion_num_samples, cfg.diffusion_num_elites
        heads = PlanningHeads(model, z, task, energy_stats) if fast else None
        for i, tau in enumerate(range(T - 1, 0, -1)):
            m = x / torch.sqrt(ab[tau])
            s = torch.sqrt((1.0 - ab[tau]) / ab[tau])
            samples = torch.clamp(mask * (m + s * noise.sample_eps[i]), -1.0, 1.0)  # [N, H, A]
            P = noise.pi_eps.shape[2]
            if P > 0:
                rollouts = (
                    heads.rollouts(noise.pi_eps[i], mask)
                    if heads
                    else policy_rollouts(model, z, task, noise.pi_eps[i], mask)
                )
                samples = torch.cat([rollouts, samples[P:]], dim=0)
            vnoise = ValueNoise(noise.value_pi_eps[i], noise.value_q_pair[i])
            if heads is not None:
                v = heads.value(samples, vnoise)
            else:
                v = value_estimate(model, z, samples, task, vnoise, energy_stats)
            v = torch.nan_to_num(v[:, 0], nan=0.0)
            sv = v.std()
            sv = torch.where(sv < 1e-4, torch.ones_like(sv), sv)
            logits = ((v - v.mean()) / sv) / max(cfg.diffusion_temperature, 1e-6)
            if 0 < E < N:
                idx = top_indices(v, E)
                logits, samples = logits[idx], samples[idx]
            w = torch.softmax(logits, dim=0)
            a_bar = torch.einsum("n,nha->ha", w, samples)
            score = (-x + torch.sqrt(ab[tau]) * a_bar) / (1.0 - ab[tau] + 1e-8)
            x = (x + (1.0 - ab[tau]) * score) / torch.sqrt(alpha[tau]) * mask
    plan_x = torch.clamp(mask * x, -1.0, 1.0)
    action = plan_x[0]
    if not eval_mode:
        action = torch.clamp(
            mask * (action + cfg.diffusion_action_noise * noise.action_eps), -1.0, 1.0
        )
    return action, plan_x
