"""MBDPO diffusion planner (spec "Diffusion planner"): the whole reverse process in one
`lax.scan` over the levels tau = T-1 .. 1, so a jitted act compiles it once.

Shapes: N samples, P policy trajectories, E elites, H horizon, A action, Z latent,
I = T - 1 reverse steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from mbdpo_core.noise import DiffusionNoise, ValueNoise

from ..math import noise_schedule
from ..world_model import WorldModel
from .value import clean_values, value_estimate


def action_mask(wm: WorldModel, task: jax.Array | None) -> jax.Array:
    """Action mask of the task [A] (ones single-task)."""
    return wm.masks[task] if wm.cfg.multitask else jnp.ones(wm.cfg.action_dim, jnp.float32)


def warm_start(prev_plan: jax.Array, t0: jax.Array) -> jax.Array:
    """zeros at t0, else the previous plan shifted by one step. Shapes: [H, A] -> [H, A]."""
    shifted = jnp.concatenate([prev_plan[1:], jnp.zeros_like(prev_plan[:1])], axis=0)
    return jnp.where(t0, jnp.zeros_like(prev_plan), shifted)


def policy_rollouts(
    wm: WorldModel, z: jax.Array, task: jax.Array | None, pi_eps: jax.Array, mask: jax.Array
) -> jax.Array:
    """Policy-prior trajectories from one latent.

    Shapes: z [1, Z], pi_eps [H, P, A] -> [P, H, A].
    """
    steps = []
    for h in range(pi_eps.shape[0]):
        ap, _ = wm.pi(z, task, pi_eps[h])
        ap = jnp.clip(mask * ap, -1.0, 1.0)
        steps.append(ap)
        z = wm.next(z, ap, task)
    return jnp.stack(steps, axis=1)


def weighted_mean(temperature: float, v: jax.Array, samples: jax.Array, elites: int) -> jax.Array:
    """Softmax-of-standardised-values mean of the top `elites` samples (all when 0 or >= N).

    Shapes: v [N], samples [N, H, A] -> [H, A].
    """
    n = v.shape[0]
    sv = jnp.std(v, ddof=1) if n > 1 else jnp.float32(0.0)
    sv = jnp.where(sv < 1e-4, 1.0, sv)
    logits = ((v - jnp.mean(v)) / sv) / max(temperature, 1e-6)
    if 0 < elites < n:
        _, idx = jax.lax.top_k(v, elites)
        logits, samples = logits[idx], samples[idx]
    w = jax.nn.softmax(logits)
    return jnp.einsum("n,nha->ha", w, samples)


def plan(
    wm: WorldModel,
    z: jax.Array,
    prev_plan: jax.Array,
    t0: jax.Array,
    eval_mode: jax.Array,
    task: jax.Array | None,
    noise: DiffusionNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """One act of the diffusion planner (Monte-Carlo score, or the score net when score-only).

    Shapes: z [1, Z], prev_plan [H, A], t0/eval_mode [] bool, task [] or None, noise as
    mbdpo_core.noise.DiffusionNoise -> (action [A], plan [H, A]).
    """
    cfg = wm.cfg
    _, alpha, ab = noise_schedule(cfg)
    T = len(ab)
    taus = np.arange(T - 1, 0, -1)
    mask = action_mask(wm, task)
    N, E = cfg.diffusion_num_samples, cfg.diffusion_num_elites
    P = min(cfg.diffusion_num_pi_trajs, N)
    x = np.sqrt(ab[T - 1]) * warm_start(prev_plan, t0) * mask
    levels = (taus, ab[taus], alpha[taus])

    if cfg.score_only_inference:

        def step(x, level):
            tau, ab_t, alpha_t = level
            x = (x + (1.0 - ab_t) * wm.score(z[0], x, tau, task)) / jnp.sqrt(alpha_t)
            return x * mask, None

        x, _ = jax.lax.scan(step, x, levels)
    else:

        def step(x, level):
            _, ab_t, alpha_t, sample_eps, pi_eps, value_pi_eps, value_q_pair = level
            m = x / jnp.sqrt(ab_t)
            s = jnp.sqrt((1.0 - ab_t) / ab_t)
            samples = jnp.clip(mask * (m + s * sample_eps), -1.0, 1.0)
            if P > 0:
                samples = samples.at[:P].set(policy_rollouts(wm, z, task, pi_eps, mask))
            vnoise = ValueNoise(value_pi_eps, value_q_pair)
            v = clean_values(value_estimate(wm, z, samples, task, vnoise, energy_stats)[:, 0])
            a_bar = weighted_mean(cfg.diffusion_temperature, v, samples, E)
            score = (-x + jnp.sqrt(ab_t) * a_bar) / (1.0 - ab_t + 1e-8)
            x = (x + (1.0 - ab_t) * score) / jnp.sqrt(alpha_t)
            return x * mask, None

        xs = (*levels, noise.sample_eps, noise.pi_eps, noise.value_pi_eps, noise.value_q_pair)
        x, _ = jax.lax.scan(step, x, xs)
    plan = jnp.clip(mask * x, -1.0, 1.0)
    action = plan[0]
    noisy = jnp.clip(mask * (action + cfg.diffusion_action_noise * noise.action_eps), -1.0, 1.0)
    return jnp.where(eval_mode, action, noisy), plan
