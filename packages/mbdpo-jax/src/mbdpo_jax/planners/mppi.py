"""TD-MPC2's MPPI over the MBDPO value estimate (docs/method.md#mppi); the iterations run in
one `lax.scan`.

Shapes: N samples, P policy rollouts, E elites, H horizon, A action, Z latent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from mbdpo_core.noise import MppiNoise, ValueNoise

from ..value import clean_values, value_estimate
from ..world_model import WorldModel
from .common import action_mask, elite_indices, policy_rollouts, warm_start


def plan(
    model: WorldModel,
    z: jax.Array,
    prev_plan: jax.Array,
    t0: jax.Array,
    eval_mode: jax.Array,
    task: jax.Array | None,
    noise: MppiNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """One act of MPPI; elites ordered by decreasing value.

    Shapes: z [1, Z], prev_plan [H, A] -> (action [A], plan [H, A]) with plan the final mean
    (the next warm start).
    """
    cfg = model.cfg
    mask = action_mask(model, task)
    N = cfg.num_samples
    P = min(cfg.num_pi_trajs, N)
    E = min(cfg.num_elites, N)
    H, A = cfg.horizon, cfg.action_dim
    pi_trajs = policy_rollouts(model, z, task, noise.pi_eps[:, :P], mask) if P > 0 else None
    mean = warm_start(prev_plan, t0)
    std = jnp.full((H, A), cfg.max_std, jnp.float32)

    def step(carry, inputs):
        mean, std, _, _ = carry
        sample_eps, value_pi_eps, value_q_pair = inputs
        sampled = jnp.clip(mean + std * sample_eps, -1.0, 1.0)
        actions = sampled if pi_trajs is None else jnp.concatenate([pi_trajs, sampled], axis=0)
        actions = actions * mask
        vnoise = ValueNoise(value_pi_eps, value_q_pair)
        v = clean_values(value_estimate(model, z, actions, task, vnoise, energy_stats)[:, 0])
        idx = elite_indices(v, E)
        v_elite, a_elite = v[idx], actions[idx]
        w = jnp.exp(cfg.temperature * (v_elite - jnp.max(v_elite)))
        w = w / jnp.sum(w)
        mean = jnp.einsum("e,eha->ha", w, a_elite) / (jnp.sum(w) + 1e-9)
        var = jnp.einsum("e,eha->ha", w, jnp.square(a_elite - mean)) / (jnp.sum(w) + 1e-9)
        std = jnp.clip(jnp.sqrt(var), cfg.min_std, cfg.max_std) * mask
        return (mean, std, w, a_elite), None

    init = (mean, std, jnp.zeros(E, jnp.float32), jnp.zeros((E, H, A), jnp.float32))
    xs = (noise.sample_eps, noise.value_pi_eps, noise.value_q_pair)
    (mean, std, w, a_elite), _ = jax.lax.scan(step, init, xs)
    j = jnp.argmax(jnp.log(w) + noise.gumbel[:E])
    action = a_elite[j, 0]
    action = jnp.where(eval_mode, action, action + std[0] * noise.action_eps)
    return jnp.clip(action, -1.0, 1.0), mean
