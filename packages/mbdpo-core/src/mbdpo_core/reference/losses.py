"""Numpy oracle of the forward values of one update (docs/method.md#update).

No gradients here: these are the loss values, new statistics and latents a backend's update
must reproduce for the same parameters, batch and noise bundle. Computes in float64.

Shapes: H horizon, B batch, Z latent_dim, A action_dim, O obs dim, Nq num_q, M mlp_dim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import model
from .augment import random_shift
from .math import bce_with_logits, soft_ce, softmax
from .planning import value_estimate
from .scale import RunningScale
from .schedule import noise_schedule

if TYPE_CHECKING:
    from ..batch import Batch
    from ..config.schema import Config
    from ..noise import ScoreNoise, UpdateNoise

Params = dict[str, np.ndarray]


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _rho_weights(cfg: Config, n: int) -> np.ndarray:
    return cfg.rho ** np.arange(n, dtype=np.float64)


def energy_candidates(
    params: Params, cfg: Config, zf: np.ndarray, task: Any, noise: UpdateNoise
) -> np.ndarray:
    """Hard negative per latent: the candidate (pi, noisy pi, uniform) with the largest F logit.

    Shapes: zf [H, B, Z] -> [H, B, A].
    """
    a_pi, _ = model.pi(params, cfg, zf, task, noise.energy_pi_eps)
    a_noisy = np.clip(a_pi + cfg.energy_neg_noise * _f64(noise.energy_gauss), -1.0, 1.0)
    cands = np.stack([a_pi, a_noisy, _f64(noise.energy_uniform)])  # [3, H, B, A]
    logits = np.stack([model.F(params, cfg, zf, c, task)[..., 0] for c in cands])  # [3, H, B]
    pick = np.argmax(logits, axis=0)  # first candidate on ties
    return np.take_along_axis(cands, pick[None, ..., None], axis=0)[0]


def _score_loss(
    params: Params, cfg: Config, z_star: np.ndarray, task: Any, noise: ScoreNoise, stats
) -> float:
    """Monte-Carlo score target at one random level and the score net's squared error.

    The target's value estimate runs as in the published update: with the energy statistics
    `stats` after this batch's energy loss and with Q dropout (noise.value.q_keep).
    """
    _, _, ab = noise_schedule(cfg.diffusion_steps, cfg.diffusion_beta0, cfg.diffusion_betaT)
    tau = int(noise.tau)
    x_tau = _f64(noise.x_tau)
    m, s = x_tau / np.sqrt(ab[tau]), np.sqrt((1.0 - ab[tau]) / ab[tau])
    a0 = np.clip(m + s * _f64(noise.sample_eps), -1.0, 1.0)  # [S, H, A]
    zs = np.repeat(z_star[None], a0.shape[0], axis=0)
    v = np.nan_to_num(value_estimate(params, cfg, zs, a0, task, noise.value, stats)[:, 0])
    sv = np.std(v, ddof=1) if v.size > 1 else 0.0
    w = softmax(((v - v.mean()) / (sv + 1e-6)) / max(cfg.diffusion_temperature, 1e-6))
    a_bar = np.einsum("s,sha->ha", w, a0)
    target = (-x_tau + np.sqrt(ab[tau]) * a_bar) / (1.0 - ab[tau] + 1e-8)
    pred = model.score(params, cfg, z_star, x_tau, tau, task)
    return float(np.mean((pred - target) ** 2))


def world_model_losses(
    params: Params,
    cfg: Config,
    batch: Batch,
    noise: UpdateNoise,
    energy_stats: tuple[float, float] = (0.0, 1.0),
) -> dict[str, Any]:
    """Loss values of the world-model step (before any parameter change).

    Returns a dict of floats consistency_loss, reward_loss, value_loss, termination_loss,
    energy_loss, score_loss, total_loss, energy_mean and energy_std (the updated F statistics),
    plus arrays zs [H+1, B, Z] (rolled-out latents) and td [H, B, 1] (TD targets).

    obs=rgb: every observation is first shifted by noise.obs_shift (augment.random_shift).

    Shapes: batch.obs [H+1, B, O] (rgb: [H+1, B, 9, 64, 64] uint8), action [H, B, A],
    reward/terminated [H, B, 1], task [B].
    """
    obs, action = _f64(batch.obs), _f64(batch.action)
    if cfg.obs == "rgb":
        if noise.obs_shift is None:
            raise ValueError("obs=rgb needs UpdateNoise.obs_shift [H+1, B, 2] (random shift).")
        obs = random_shift(batch.obs, noise.obs_shift)
    rew, terminated = _f64(batch.reward), _f64(batch.terminated)
    task = None if batch.task is None else np.asarray(batch.task, dtype=np.int64)
    H, B, A = action.shape
    if cfg.multitask:
        gamma = np.asarray(cfg.discounts, dtype=np.float64)[task][:, None]
    else:
        gamma = float(cfg.discounts[0])

    # 1. TD targets
    next_z = model.encode(params, cfg, obs[1:], task)
    a_next, _ = model.pi(params, cfg, next_z, task, noise.target_pi_eps)
    q_next = model.q_pair_values(
        params, cfg, next_z, a_next, noise.target_q_pair, task, target=True
    ).min(axis=0)
    td = rew + gamma * (1.0 - terminated) * q_next

    # 2. latent rollout and the H-step losses
    zs = [model.encode(params, cfg, obs[0], task)]
    for t in range(H):
        zs.append(model.next(params, cfg, zs[t], action[t], task))
    zs = np.stack(zs)
    rho = _rho_weights(cfg, H)
    consistency = np.sum(rho * ((zs[1:] - next_z) ** 2).mean(axis=(1, 2))) / H
    r_ce = soft_ce(model.reward(params, cfg, zs[:H], action, task), rew, cfg=cfg)  # [H, B, 1]
    reward_loss = np.sum(rho * r_ce.mean(axis=(1, 2))) / H
    qs = model.Q(params, cfg, zs[:H], action, task, keep=noise.q_keep)  # [Nq, H, B, Kb]
    q_ce = soft_ce(qs, td[None], cfg=cfg)  # [Nq, H, B, 1]
    value_loss = np.sum(rho * q_ce.mean(axis=(2, 3)).sum(axis=0)) / (H * cfg.num_q)
    termination_loss = 0.0
    if cfg.episodic:
        logits = model.termination(params, cfg, zs[1:], task)
        termination_loss = float(np.mean(bce_with_logits(logits, terminated)))

    # 3. energy loss on detached latents
    zf = zs[:H]
    a_pos, task_e = action, task
    if cfg.energy_pairing == "published":
        a_pos = np.transpose(action, (1, 0, 2)).reshape(H, B, A)
        if task is not None:
            task_e = np.broadcast_to(task[None], (H, B)).T.reshape(H, B)
    pos = model.F(params, cfg, zf, a_pos, task_e)
    a_neg = energy_candidates(params, cfg, zf, task_e, noise)
    neg = model.F(params, cfg, zf, a_neg, task_e)
    energy_loss = 0.5 * (np.mean(bce_with_logits(pos, 1.0)) + np.mean(bce_with_logits(neg, 0.0)))
    both = np.concatenate([pos.reshape(-1), neg.reshape(-1)])
    m = cfg.energy_momentum
    mu = m * energy_stats[0] + (1.0 - m) * both.mean()
    sigma = m * energy_stats[1] + (1.0 - m) * max(both.std(), 1e-6)

    # 4. score loss
    score_loss = 0.0
    if cfg.use_score_network:
        if noise.score is None:
            raise ValueError("use_score_network=true needs UpdateNoise.score (a ScoreNoise).")
        task0 = None if task is None else int(task[0])
        score_loss = _score_loss(params, cfg, zs[0, 0], task0, noise.score, (mu, sigma))

    total = (
        cfg.consistency_coef * consistency
        + cfg.reward_coef * reward_loss
        + cfg.value_coef * value_loss
        + cfg.termination_coef * termination_loss
        + cfg.energy_coef * energy_loss
        + cfg.score_loss_coef * score_loss
    )
    return {
        "consistency_loss": float(consistency),
        "reward_loss": float(reward_loss),
        "value_loss": float(value_loss),
        "termination_loss": float(termination_loss),
        "energy_loss": float(energy_loss),
        "score_loss": float(score_loss),
        "total_loss": float(total),
        "energy_mean": float(mu),
        "energy_std": float(sigma),
        "zs": zs,
        "td": td,
    }


def policy_loss(
    params: Params,
    cfg: Config,
    zs: Any,
    noise: UpdateNoise,
    scale_value: float,
    task: Any = None,
) -> tuple[float, float, dict[str, float]]:
    """Policy objective at the rolled-out latents (pass the Q parameters after the WM step).

    Returns (pi_loss, new RunningScale value, info with pi_entropy, pi_scaled_entropy, pi_scale).

    Shapes: zs [H+1, B, Z], task [B] or None.
    """
    zs = _f64(zs)
    a, info = model.pi(params, cfg, zs, task, noise.pi_eps)
    q = model.q_pair_values(params, cfg, zs, a, noise.pi_q_pair, task, keep=noise.pi_q_keep).mean(
        axis=0
    )  # [H+1, B, 1]
    scale = RunningScale(cfg.tau, scale_value)
    scale.update(q[0])
    q = scale(q)
    per_step = (-(cfg.entropy_coef * info["scaled_entropy"] + q)).mean(axis=(1, 2))
    loss = float(np.mean(_rho_weights(cfg, zs.shape[0]) * per_step))
    return (
        loss,
        scale.value,
        {
            "pi_entropy": float(info["entropy"].mean()),
            "pi_scaled_entropy": float(info["scaled_entropy"].mean()),
            "pi_scale": scale.value,
        },
    )


def polyak(params: Params, tau: float) -> Params:
    """New parameter dict with target_q.* <- target_q.* + tau (q.* - target_q.*)."""
    out = dict(params)
    for name, value in params.items():
        if name.startswith("target_q."):
            online = _f64(params[name[len("target_") :]])
            out[name] = _f64(value) + tau * (online - _f64(value))
    return out
