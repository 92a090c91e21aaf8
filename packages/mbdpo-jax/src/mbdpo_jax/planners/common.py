"""Pieces shared by the planners (docs/method.md#diffusion-planner, #mppi): warm start,
action masks, policy rollouts, elite selection and weighting.

Shapes: N candidates, P policy rollouts, H horizon, A action, Z latent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..world_model import WorldModel


def action_mask(model: WorldModel, task: jax.Array | None) -> jax.Array:
    """The task's action mask. Shapes: task [] -> [A] (ones single-task)."""
    return model.action_mask(task)


def warm_start(prev_plan: jax.Array, t0: jax.Array) -> jax.Array:
    """Zeros at t0, else the previous plan shifted by one step. Shapes: [H, A] -> [H, A]."""
    shifted = jnp.concatenate([prev_plan[1:], jnp.zeros_like(prev_plan[:1])], axis=0)
    return jnp.where(t0, jnp.zeros_like(prev_plan), shifted)


def policy_rollouts(
    model: WorldModel, z: jax.Array, task: jax.Array | None, pi_eps: jax.Array, mask: jax.Array
) -> jax.Array:
    """Policy-prior trajectories from one latent. Shapes: z [1, Z], pi_eps [H, P, A] ->
    [P, H, A]."""
    steps = []
    for h in range(pi_eps.shape[0]):
        ap, _ = model.pi(z, task, pi_eps[h])
        ap = jnp.clip(mask * ap, -1.0, 1.0)
        steps.append(ap)
        z = model.next(z, ap, task)
    return jnp.stack(steps, axis=1)


def elite_indices(v: jax.Array, count: int) -> jax.Array:
    """Indices of the `count` largest values, by decreasing value (the first index on ties).
    Shapes: v [N] -> [count]."""
    return jax.lax.top_k(v, count)[1]


def weighted_mean(v: jax.Array, samples: jax.Array, elites: int, temperature: float) -> jax.Array:
    """Mean of the samples under the softmax of their standardised values / temperature, over
    the top `elites` (all when 0 or >= N). Shapes: v [N], samples [N, H, A] -> [H, A]."""
    n = v.shape[0]
    sv = jnp.std(v, ddof=1) if n > 1 else jnp.float32(0.0)
    sv = jnp.where(sv < 1e-4, 1.0, sv)
    logits = ((v - jnp.mean(v)) / sv) / max(temperature, 1e-6)
    if 0 < elites < n:
        idx = elite_indices(v, elites)
        logits, samples = logits[idx], samples[idx]
    w = jax.nn.softmax(logits)
    return jnp.einsum("n,nha->ha", w, samples)
