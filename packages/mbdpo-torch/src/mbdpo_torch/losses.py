"""The losses of one update (docs/method.md#update); mbdpo_core.reference.losses is the oracle.

Nothing here steps an optimiser or changes state: each function returns loss tensors (with
gradient where the method has one) and the values the caller commits (new F statistics, new
RunningScale value).

Shapes: H horizon, B batch, O observation, Z latent, A action, Kb bins, Nq members, M mlp width.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from mbdpo_core.batch import Batch, check_batch
from mbdpo_core.config.schema import Config
from mbdpo_core.metrics import LOSS_COEFS, LOSS_TERMS
from mbdpo_core.noise import ScoreNoise, UpdateNoise
from mbdpo_core.schedule import noise_schedule

from .augment import random_shift
from .data_parallel import _gather_rows, _local_rows, _score_weight
from .fused import energy_from_part, energy_latent_part, reward_and_q
from .math import bce_with_logits, running_scale_update, soft_ce, two_hot_inv
from .value import clean_values, value_estimate
from .world_model import WorldModel


@dataclass(frozen=True)
class DeviceBatch:
    """A Batch on the device: obs [H+1, B, O] (float32, or uint8 rgb), action [H, B, A],
    reward / terminated [H, B, 1], task [B] int64 or None, gamma [B, 1] or a float."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    task: torch.Tensor | None
    gamma: torch.Tensor | float


def device_batch(batch: Batch, cfg: Config, device: torch.device) -> DeviceBatch:
    """A numpy Batch as a DeviceBatch, with the discount of each sample's task.

    Raises:
        ShapeError: a field whose shape does not fit cfg (mbdpo_core.batch.check_batch).
    """
    check_batch(batch, cfg)
    obs = torch.as_tensor(np.asarray(batch.obs), device=device)
    obs = obs if obs.dtype == torch.uint8 else obs.float()
    task, gamma = None, float(cfg.discounts[0])
    if cfg.multitask:
        task = torch.as_tensor(np.asarray(batch.task), device=device).long()
        gamma = torch.tensor(cfg.discounts, device=device)[task][:, None]

    def f32(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)

    return DeviceBatch(
        obs, f32(batch.action), f32(batch.reward), f32(batch.terminated), task, gamma
    )


def _rho_weights(rho: float, n: int, device: torch.device) -> torch.Tensor:
    """rho^t for t = 0..n-1. Shapes: [n]."""
    return rho ** torch.arange(n, dtype=torch.float32, device=device)


@torch.no_grad()
def td_targets(
    model: WorldModel, batch: DeviceBatch, noise: UpdateNoise
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded next observations and TD targets r + gamma (1 - term) min of the target pair's Q
    at a policy action (docs/method.md#td-targets); only the pair's members are evaluated.

    Shapes: -> (next_z [H, B, Z], td [H, B, 1]).
    """
    next_z = model.encode(batch.obs[1:], batch.task)
    a_next, _ = model.pi(next_z, batch.task, noise.target_pi_eps)
    logits = model.Q(next_z, a_next, batch.task, target=True, members=noise.target_q_pair)
    q_next = two_hot_inv(logits, model.cfg).min(0).values
    return next_z, batch.reward + batch.gamma * (1.0 - batch.terminated) * q_next


def rollout(model: WorldModel, batch: DeviceBatch) -> torch.Tensor:
    """zs[0] = encode(obs[0]); zs[t+1] = next(zs[t], action[t]) (with gradient).

    Shapes: -> [H+1, B, Z].
    """
    zs = [model.encode(batch.obs[0], batch.task)]
    for t in range(batch.action.shape[0]):
        zs.append(model.next(zs[t], batch.action[t], batch.task))
    return torch.stack(zs)


def world_model_loss(
    model: WorldModel, batch: DeviceBatch, noise: UpdateNoise, energy_stats: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The world-model objective (docs/method.md#world-model-loss): rgb random shift of every
    observation, TD targets, rollout, consistency / reward / value / termination / energy /
    score terms and their weighted sum.

    Returns (total, aux) with aux: the six LOSS_TERMS, zs [H+1, B, Z], td [H, B, 1] and
    energy_stats (the new (mu, sigma) [2]).
    """
    cfg = model.cfg
    if cfg.obs == "rgb":
        if noise.obs_shift is None:
            raise ValueError("obs=rgb needs UpdateNoise.obs_shift [H+1, B, 2] (random shift).")
        batch = replace(batch, obs=random_shift(batch.obs, noise.obs_shift))
    next_z, td = td_targets(model, batch, noise)
    zs = rollout(model, batch)
    H = batch.action.shape[0]
    rho = _rho_weights(cfg.rho, H, zs.device)
    terms = {"consistency_loss": (rho * (zs[1:] - next_z).square().mean(dim=(1, 2))).sum() / H}
    r_logits, qs = reward_and_q(model, zs[:H], batch.action, batch.task, noise.q_keep)
    r_ce = soft_ce(r_logits, batch.reward, cfg)
    terms["reward_loss"] = (rho * r_ce.mean(dim=(1, 2))).sum() / H
    q_ce = soft_ce(qs, td.unsqueeze(0).expand(qs.shape[0], *td.shape), cfg)  # [Nq, H, B, 1]
    terms["value_loss"] = (rho * q_ce.mean(dim=(2, 3)).sum(0)).sum() / (H * cfg.num_q)
    terms["termination_loss"] = torch.zeros((), device=zs.device)
    if cfg.episodic:
        logits = model.termination(zs[1:], batch.task)
        terms["termination_loss"] = bce_with_logits(logits, batch.terminated).mean()
    terms["energy_loss"], new_stats = energy_loss(model, zs, batch, noise, energy_stats)
    terms["score_loss"] = torch.zeros((), device=zs.device)
    if cfg.use_score_network:
        if noise.score is None:
            raise ValueError("use_score_network=true needs UpdateNoise.score (a ScoreNoise).")
        task0 = None if batch.task is None else batch.task[:1]
        if weight := _score_weight(cfg):  # data-parallel: global row 0, on rank 0
            score = score_loss(model, zs[0, 0], task0, noise.score, new_stats)
            terms["score_loss"] = weight * score
    total = sum(getattr(cfg, LOSS_COEFS[name]) * terms[name] for name in LOSS_TERMS)
    return total, {**terms, "zs": zs, "td": td, "energy_stats": new_stats}


def energy_loss(
    model: WorldModel,
    zs: torch.Tensor,
    batch: DeviceBatch,
    noise: UpdateNoise,
    energy_stats: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE of F on positives vs the hardest of (pi, noisy pi, uniform) on detached latents
    (docs/method.md#energy-head); F's [z, e] part is computed once for all of them.

    Returns (loss, new (mu, sigma) [2]). Shapes: zs [H+1, B, Z].
    """
    cfg = model.cfg
    action, task = batch.action, batch.task
    H, B, A = action.shape
    zf = zs[:H].detach()
    if cfg.energy_pairing == "published":  # the published code's mis-pairing, over all rows
        action = _gather_rows(action, cfg, 1)
        Bg = action.shape[1]
        action = _local_rows(action.transpose(0, 1).reshape(H, Bg, A), cfg, 1)
        if task is not None:
            task = _gather_rows(task, cfg, 0)
            task = _local_rows(task[None].expand(H, Bg).T.reshape(H, Bg), cfg, 1)
    hz = energy_latent_part(model, zf, task)
    pos = energy_from_part(model, hz, action)
    with torch.no_grad():
        a_pi, _ = model.pi(zf, task, noise.energy_pi_eps)
        a_noisy = torch.clamp(a_pi + cfg.energy_neg_noise * noise.energy_gauss, -1.0, 1.0)
        cands = torch.stack([a_pi, a_noisy, noise.energy_uniform])  # [3, H, B, A]
        pick = torch.argmax(energy_from_part(model, hz, cands)[..., 0], dim=0)  # first on ties
        a_neg = torch.gather(cands, 0, pick[None, ..., None].expand(1, *a_pi.shape))[0]
    neg = energy_from_part(model, hz, a_neg)
    loss = 0.5 * (bce_with_logits(pos, 1.0).mean() + bce_with_logits(neg, 0.0).mean())
    with torch.no_grad():
        both = _gather_rows(torch.cat([pos.reshape(-1), neg.reshape(-1)]), cfg, 0)
        m = cfg.energy_momentum
        mu = m * energy_stats[0] + (1.0 - m) * both.mean()
        sigma = m * energy_stats[1] + (1.0 - m) * torch.clamp(both.std(unbiased=False), min=1e-6)
    return loss, torch.stack([mu, sigma])


def score_loss(
    model: WorldModel,
    z_star: torch.Tensor,
    task: torch.Tensor | None,
    noise: ScoreNoise,
    energy_stats: torch.Tensor,
) -> torch.Tensor:
    """Squared error of the score net to a Monte-Carlo score target at level noise.tau
    (docs/method.md#score-network). As published, the target's value estimate uses the energy
    statistics after this batch (`energy_stats`) and Q dropout (noise.value.q_keep).

    Shapes: z_star [Z] (not detached: the encoder gets this gradient), task [1] or None -> [].
    """
    cfg = model.cfg
    ab_tau = torch.as_tensor(noise_schedule(cfg)[1], device=z_star.device)[noise.tau]
    x_tau = noise.x_tau
    m, s = x_tau / torch.sqrt(ab_tau), torch.sqrt((1.0 - ab_tau) / ab_tau)
    a0 = torch.clamp(m + s * noise.sample_eps, -1.0, 1.0)  # [S, H, A]
    with torch.no_grad():
        v = value_estimate(model, z_star.detach()[None], a0, task, noise.value, energy_stats)
        v = clean_values(v[:, 0])
        sv = v.std() if v.numel() > 1 else torch.zeros((), device=v.device)
        logits = ((v - v.mean()) / (sv + 1e-6)) / max(cfg.diffusion_temperature, 1e-6)
        a_bar = torch.einsum("s,sha->ha", torch.softmax(logits, dim=0), a0)
        target = (-x_tau + torch.sqrt(ab_tau) * a_bar) / (1.0 - ab_tau + 1e-8)
    pred = model.score(z_star[None], x_tau[None], noise.tau, task)[0]
    return (pred - target).square().mean()


def policy_loss(
    model: WorldModel,
    zs: torch.Tensor,
    task: torch.Tensor | None,
    noise: UpdateNoise,
    scale: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Policy objective at detached latents, Q parameters as constants
    (docs/method.md#policy-objective); `model` holds the Q parameters after the model step.

    Returns (loss, info) with info pi_entropy, pi_scaled_entropy and pi_scale (the new
    RunningScale value). Shapes: zs [H+1, B, Z], task [B] or None, scale [].
    """
    cfg = model.cfg
    a, info = model.pi(zs, task, noise.pi_eps)
    logits = model.Q(zs, a, task, keep=noise.pi_q_keep, members=noise.pi_q_pair, detach=True)
    q = two_hot_inv(logits, cfg).mean(0)  # [H+1, B, 1]
    new_scale = running_scale_update(scale, _gather_rows(q[0], cfg, 0), cfg.tau)
    per_step = (-(cfg.entropy_coef * info["scaled_entropy"] + q / new_scale)).mean(dim=(1, 2))
    loss = (_rho_weights(cfg.rho, zs.shape[0], zs.device) * per_step).mean()
    return loss, {
        "pi_entropy": info["entropy"].mean().detach(),
        "pi_scaled_entropy": info["scaled_entropy"].mean().detach(),
        "pi_scale": new_scale,
    }
