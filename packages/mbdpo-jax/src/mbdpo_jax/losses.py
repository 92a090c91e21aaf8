"""Pure loss functions of one update (spec "Update" steps 1-4 and 6).

Batch arrays are time-major: obs [H+1, B, O], action [H, B, A], reward/terminated [H, B, 1],
task [B] int or None. Shapes: Z latent, K bins, Nq members, S Monte-Carlo samples.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from mbdpo_core.noise import ScoreNoise, UpdateNoise

from .augment import random_shift
from .math import bce_with_logits, noise_schedule, running_scale_update, soft_ce, two_hot_inv
from .planners.value import clean_values, value_estimate
from .world_model import WorldModel

sg = jax.lax.stop_gradient
Batch = Mapping[str, jax.Array | None]


def rho_weights(rho: float, n: int) -> jax.Array:
    """rho^t for t = 0..n-1. Shapes: [n]."""
    return rho ** jnp.arange(n, dtype=jnp.float32)


def time_major_task(task: jax.Array | None, horizon: int) -> jax.Array | None:
    """Task ids [B] broadcast to [horizon, B] (None stays None)."""
    return None if task is None else jnp.broadcast_to(task, (horizon, task.shape[0]))


def batch_discount(wm: WorldModel, task: jax.Array | None) -> jax.Array | float:
    """gamma per batch element [B, 1] (multi-task) or the single task's gamma."""
    return wm.discounts[task][:, None] if wm.cfg.multitask else wm.cfg.discounts[0]


def td_targets(wm: WorldModel, next_z: jax.Array, batch: Batch, noise: UpdateNoise) -> jax.Array:
    """reward + gamma (1 - terminated) min of two target Q at policy actions (no gradient).

    Only the two members of noise.target_q_pair are evaluated.
    Shapes: next_z [H, B, Z] -> [H, B, 1].
    """
    task = time_major_task(batch["task"], next_z.shape[0])
    a, _ = wm.pi(next_z, task, noise.target_pi_eps)
    q = two_hot_inv(wm.cfg, wm.Q(next_z, a, task, target=True, members=noise.target_q_pair))
    gamma = batch_discount(wm, batch["task"])
    return sg(batch["reward"] + gamma * (1.0 - batch["terminated"]) * jnp.min(q, axis=0))


def rollout(wm: WorldModel, batch: Batch) -> jax.Array:
    """Latents zs[0] = encode(obs[0]), zs[t+1] = next(zs[t], action[t]). Shapes: -> [H+1, B, Z]."""
    zs = [wm.encode(batch["obs"][0], batch["task"])]
    for t in range(batch["action"].shape[0]):
        zs.append(wm.next(zs[t], batch["action"][t], batch["task"]))
    return jnp.stack(zs)


def energy_loss(
    wm: WorldModel, zs: jax.Array, batch: Batch, noise: UpdateNoise, stats: tuple
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """BCE of F on positives vs the hardest of three negatives, on detached latents.

    Returns (loss, (mean, std)) with the updated running statistics of the F logits.
    Shapes: zs [H+1, B, Z]; stats (mu [], sigma []).
    """
    cfg = wm.cfg
    action = batch["action"]
    H, B, A = action.shape
    zf = sg(zs[:H])
    task = time_major_task(batch["task"], H)
    a_pos = action
    if cfg.energy_pairing == "published":
        a_pos = jnp.transpose(action, (1, 0, 2)).reshape(H, B, A)
        task = None if task is None else task.T.reshape(H, B)
    a_pi, _ = wm.pi(zf, task, noise.energy_pi_eps)
    a_noisy = jnp.clip(a_pi + cfg.contrastive_neg_noise * noise.energy_gauss, -1.0, 1.0)
    cands = sg(jnp.stack([a_pi, a_noisy, noise.energy_uniform]))  # [3, H, B, A]
    scores = wm.F(zf[None], cands, None if task is None else task[None])[..., 0]
    pick = jnp.argmax(sg(scores), axis=0)  # first candidate on ties
    a_neg = jnp.take_along_axis(cands, pick[None, ..., None], axis=0)[0]
    pos = wm.F(zf, a_pos, task)
    neg = wm.F(zf, a_neg, task)
    loss = 0.5 * (jnp.mean(bce_with_logits(pos, 1.0)) + jnp.mean(bce_with_logits(neg, 0.0)))
    both = sg(jnp.concatenate([pos.reshape(-1), neg.reshape(-1)]))
    m = cfg.contrastive_momentum
    mu = m * stats[0] + (1.0 - m) * jnp.mean(both)
    sigma = m * stats[1] + (1.0 - m) * jnp.maximum(jnp.std(both), 1e-6)
    return loss, (mu, sigma)


def score_loss(
    wm: WorldModel, z_star: jax.Array, task: jax.Array | None, noise: ScoreNoise, stats: tuple
) -> jax.Array:
    """Squared error of the score net against a Monte-Carlo score target at one level.

    Shapes: z_star [Z] (not detached), task [] or None, noise.sample_eps [S, H, A] -> [].
    """
    cfg = wm.cfg
    _, _, ab = noise_schedule(cfg)
    ab_t = jnp.asarray(ab)[noise.tau]
    m = noise.x_tau / jnp.sqrt(ab_t)
    s = jnp.sqrt((1.0 - ab_t) / ab_t)
    a0 = jnp.clip(m + s * noise.sample_eps, -1.0, 1.0)
    v = value_estimate(wm, sg(z_star)[None], a0, task, noise.value, stats)[:, 0]
    v = sg(clean_values(v))
    sv = jnp.std(v, ddof=1) if v.shape[0] > 1 else 0.0
    w = jax.nn.softmax(((v - jnp.mean(v)) / (sv + 1e-6)) / max(cfg.diffusion_temperature, 1e-6))
    a_bar = jnp.einsum("s,sha->ha", w, a0)
    target = (-noise.x_tau + jnp.sqrt(ab_t) * a_bar) / (1.0 - ab_t + 1e-8)
    pred = wm.score(z_star, noise.x_tau, noise.tau, task)
    return jnp.mean(jnp.square(pred - target))


def world_model_loss(
    wm: WorldModel, batch: Batch, noise: UpdateNoise, stats: tuple
) -> tuple[jax.Array, dict]:
    """Total world-model loss (steps 1-5 of the spec, before the optimizer step).

    Returns (total, aux) with aux: the loss terms (scalars), zs [H+1, B, Z], td [H, B, 1] and
    energy_stats (mu, sigma) updated after the loss. obs=rgb: every observation of the batch is
    first shifted by noise.obs_shift [H+1, B, 2] (augmentation in the update only).
    """
    cfg = wm.cfg
    if cfg.obs == "rgb":
        if noise.obs_shift is None:
            raise ValueError("obs=rgb needs UpdateNoise.obs_shift [H+1, B, 2] (random shift).")
        batch = {**batch, "obs": random_shift(batch["obs"], noise.obs_shift)}
    H = batch["action"].shape[0]
    task_t = time_major_task(batch["task"], H)
    next_z = sg(wm.encode(batch["obs"][1:], task_t))
    td = td_targets(wm, next_z, batch, noise)
    zs = rollout(wm, batch)
    rho = rho_weights(cfg.rho, H)
    consistency = jnp.sum(rho * jnp.mean(jnp.square(zs[1:] - next_z), axis=(1, 2))) / H
    r_ce = soft_ce(cfg, wm.reward(zs[:H], batch["action"], task_t), batch["reward"])
    reward_loss = jnp.sum(rho * jnp.mean(r_ce, axis=(1, 2))) / H
    qs = wm.Q(zs[:H], batch["action"], task_t, keep=noise.q_keep)  # [Nq, H, B, K]
    q_ce = soft_ce(cfg, qs, td[None])
    value_loss = jnp.sum(rho * jnp.sum(jnp.mean(q_ce, axis=(2, 3)), axis=0)) / (H * cfg.num_q)
    termination_loss = jnp.float32(0.0)
    if cfg.episodic:
        logits = wm.termination(zs[1:], task_t)
        termination_loss = jnp.mean(bce_with_logits(logits, batch["terminated"]))
    e_loss, new_stats = energy_loss(wm, zs, batch, noise, stats)
    s_loss = jnp.float32(0.0)
    if cfg.use_score_network:
        task0 = None if batch["task"] is None else batch["task"][0]
        s_loss = score_loss(wm, zs[0, 0], task0, noise.score, stats)
    total = (
        cfg.consistency_coef * consistency
        + cfg.reward_coef * reward_loss
        + cfg.value_coef * value_loss
        + cfg.termination_coef * termination_loss
        + cfg.contrastive_coef * e_loss
        + cfg.score_loss_coef * s_loss
    )
    aux = {
        "consistency_loss": consistency,
        "reward_loss": reward_loss,
        "value_loss": value_loss,
        "termination_loss": termination_loss,
        "energy_loss": e_loss,
        "score_loss": s_loss,
        "total_loss": total,
        "zs": zs,
        "td": td,
        "energy_stats": new_stats,
    }
    return total, aux


def policy_loss(
    wm: WorldModel, zs: jax.Array, task: jax.Array | None, noise: UpdateNoise, scale: jax.Array
) -> tuple[jax.Array, dict]:
    """Policy objective (differentiate w.r.t. the pi.* parameters only: Q stays a constant and
    the gradient reaches pi through its action).

    `wm` must hold the Q parameters after the world-model step. Returns (loss, info) with info
    pi_entropy, pi_scaled_entropy, pi_scale (the updated RunningScale value).
    Shapes: zs [H+1, B, Z] (detached), task [B] or None, scale [].
    """
    cfg = wm.cfg
    task_t = time_major_task(task, zs.shape[0])
    a, info = wm.pi(zs, task_t, noise.pi_eps)
    logits = wm.Q(zs, a, task_t, keep=noise.pi_q_keep, members=noise.pi_q_pair)
    q = jnp.mean(two_hot_inv(cfg, logits), axis=0)  # [H+1, B, 1]
    scale = running_scale_update(scale, q[0], cfg.tau)
    q = q / scale
    per_step = jnp.mean(-(cfg.entropy_coef * info["scaled_entropy"] + q), axis=(1, 2))
    loss = jnp.mean(rho_weights(cfg.rho, zs.shape[0]) * per_step)
    out = {
        "pi_entropy": jnp.mean(info["entropy"]),
        "pi_scaled_entropy": jnp.mean(info["scaled_entropy"]),
        "pi_scale": scale,
    }
    return loss, out
