"""Numpy oracle of planning: the value estimate and the diffusion, MPPI and policy planners.

The straightforward reading of docs/method.md#value-estimate, #diffusion-planner, #mppi and
#policy-planner; randomness comes only from the noise bundles of mbdpo_core.noise. Computes in
float64. Shapes in the letters of mbdpo_core.shapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..noise import ValueNoise
from . import model
from .math import sigmoid, softmax, two_hot_inv
from .schedule import noise_schedule

if TYPE_CHECKING:
    from ..config.schema import Config
    from ..noise import DiffusionNoise, MppiNoise, PolicyNoise

Params = dict[str, np.ndarray]
EnergyStats = tuple[float, float]


def discount(cfg: Config, task: Any = None) -> float:
    """Discount of the task (multi-task) or of the single task."""
    if cfg.multitask and task is not None:
        return float(cfg.discounts[int(task)])
    return float(cfg.discounts[0])


def value_estimate(
    params: Params,
    cfg: Config,
    z: Any,
    actions: Any,
    task: int | None,
    noise: ValueNoise,
    energy_stats: EnergyStats = (0.0, 1.0),
) -> np.ndarray:
    """H-step return of r + eta * clipped normalised F, bootstrapped with the mean of two Q members
    (with dropout when noise.q_keep is given: the score target).

    Shapes: z [N, Z], actions [N, H, A], noise.pi_eps [N, A], noise.q_pair [2],
    noise.q_keep [2, N, M] or None -> [N, 1].
    """
    mu, sigma = float(energy_stats[0]), float(energy_stats[1])
    gamma = discount(cfg, task)
    z = np.asarray(z, dtype=np.float64)
    actions = np.asarray(actions, dtype=np.float64)
    G = np.zeros((z.shape[0], 1))
    disc = 1.0
    term = np.zeros((z.shape[0], 1))
    for t in range(actions.shape[1]):
        a_t = actions[:, t]
        r = two_hot_inv(model.reward(params, cfg, z, a_t, task), cfg=cfg)
        f = (model.F(params, cfg, z, a_t, task) - mu) / max(sigma, 1e-6)
        r = r + cfg.energy_eta * np.clip(f, -cfg.energy_clip, cfg.energy_clip)
        z = model.next(params, cfg, z, a_t, task)
        G = G + disc * (1.0 - term) * r
        disc = disc * gamma
        if cfg.episodic:
            done = sigmoid(model.termination(params, cfg, z, task)) > 0.5
            term = np.minimum(term + done, 1.0)
    a_H, _ = model.pi(params, cfg, z, task, noise.pi_eps)
    q = model.q_pair_values(params, cfg, z, a_H, noise.q_pair, task, keep=noise.q_keep)
    q = q.mean(axis=0)
    return G + disc * (1.0 - term) * q


def _values(params, cfg, z, actions, task, noise, energy_stats) -> np.ndarray:
    """value_estimate of every candidate from one latent, flattened to [N] with NaN -> 0."""
    zs = np.repeat(z[None], actions.shape[0], axis=0)
    v = value_estimate(params, cfg, zs, actions, task, noise, energy_stats)[:, 0]
    return np.nan_to_num(v, nan=0.0)


def _policy_rollouts(params, cfg, z, task, pi_eps, mask) -> np.ndarray:
    """Policy-prior trajectories from z. Shapes: pi_eps [H, P, A] -> [P, H, A]."""
    P = pi_eps.shape[1]
    zp = np.repeat(z[None], P, axis=0)
    steps = []
    for h in range(cfg.horizon):
        ap, _ = model.pi(params, cfg, zp, task, pi_eps[h])
        ap = np.clip(mask * ap, -1.0, 1.0)
        steps.append(ap)
        zp = model.next(params, cfg, zp, ap, task)
    return np.stack(steps, axis=1) if steps else np.zeros((P, 0, cfg.action_dim))


def _top(v: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest values, by decreasing value (first index on ties)."""
    return np.argsort(-v, kind="stable")[:count]


def _warm_start(cfg: Config, prev_plan: Any, t0: bool) -> np.ndarray:
    H, A = cfg.horizon, cfg.action_dim
    if t0:
        return np.zeros((H, A))
    prev = np.asarray(prev_plan, dtype=np.float64)
    return np.concatenate([prev[1:], np.zeros((1, A))], axis=0)


def diffusion_plan(
    params: Params,
    cfg: Config,
    z: Any,
    prev_plan: Any,
    t0: bool,
    eval_mode: bool,
    task: int | None,
    noise: DiffusionNoise,
    energy_stats: EnergyStats = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """MBDPO diffusion planner: the Monte-Carlo score, or the score network's output in its
    place when cfg.score_net_plans (the published code computes the Monte-Carlo score there too
    and discards it; docs/method.md#diffusion-planner).

    Shapes: z [Z] or [1, Z], prev_plan [H, A] -> (action [A], plan [H, A]).
    """
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    _, alpha, ab = noise_schedule(cfg.diffusion_steps, cfg.diffusion_beta0, cfg.diffusion_betaT)
    T = len(ab)
    mask = model.action_mask(cfg, task)
    N, E = cfg.diffusion_num_samples, cfg.diffusion_num_elites
    P = min(cfg.diffusion_num_pi_trajs, N)
    x = np.sqrt(ab[T - 1]) * _warm_start(cfg, prev_plan, t0) * mask
    for i in range(T - 1):
        tau = T - 1 - i
        if cfg.score_net_plans:
            net_score = model.score(params, cfg, z, x, tau, task)
            x = (x + (1.0 - ab[tau]) * net_score) / np.sqrt(alpha[tau]) * mask
            continue
        m = x / np.sqrt(ab[tau])
        s = np.sqrt((1.0 - ab[tau]) / ab[tau])
        A0 = np.clip(mask * (m + s * np.asarray(noise.sample_eps[i], np.float64)), -1.0, 1.0)
        if P > 0:
            pi_eps = np.asarray(noise.pi_eps[i], np.float64)
            A0[:P] = _policy_rollouts(params, cfg, z, task, pi_eps, mask)
        vnoise = ValueNoise(noise.value_pi_eps[i], noise.value_q_pair[i])
        v = _values(params, cfg, z, A0, task, vnoise, energy_stats)
        sv = np.std(v, ddof=1) if N > 1 else 0.0
        sv = 1.0 if sv < 1e-4 else sv
        logits = ((v - v.mean()) / sv) / max(cfg.diffusion_temperature, 1e-6)
        idx = _top(v, E) if 0 < E < N else np.arange(N)
        w = softmax(logits[idx])
        a_bar = np.einsum("n,nha->ha", w, A0[idx])
        mc_score = (-x + np.sqrt(ab[tau]) * a_bar) / (1.0 - ab[tau] + 1e-8)
        x = (x + (1.0 - ab[tau]) * mc_score) / np.sqrt(alpha[tau]) * mask
    plan = np.clip(mask * x, -1.0, 1.0)
    action = plan[0]
    if not eval_mode:
        noisy = action + cfg.diffusion_action_noise * np.asarray(noise.action_eps, np.float64)
        action = np.clip(mask * noisy, -1.0, 1.0)
    return action, plan


def mppi_plan(
    params: Params,
    cfg: Config,
    z: Any,
    prev_plan: Any,
    t0: bool,
    eval_mode: bool,
    task: int | None,
    noise: MppiNoise,
    energy_stats: EnergyStats = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """TD-MPC2's MPPI over the same value estimate. Elites are ordered by decreasing value.

    Shapes: z [Z] or [1, Z], prev_plan [H, A] -> (action [A], plan [H, A]) (plan = final mean).
    """
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    mask = model.action_mask(cfg, task)
    N = cfg.num_samples
    P = min(cfg.num_pi_trajs, N)
    E = min(cfg.num_elites, N)
    pi_eps = np.asarray(noise.pi_eps, np.float64)[:, :P]
    pi_trajs = _policy_rollouts(params, cfg, z, task, pi_eps, mask)
    mean = _warm_start(cfg, prev_plan, t0)
    std = cfg.max_std * np.ones((cfg.horizon, cfg.action_dim))
    for i in range(cfg.iterations):
        sampled = np.clip(mean + std * np.asarray(noise.sample_eps[i], np.float64), -1.0, 1.0)
        actions = np.concatenate([pi_trajs, sampled], axis=0) * mask
        vnoise = ValueNoise(noise.value_pi_eps[i], noise.value_q_pair[i])
        v = _values(params, cfg, z, actions, task, vnoise, energy_stats)
        idx = _top(v, E)
        vE, aE = v[idx], actions[idx]
        w = np.exp(cfg.temperature * (vE - vE.max()))
        w = w / w.sum()
        mean = np.einsum("e,eha->ha", w, aE) / (w.sum() + 1e-9)
        var = np.einsum("e,eha->ha", w, (aE - mean) ** 2) / (w.sum() + 1e-9)
        std = np.clip(np.sqrt(var), cfg.min_std, cfg.max_std) * mask
    j = int(np.argmax(np.log(w) + np.asarray(noise.gumbel, np.float64)[:E]))
    action = aE[j, 0]
    if not eval_mode:
        action = action + std[0] * np.asarray(noise.action_eps, np.float64)
    return np.clip(action, -1.0, 1.0), mean


def policy_plan(
    params: Params,
    cfg: Config,
    z: Any,
    prev_plan: Any,
    t0: bool,
    eval_mode: bool,
    task: int | None,
    noise: PolicyNoise,
    energy_stats: EnergyStats = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Policy prior only: the squashed mean (eval) or a sample (training); plan unchanged.

    `t0` and `energy_stats` are accepted for a uniform planner signature and unused.

    Shapes: z [Z] or [1, Z], prev_plan [H, A] -> (action [A], prev_plan [H, A]).
    """
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    action, info = model.pi(params, cfg, z, task, noise.action_eps)
    if eval_mode:
        action = info["mean"] * model.action_mask(cfg, task)
    return action, np.asarray(prev_plan, dtype=np.float64)
