"""Noise bundles drawn from JAX keys: the same fields and shapes as mbdpo_core.noise.draw_*.

The bundles (frozen dataclasses of core) are registered as pytrees, so they pass through
`jax.jit` as arguments and can be drawn inside a jitted act/update from one key.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from mbdpo_core.config.schema import Config
from mbdpo_core.noise import (
    DiffusionNoise,
    MppiNoise,
    PolicyNoise,
    ScoreNoise,
    UpdateNoise,
    ValueNoise,
    diffusion_levels,
)

from .augment import draw_shift

for _cls in (ValueNoise, DiffusionNoise, MppiNoise, PolicyNoise, ScoreNoise, UpdateNoise):
    try:
        jax.tree_util.register_dataclass(
            _cls, data_fields=[f.name for f in dataclasses.fields(_cls)], meta_fields=[]
        )
    except ValueError:  # already registered (module reloaded)
        pass


def pairs(key: jax.Array, n: int, count: int | None = None) -> jax.Array:
    """Distinct member pairs: [2] when count is None, else [count, 2] (int32)."""
    if count is None:
        return jax.random.permutation(key, n)[:2].astype(jnp.int32)
    keys = jax.random.split(key, count)
    return jax.vmap(lambda k: jax.random.permutation(k, n)[:2])(keys).astype(jnp.int32)


def draw_value_noise(cfg: Config, key: jax.Array, samples: int) -> ValueNoise:
    k1, k2 = jax.random.split(key)
    return ValueNoise(jax.random.normal(k1, (samples, cfg.action_dim)), pairs(k2, cfg.num_q))


def draw_diffusion_noise(cfg: Config, key: jax.Array) -> DiffusionNoise:
    I, N, H, A = diffusion_levels(cfg), cfg.diffusion_num_samples, cfg.horizon, cfg.action_dim
    P = min(cfg.diffusion_num_pi_trajs, N)
    k = jax.random.split(key, 5)
    return DiffusionNoise(
        sample_eps=jax.random.normal(k[0], (I, N, H, A)),
        pi_eps=jax.random.normal(k[1], (I, H, P, A)),
        value_pi_eps=jax.random.normal(k[2], (I, N, A)),
        value_q_pair=pairs(k[3], cfg.num_q, I),
        action_eps=jax.random.normal(k[4], (A,)),
    )


def draw_mppi_noise(cfg: Config, key: jax.Array) -> MppiNoise:
    I, N, H, A = cfg.iterations, cfg.num_samples, cfg.horizon, cfg.action_dim
    P = min(cfg.num_pi_trajs, N)
    k = jax.random.split(key, 6)
    return MppiNoise(
        pi_eps=jax.random.normal(k[0], (H, P, A)),
        sample_eps=jax.random.normal(k[1], (I, N - P, H, A)),
        value_pi_eps=jax.random.normal(k[2], (I, N, A)),
        value_q_pair=pairs(k[3], cfg.num_q, I),
        gumbel=jax.random.gumbel(k[4], (cfg.num_elites,)),
        action_eps=jax.random.normal(k[5], (A,)),
    )


def draw_policy_noise(cfg: Config, key: jax.Array) -> PolicyNoise:
    return PolicyNoise(jax.random.normal(key, (cfg.action_dim,)))


def draw_score_noise(cfg: Config, key: jax.Array) -> ScoreNoise:
    T, H, A = max(cfg.diffusion_steps, 2), cfg.horizon, cfg.action_dim
    S = cfg.diffusion_num_samples_mf
    k = jax.random.split(key, 4)
    return ScoreNoise(
        tau=jax.random.randint(k[0], (), 1, T, dtype=jnp.int32),
        x_tau=jax.random.normal(k[1], (H, A)),
        sample_eps=jax.random.normal(k[2], (S, H, A)),
        value=draw_value_noise(cfg, k[3], S),
    )


def draw_update_noise(cfg: Config, key: jax.Array, batch_size: int | None = None) -> UpdateNoise:
    """Noise of one update; batch_size defaults to cfg.batch_size (the batch's B if given)."""
    H, A, M, Nq = cfg.horizon, cfg.action_dim, cfg.mlp_dim, cfg.num_q
    B = cfg.batch_size if batch_size is None else batch_size
    keep = 1.0 - cfg.dropout
    k = jax.random.split(key, 10)
    return UpdateNoise(
        target_pi_eps=jax.random.normal(k[0], (H, B, A)),
        target_q_pair=pairs(k[1], Nq),
        q_keep=jax.random.bernoulli(k[2], keep, (Nq, H, B, M)).astype(jnp.float32),
        energy_pi_eps=jax.random.normal(k[3], (H, B, A)),
        energy_gauss=jax.random.normal(k[4], (H, B, A)),
        energy_uniform=jax.random.uniform(k[5], (H, B, A), minval=-1.0, maxval=1.0),
        pi_eps=jax.random.normal(k[6], (H + 1, B, A)),
        pi_q_pair=pairs(k[7], Nq),
        pi_q_keep=jax.random.bernoulli(k[8], keep, (2, H + 1, B, M)).astype(jnp.float32),
        score=draw_score_noise(cfg, k[9]) if cfg.use_score_network else None,
        # a key of its own (not an 11th split) keeps the state-obs draws unchanged
        obs_shift=draw_shift(jax.random.fold_in(key, 10), H + 1, B) if cfg.obs == "rgb" else None,
    )


def to_jax(noise: object) -> object:
    """A numpy noise bundle (mbdpo_core.noise.draw_*) as jax arrays of the same pytree."""
    return jax.tree.map(jnp.asarray, noise)


def draw_plan_noise(cfg: Config, key: jax.Array) -> DiffusionNoise | MppiNoise | PolicyNoise:
    """The noise bundle of cfg.planner."""
    drawers = {
        "diffusion": draw_diffusion_noise,
        "mppi": draw_mppi_noise,
        "policy": draw_policy_noise,
    }
    return drawers[cfg.planner](cfg, key)
