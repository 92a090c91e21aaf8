"""The planning value estimate V(z, actions) (spec "Value estimate"), shared by the planners
and the Monte-Carlo score target of the score loss.

Shapes: K candidates, H horizon, A action, Z latent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from mbdpo_core.noise import ValueNoise

from ..math import two_hot_inv
from ..world_model import WorldModel


def discount(wm: WorldModel, task: jax.Array | None) -> jax.Array | float:
    """gamma of the task (multi-task) or of the single task. Shapes: task [] -> []."""
    return wm.discounts[task] if wm.cfg.multitask else wm.cfg.discounts[0]


def value_estimate(
    wm: WorldModel,
    z: jax.Array,
    actions: jax.Array,
    task: jax.Array | None,
    noise: ValueNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> jax.Array:
    """H-step return of reward + eta x normalised F, bootstrapped by the mean of two online Q.

    `z` may have a leading dim of 1 for K candidates sharing the same start latent: the first
    step then computes the latent's share of every first layer once (see layers.input_dense).
    Only the two Q members of `noise.q_pair` are evaluated at the bootstrap.

    Shapes: z [K or 1, Z], actions [K, H, A], noise.pi_eps [K, A], noise.q_pair [2] -> [K, 1].
    """
    cfg = wm.cfg
    mu, sigma = energy_stats
    gamma = discount(wm, task)
    ret, disc, term = 0.0, 1.0, 0.0
    for t in range(actions.shape[1]):
        a_t = actions[:, t]
        r = two_hot_inv(cfg, wm.reward(z, a_t, task))
        f = (wm.F(z, a_t, task) - mu) / jnp.maximum(sigma, 1e-6)
        r = r + cfg.contrastive_eta * jnp.clip(f, -cfg.contrastive_clip, cfg.contrastive_clip)
        z = wm.next(z, a_t, task)
        ret = ret + disc * (1.0 - term) * r
        disc = disc * gamma
        if cfg.episodic:
            done = (jax.nn.sigmoid(wm.termination(z, task)) > 0.5).astype(jnp.float32)
            term = jnp.minimum(term + done, 1.0)
    a_last, _ = wm.pi(z, task, noise.pi_eps)
    q = two_hot_inv(cfg, wm.Q(z, a_last, task, members=noise.q_pair))
    return ret + disc * (1.0 - term) * jnp.mean(q, axis=0)


def clean_values(v: jax.Array) -> jax.Array:
    """NaN -> 0. Shapes: any."""
    return jnp.where(jnp.isnan(v), 0.0, v)
