"""Pure loss functions of one update (spec "Update" steps 1-4 and 6; anatomy 3).

Nothing here steps an optimiser or changes state: each function returns loss tensors (with
gradient where the spec has one) and the values the caller commits (new F statistics, new
RunningScale value).

Shapes: H horizon, B batch, Z latent, A action, K num_bins, Nq members, M mlp_dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mbdpo_core.noise import ScoreNoise, UpdateNoise

from .math import noise_schedule, soft_ce, two_hot_inv
from .planners.fused import PlanningHeads
from .planners.value import value_estimate
from .world_model import WorldModel


@dataclass(frozen=True)
class TorchBatch:
    """A Batch on the device: obs [H+1, B, O], action [H, B, A], reward/terminated [H, B, 1],
    task [B] (int64) or None, gamma [B, 1] or a float."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    task: torch.Tensor | None
    gamma: torch.Tensor | float


def rho_weights(rho: float, n: int, device: torch.device) -> torch.Tensor:
    """rho^t for t = 0..n-1. Shapes: [n]."""
    return rho ** torch.arange(n, dtype=torch.float32, device=device)


@torch.no_grad()
def td_targets(
    model: WorldModel, batch: TorchBatch, noise: UpdateNoise, fast: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded next observations and TD targets (no gradient).

    fast: evaluate only the two target members of the pair (else all, then pick the pair).

    Shapes: -> (next_z [H, B, Z], td [H, B, 1]).
    """
    next_z = model.encode(batch.obs[1:], batch.task)
    a_next, _ = model.pi(next_z, batch.task, noise.target_pi_eps)
    pair = noise.target_q_pair
    if fast:
        logits = model.Q(next_z, a_next, batch.task, target=True, members=pair)
    else:
        logits = model.Q(next_z, a_next, batch.task, target=True)[pair]
    q_next = two_hot_inv(logits, model.cfg).min(0).values
    return next_z, batch.reward + batch.gamma * (1.0 - batch.terminated) * q_next


def rollout(model: WorldModel, batch: TorchBatch) -> torch.Tensor:
    """zs[0] = encode(obs[0]); zs[t+1] = next(zs[t], action[t]) (with gradient). -> [H+1, B, Z]."""
    zs = [model.encode(batch.obs[0], batch.task)]
    for t in range(batch.action.shape[0]):
        zs.append(model.next(zs[t], batch.action[t], batch.task))
    return torch.stack(zs)


def model_losses(
    model: WorldModel,
    batch: TorchBatch,
    zs: torch.Tensor,
    next_z: torch.Tensor,
    td: torch.Tensor,
    q_keep: torch.Tensor,
    fast: bool = True,
) -> dict[str, torch.Tensor]:
    """Consistency, reward, value and termination losses (scalars with gradient).

    fast: reward and Q first layers as one matmul (model.reward_and_Q).
    """
    cfg = model.cfg
    H = batch.action.shape[0]
    rho = rho_weights(cfg.rho, H, zs.device)
    consistency = (rho * (zs[1:] - next_z).square().mean(dim=(1, 2))).sum() / H
    if fast:
        r_logits, qs = model.reward_and_Q(zs[:H], batch.action, batch.task, q_keep)
    else:
        r_logits = model.reward(zs[:H], batch.action, batch.task)
        qs = model.Q(zs[:H], batch.action, batch.task, keep=q_keep)  # [Nq, H, B, K]
    r_ce = soft_ce(r_logits, batch.reward, cfg)
    reward_loss = (rho * r_ce.mean(dim=(1, 2))).sum() / H
    q_ce = soft_ce(qs, td.unsqueeze(0).expand(qs.shape[0], *td.shape), cfg)
    value_loss = (rho * q_ce.mean(dim=(2, 3)).sum(0)).sum() / (H * cfg.num_q)
    termination_loss = torch.zeros((), device=zs.device)
    if cfg.episodic:
        logits = model.termination(zs[1:], batch.task)
        termination_loss = F.binary_cross_entropy_with_logits(logits, batch.terminated)
    return {
        "consistency_loss": consistency,
        "reward_loss": reward_loss,
        "value_loss": value_loss,
        "termination_loss": termination_loss,
    }


def energy_pairs(model: WorldModel, batch: TorchBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Positive actions and task ids for the energy loss, per cfg.energy_pairing.

    aligned: each latent with its own action; published: the published mis-pairing
    reshape(transpose(action, (1, 0, 2)), (H, B, A)). Shapes: -> ([H, B, A], [H, B] | None).
    """
    action, task = batch.action, batch.task
    H, B, A = action.shape
    if model.cfg.energy_pairing != "published":
        return action, task
    a_pos = action.transpose(0, 1).reshape(H, B, A)
    task_e = None if task is None else task[None].expand(H, B).T.reshape(H, B)
    return a_pos, task_e


def energy_loss(
    model: WorldModel,
    zs: torch.Tensor,
    batch: TorchBatch,
    noise: UpdateNoise,
    energy_stats: torch.Tensor,
    fast: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE of F on positives vs the hardest of (pi, noisy pi, uniform); latents detached.

    fast: the [z, e] part of F's first layer is computed once for the positive, the three
    candidates and the negative (they share the latents).

    Returns (loss, new (mu, sigma) [2]). Shapes: zs [H+1, B, Z].
    """
    cfg = model.cfg
    H = batch.action.shape[0]
    zf = zs[:H].detach()
    a_pos, task_e = energy_pairs(model, batch)
    if fast:
        hz = model.energy_z_part(zf, task_e)

        def energy(a: torch.Tensor, grad: bool = True) -> torch.Tensor:
            return model.energy_from(hz if grad else hz.detach(), a)
    else:

        def energy(a: torch.Tensor, grad: bool = True) -> torch.Tensor:
            return model.F(zf.expand(*a.shape[:-1], zf.shape[-1]), a, task_e)

    pos = energy(a_pos)
    with torch.no_grad():
        a_pi, _ = model.pi(zf, task_e, noise.energy_pi_eps)
        a_noisy = torch.clamp(a_pi + cfg.contrastive_neg_noise * noise.energy_gauss, -1.0, 1.0)
        cands = torch.stack([a_pi, a_noisy, noise.energy_uniform])  # [3, H, B, A]
        logits = energy(cands, grad=False)[..., 0]  # [3, H, B]
        pick = torch.argmax(logits, dim=0)  # first candidate on ties
        a_neg = torch.gather(cands, 0, pick[None, ..., None].expand(1, *a_pi.shape))[0]
    neg = energy(a_neg)
    loss = 0.5 * (
        F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
        + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
    )
    with torch.no_grad():
        both = torch.cat([pos.reshape(-1), neg.reshape(-1)])
        m = cfg.contrastive_momentum
        mu = m * energy_stats[0] + (1.0 - m) * both.mean()
        sigma = m * energy_stats[1] + (1.0 - m) * torch.clamp(both.std(unbiased=False), min=1e-6)
    return loss, torch.stack([mu, sigma])


def score_loss(
    model: WorldModel,
    z_star: torch.Tensor,
    task: torch.Tensor | None,
    noise: ScoreNoise,
    energy_stats: torch.Tensor,
    fast: bool = True,
) -> torch.Tensor:
    """MSE of the score net to a Monte-Carlo score target at level noise.tau.

    z_star [Z] (not detached: the encoder gets this gradient); task [1] or None.
    """
    cfg = model.cfg
    _, ab = noise_schedule(cfg, z_star.device)
    ab_tau = ab[noise.tau]
    x_tau = noise.x_tau
    m, s = x_tau / torch.sqrt(ab_tau), torch.sqrt((1.0 - ab_tau) / ab_tau)
    a0 = torch.clamp(m + s * noise.sample_eps, -1.0, 1.0)  # [S, H, A]
    with torch.no_grad():
        z0 = z_star.detach()[None]
        if fast:
            v = PlanningHeads(model, z0, task, energy_stats).value(a0, noise.value)
        else:
            v = value_estimate(model, z0, a0, task, noise.value, energy_stats)
        v = torch.nan_to_num(v[:, 0], nan=0.0)
        sv = v.std() if v.numel() > 1 else torch.zeros((), device=v.device)
        w = torch.softmax(
            ((v - v.mean()) / (sv + 1e-6)) / max(cfg.diffusion_temperature, 1e-6), dim=0
        )
        a_bar = torch.einsum("s,sha->ha", w, a0)
        target = (-x_tau + torch.sqrt(ab_tau) * a_bar) / (1.0 - ab_tau + 1e-8)
    pred = model.score(z_star[None], x_tau[None], noise.tau, task)[0]
    return (pred - target).square().mean()


def policy_loss(
    model: WorldModel,
    zs: torch.Tensor,
    task: torch.Tensor | None,
    noise: UpdateNoise,
    scale: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Policy objective at detached latents, Q parameters as constants.

    Returns (loss, new RunningScale value, info with pi_entropy, pi_scaled_entropy).
    Shapes: zs [H+1, B, Z] (detached), scale [].
    """
    cfg = model.cfg
    a, info = model.pi(zs, task, noise.pi_eps)
    logits = model.Q(zs, a, task, keep=noise.pi_q_keep, members=noise.pi_q_pair, detach=True)
    q = two_hot_inv(logits, cfg).mean(0)  # [H+1, B, 1]
    with torch.no_grad():
        p5, p95 = torch.quantile(q[0].reshape(-1), torch.tensor([0.05, 0.95], device=q.device))
        new_scale = scale + cfg.tau * (torch.clamp(p95 - p5, min=1.0) - scale)
    per_step = (-(cfg.entropy_coef * info["scaled_entropy"] + q / new_scale)).mean(dim=(1, 2))
    loss = (rho_weights(cfg.rho, zs.shape[0], zs.device) * per_step).mean()
    return (
        loss,
        new_scale,
        {
            "pi_entropy": info["entropy"].mean().detach(),
            "pi_scaled_entropy": info["scaled_entropy"].mean().detach(),
        },
    )
