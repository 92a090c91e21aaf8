"""The MBDPO diffusion planner (docs/method.md#diffusion-planner): the reverse process over the
levels tau = T-1 .. 1 in one `lax.scan`, so a jitted act compiles it once.

Shapes: N samples, P policy rollouts, H horizon, A action, Z latent, I = T - 1 reverse steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from mbdpo_core.noise import DiffusionNoise, ValueNoise
from mbdpo_core.schedule import noise_schedule

from ..value import clean_values, value_estimate
from ..world_model import WorldModel
from .common import action_mask, policy_rollouts, warm_start, weighted_mean


def plan(
    model: WorldModel,
    z: jax.Array,
    prev_plan: jax.Array,
    t0: jax.Array,
    eval_mode: jax.Array,
    task: jax.Array | None,
    noise: DiffusionNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """One act: each level's score is the Monte-Carlo estimate from N candidates, or the score
    network's output when cfg.score_net_plans (the published code then computes the
    Monte-Carlo score too and discards it; skipped here, same actions).

    Shapes: z [1, Z], prev_plan [H, A], t0/eval_mode [] bool, task [] or None
    -> (action [A], plan [H, A]).
    """
    cfg = model.cfg
    alpha, ab = noise_schedule(cfg)
    T = len(ab)
    taus = np.arange(T - 1, 0, -1)
    mask = action_mask(model, task)
    N, E = cfg.diffusion_num_samples, cfg.diffusion_num_elites
    P = min(cfg.diffusion_num_pi_trajs, N)
    x = np.sqrt(ab[T - 1]) * warm_start(prev_plan, t0) * mask
    levels = (taus, ab[taus], alpha[taus])

    if cfg.score_net_plans:

        def step(x, level):
            tau, ab_t, alpha_t = level
            x = (x + (1.0 - ab_t) * model.score(z[0], x, tau, task)) / jnp.sqrt(alpha_t)
            return x * mask, None

        x, _ = jax.lax.scan(step, x, levels)
    else:
        I, H, _, A = noise.pi_eps.shape
        rollouts = noise.pi_eps  # every level's rollouts in one batch: [I, P, H, A]
        if P > 0:
            eps = jnp.swapaxes(noise.pi_eps, 0, 1).reshape(H, I * P, A)
            rollouts = policy_rollouts(model, z, task, eps, mask).reshape(I, P, H, A)

        def step(x, level):
            _, ab_t, alpha_t, sample_eps, level_rollouts, value_pi_eps, value_q_pair = level
            m = x / jnp.sqrt(ab_t)
            s = jnp.sqrt((1.0 - ab_t) / ab_t)
            samples = jnp.clip(mask * (m + s * sample_eps), -1.0, 1.0)
            if P > 0:
                samples = samples.at[:P].set(level_rollouts)
            vnoise = ValueNoise(value_pi_eps, value_q_pair)
            v = clean_values(value_estimate(model, z, samples, task, vnoise, energy_stats)[:, 0])
            a_bar = weighted_mean(v, samples, E, cfg.diffusion_temperature)
            score = (-x + jnp.sqrt(ab_t) * a_bar) / (1.0 - ab_t + 1e-8)
            x = (x + (1.0 - ab_t) * score) / jnp.sqrt(alpha_t)
            return x * mask, None

        xs = (*levels, noise.sample_eps, rollouts, noise.value_pi_eps, noise.value_q_pair)
        x, _ = jax.lax.scan(step, x, xs)
    plan = jnp.clip(mask * x, -1.0, 1.0)
    action = plan[0]
    noisy = jnp.clip(mask * (action + cfg.diffusion_action_noise * noise.action_eps), -1.0, 1.0)
    return jnp.where(eval_mode, action, noisy), plan
