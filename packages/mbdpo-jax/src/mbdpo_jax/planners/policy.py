"""The policy-prior planner (docs/method.md#policy-planner): no search, the prior's mean
(evaluation) or a sample (training).

Shapes: Z latent, A action, H horizon.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from mbdpo_core.noise import PolicyNoise

from ..world_model import WorldModel
from .common import action_mask


def plan(
    model: WorldModel,
    z: jax.Array,
    prev_plan: jax.Array,
    t0: jax.Array,
    eval_mode: jax.Array,
    task: jax.Array | None,
    noise: PolicyNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """Eval: the squashed mean (masked); training: a sample with noise.action_eps. `t0` and
    `energy_stats` are unused (the planners' common signature).

    Shapes: z [1, Z], prev_plan [H, A] -> (action [A], prev_plan [H, A] unchanged).
    """
    action, info = model.pi(z[0], task, noise.action_eps)
    mean = info["mean"] * action_mask(model, task)
    return jnp.where(eval_mode, mean, action), prev_plan
