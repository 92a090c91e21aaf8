"""The losses of one update (docs/method.md#world-model-loss, #td-targets, #energy-head,
#score-network, #policy-objective), as pure functions of the model, a DeviceBatch and noise.

Batch arrays are time-major: obs [H+1, B, O] (rgb: [H+1, B, C, 64, 64]), action [H, B, A],
reward and terminated [H, B, 1], task [B] int or None, gamma [B, 1].
Shapes: Z latent, Kb bins, Nq Q members, S Monte-Carlo score samples.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from mbdpo_core.batch import Batch, check_batch
from mbdpo_core.config.schema import Config
from mbdpo_core.metrics import LOSS_COEFS, LOSS_TERMS
from mbdpo_core.noise import ScoreNoise, UpdateNoise
from mbdpo_core.schedule import noise_schedule

from .augment import random_shift
from .math import bce_with_logits, running_scale_update, soft_ce, two_hot_inv
from .value import clean_values, value_estimate
from .world_model import WorldModel

_sg = jax.lax.stop_gradient


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DeviceBatch:
    """A Batch on the device (a pytree). obs [H+1, B, *O] float32 (uint8 for rgb), action
    [H, B, A], reward/terminated [H, B, 1], task [B] int32 or None, gamma [B, 1] (the discount
    of each element's task)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    task: jax.Array | None
    gamma: jax.Array


def device_batch(batch: Batch, cfg: Config, device: jax.Device | None) -> DeviceBatch:
    """mbdpo_core.batch.Batch (numpy) -> DeviceBatch on `device`, with gamma per element.

    Raises:
        ShapeError: a field whose shape does not match cfg.
    """
    return jax.device_put(_host_batch(batch, cfg), device)


def _host_batch(batch: Batch, cfg: Config) -> DeviceBatch:
    """device_batch's arrays, still numpy (data_parallel shards them over devices)."""
    check_batch(batch, cfg)
    discounts = np.asarray(cfg.discounts, np.float32)
    B = batch.action.shape[1]
    gamma = discounts[np.asarray(batch.task)] if cfg.multitask else np.full(B, discounts[0])
    obs = np.asarray(batch.obs)
    return DeviceBatch(
        obs=obs if obs.dtype == np.uint8 else obs.astype(np.float32),
        action=np.asarray(batch.action, np.float32),
        reward=np.asarray(batch.reward, np.float32),
        terminated=np.asarray(batch.terminated, np.float32),
        task=None if batch.task is None else np.asarray(batch.task, np.int32),
        gamma=gamma.reshape(B, 1).astype(np.float32),
    )


def _time_major(task: jax.Array | None, horizon: int) -> jax.Array | None:
    """Task ids [B] broadcast to [horizon, B] (None stays None)."""
    return None if task is None else jnp.broadcast_to(task, (horizon, task.shape[0]))


def _rho_weights(rho: float, n: int) -> jax.Array:
    """rho^t for t = 0..n-1. Shapes: [n]."""
    return rho ** jnp.arange(n, dtype=jnp.float32)


def td_targets(
    model: WorldModel, batch: DeviceBatch, noise: UpdateNoise
) -> tuple[jax.Array, jax.Array]:
    """Encoded next observations and the TD targets reward + gamma (1 - terminated) min of the
    two target members of noise.target_q_pair at policy actions (no gradient).

    Shapes: -> (next_z [H, B, Z], td [H, B, 1]).
    """
    H = batch.action.shape[0]
    task = _time_major(batch.task, H)
    next_z = _sg(model.encode(batch.obs[1:], task))
    a, _ = model.pi(next_z, task, noise.target_pi_eps)
    q = model.Q(next_z, a, task, target=True, members=noise.target_q_pair)
    q = two_hot_inv(q, model.cfg)
    td = batch.reward + batch.gamma * (1.0 - batch.terminated) * jnp.min(q, axis=0)
    return next_z, _sg(td)


def rollout(model: WorldModel, batch: DeviceBatch) -> jax.Array:
    """zs[0] = encode(obs[0]), zs[t+1] = next(zs[t], action[t]). Shapes: -> [H+1, B, Z]."""
    zs = [model.encode(batch.obs[0], batch.task)]
    for t in range(batch.action.shape[0]):
        zs.append(model.next(zs[t], batch.action[t], batch.task))
    return jnp.stack(zs)


def energy_loss(
    model: WorldModel,
    zs: jax.Array,
    batch: DeviceBatch,
    noise: UpdateNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """BCE of F on the batch's actions (positives) against the hardest of three negatives (the
    policy's action, it perturbed, a uniform one), on detached latents.

    Returns (loss, (mean, std)): the running statistics of the F logits after this batch.
    Shapes: zs [H+1, B, Z]; energy_stats (mean [], std []).
    """
    cfg = model.cfg
    action = batch.action
    H, B, A = action.shape
    zf = _sg(zs[:H])
    task = _time_major(batch.task, H)
    a_pos = action
    if cfg.energy_pairing == "published":
        a_pos = jnp.transpose(action, (1, 0, 2)).reshape(H, B, A)
        task = None if task is None else task.T.reshape(H, B)
    a_pi, _ = model.pi(zf, task, noise.energy_pi_eps)
    a_noisy = jnp.clip(a_pi + cfg.energy_neg_noise * noise.energy_gauss, -1.0, 1.0)
    cands = _sg(jnp.stack([a_pi, a_noisy, noise.energy_uniform]))  # [3, H, B, A]
    scores = model.F(zf[None], cands, None if task is None else task[None])[..., 0]
    pick = jnp.argmax(_sg(scores), axis=0)  # the first candidate on ties
    a_neg = jnp.take_along_axis(cands, pick[None, ..., None], axis=0)[0]
    pos = model.F(zf, a_pos, task)
    neg = model.F(zf, a_neg, task)
    loss = 0.5 * (jnp.mean(bce_with_logits(pos, 1.0)) + jnp.mean(bce_with_logits(neg, 0.0)))
    both = _sg(jnp.concatenate([pos.reshape(-1), neg.reshape(-1)]))
    m = cfg.energy_momentum
    mu = m * energy_stats[0] + (1.0 - m) * jnp.mean(both)
    sigma = m * energy_stats[1] + (1.0 - m) * jnp.maximum(jnp.std(both), 1e-6)
    return loss, (mu, sigma)


def score_loss(
    model: WorldModel,
    z_star: jax.Array,
    task: jax.Array | None,
    noise: ScoreNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> jax.Array:
    """Squared error of the score network against a Monte-Carlo score target at one level. As
    published, the target's value estimate uses the energy statistics after this batch
    (`energy_stats`) and Q dropout (noise.value.q_keep).

    Shapes: z_star [Z] (not detached), task [] or None, noise.sample_eps [S, H, A] -> [].
    """
    cfg = model.cfg
    _, alpha_bar = noise_schedule(cfg)
    ab_t = jnp.asarray(alpha_bar)[noise.tau]
    m = noise.x_tau / jnp.sqrt(ab_t)
    s = jnp.sqrt((1.0 - ab_t) / ab_t)
    a0 = jnp.clip(m + s * noise.sample_eps, -1.0, 1.0)
    v = value_estimate(model, _sg(z_star)[None], a0, task, noise.value, energy_stats)[:, 0]
    v = _sg(clean_values(v))
    sv = jnp.std(v, ddof=1) if v.shape[0] > 1 else 0.0
    w = jax.nn.softmax(((v - jnp.mean(v)) / (sv + 1e-6)) / max(cfg.diffusion_temperature, 1e-6))
    a_bar = jnp.einsum("s,sha->ha", w, a0)
    target = (-noise.x_tau + jnp.sqrt(ab_t) * a_bar) / (1.0 - ab_t + 1e-8)
    pred = model.score(z_star, noise.x_tau, noise.tau, task)
    return jnp.mean(jnp.square(pred - target))


def world_model_loss(
    model: WorldModel,
    batch: DeviceBatch,
    noise: UpdateNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, dict]:
    """The weighted sum of the LOSS_TERMS of mbdpo_core.metrics (before the optimiser step).

    obs=rgb: every observation of the batch is first shifted by noise.obs_shift [H+1, B, 2].
    Returns (total, aux): aux holds the six terms and total_loss (scalars), zs [H+1, B, Z],
    td [H, B, 1] and energy_stats, the F statistics (mean, std) after this batch.
    """
    cfg = model.cfg
    if cfg.obs == "rgb":
        if noise.obs_shift is None:
            raise ValueError("obs=rgb needs UpdateNoise.obs_shift [H+1, B, 2] (random shift).")
        batch = dataclasses.replace(batch, obs=random_shift(batch.obs, noise.obs_shift))
    H = batch.action.shape[0]
    task_t = _time_major(batch.task, H)
    next_z, td = td_targets(model, batch, noise)
    zs = rollout(model, batch)
    rho = _rho_weights(cfg.rho, H)
    terms = {}
    terms["consistency_loss"] = (
        jnp.sum(rho * jnp.mean(jnp.square(zs[1:] - next_z), axis=(1, 2))) / H
    )
    r_ce = soft_ce(model.reward(zs[:H], batch.action, task_t), batch.reward, cfg)
    terms["reward_loss"] = jnp.sum(rho * jnp.mean(r_ce, axis=(1, 2))) / H
    qs = model.Q(zs[:H], batch.action, task_t, keep=noise.q_keep)  # [Nq, H, B, Kb]
    q_ce = soft_ce(qs, td[None], cfg)
    terms["value_loss"] = jnp.sum(rho * jnp.sum(jnp.mean(q_ce, axis=(2, 3)), axis=0)) / (
        H * cfg.num_q
    )
    terms["termination_loss"] = jnp.float32(0.0)
    if cfg.episodic:
        logits = model.termination(zs[1:], task_t)
        terms["termination_loss"] = jnp.mean(bce_with_logits(logits, batch.terminated))
    terms["energy_loss"], new_stats = energy_loss(model, zs, batch, noise, energy_stats)
    terms["score_loss"] = jnp.float32(0.0)
    if cfg.use_score_network:
        if noise.score is None:
            raise ValueError("use_score_network=true needs UpdateNoise.score (a ScoreNoise).")
        task0 = None if batch.task is None else batch.task[0]
        terms["score_loss"] = score_loss(model, zs[0, 0], task0, noise.score, new_stats)
    total = sum(getattr(cfg, LOSS_COEFS[k]) * terms[k] for k in LOSS_TERMS)
    aux = {**terms, "total_loss": total, "zs": zs, "td": td, "energy_stats": new_stats}
    return total, aux


def policy_loss(
    model: WorldModel,
    zs: jax.Array,
    task: jax.Array | None,
    noise: UpdateNoise,
    scale: jax.Array,
) -> tuple[jax.Array, dict]:
    """The policy objective: rho-weighted mean of -(entropy_coef scaled_entropy + Q / scale),
    Q the mean of the pair noise.pi_q_pair as constants (the gradient reaches pi through its
    action only).

    Returns (loss, info): pi_entropy, pi_scaled_entropy and pi_scale (the RunningScale after
    this batch). Shapes: zs [H+1, B, Z] (detached), task [B] or None, scale [].
    """
    cfg = model.cfg
    task_t = _time_major(task, zs.shape[0])
    a, info = model.pi(zs, task_t, noise.pi_eps)
    logits = model.Q(zs, a, task_t, keep=noise.pi_q_keep, members=noise.pi_q_pair, detach=True)
    q = jnp.mean(two_hot_inv(logits, cfg), axis=0)  # [H+1, B, 1]
    scale = running_scale_update(scale, q[0], cfg.tau)
    q = q / scale
    per_step = jnp.mean(-(cfg.entropy_coef * info["scaled_entropy"] + q), axis=(1, 2))
    loss = jnp.mean(_rho_weights(cfg.rho, zs.shape[0]) * per_step)
    out = {
        "pi_entropy": jnp.mean(info["entropy"]),
        "pi_scaled_entropy": jnp.mean(info["scaled_entropy"]),
        "pi_scale": scale,
    }
    return loss, out
