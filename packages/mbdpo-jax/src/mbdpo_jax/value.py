"""The planning value estimate (docs/method.md#value-estimate), shared by the planners and the
Monte-Carlo target of the score loss.

Shapes: N candidate action sequences, H horizon, A action, Z latent, Kb bins.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from mbdpo_core.config.schema import Config
from mbdpo_core.noise import ValueNoise

from .math import two_hot_inv
from .world_model import WorldModel


def discount(model: WorldModel, task: jax.Array | None) -> jax.Array | float:
    """gamma of the task (multi-task) or of the single task. Shapes: task [...] -> [...]."""
    cfg = model.cfg
    if not cfg.multitask:
        return cfg.discounts[0]
    return jnp.asarray(cfg.discounts, jnp.float32)[task]


def shaped_reward(
    r_logits: jax.Array, f_logit: jax.Array, energy_stats: tuple[jax.Array, jax.Array], cfg: Config
) -> jax.Array:
    """reward + energy_eta clip((F - mean) / max(std, 1e-6), +-energy_clip).

    Shapes: r_logits [..., Kb], f_logit [..., 1] -> [..., 1].
    """
    mu, sigma = energy_stats
    f = (f_logit - mu) / jnp.maximum(sigma, 1e-6)
    return two_hot_inv(r_logits, cfg) + cfg.energy_eta * jnp.clip(
        f, -cfg.energy_clip, cfg.energy_clip
    )


def clean_values(v: jax.Array) -> jax.Array:
    """numpy.nan_to_num(v, nan=0.0), the oracle: NaN -> 0, +-inf -> +-float32 max."""
    return jnp.nan_to_num(v, nan=0.0)


def value_estimate(
    model: WorldModel,
    z: jax.Array,
    actions: jax.Array,
    task: jax.Array | None,
    noise: ValueNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> jax.Array:
    """H-step return of the shaped reward, bootstrapped by the mean of two online Q members.

    `z` may have a leading dim of 1 for N candidates from one start latent: the first step then
    computes the latent's share of every first layer once. Only the two members of
    `noise.q_pair` are evaluated at the bootstrap, with dropout when noise.q_keep is given (the
    score target).

    Shapes: z [N or 1, Z], actions [N, H, A], noise.pi_eps [N, A], noise.q_pair [2],
    noise.q_keep [2, N, M] or None -> [N, 1].
    """
    cfg = model.cfg
    gamma = discount(model, task)
    ret, disc, term = 0.0, 1.0, 0.0
    for t in range(actions.shape[1]):
        a_t = actions[:, t]
        r = shaped_reward(model.reward(z, a_t, task), model.F(z, a_t, task), energy_stats, cfg)
        z = model.next(z, a_t, task)
        ret = ret + disc * (1.0 - term) * r
        disc = disc * gamma
        if cfg.episodic:
            done = (jax.nn.sigmoid(model.termination(z, task)) > 0.5).astype(jnp.float32)
            term = jnp.minimum(term + done, 1.0)
    a_last, _ = model.pi(z, task, noise.pi_eps)
    q = two_hot_inv(model.Q(z, a_last, task, keep=noise.q_keep, members=noise.q_pair), cfg)
    return ret + disc * (1.0 - term) * jnp.mean(q, axis=0)
