"""Policy-prior planner (spec "Policy planner"): no search, the prior's mean or a sample.

Shapes: Z latent, A action, H horizon.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from mbdpo_core.noise import PolicyNoise

from ..world_model import WorldModel
from .diffusion import action_mask


def plan(
    wm: WorldModel,
    z: jax.Array,
    prev_plan: jax.Array,
    t0: jax.Array,
    eval_mode: jax.Array,
    task: jax.Array | None,
    noise: PolicyNoise,
    energy_stats: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """Eval: the squashed mean (masked); training: a sample with noise.action_eps.

    `t0` and `energy_stats` are accepted for the uniform planner signature and unused.

    Shapes: z [1, Z], prev_plan [H, A] -> (action [A], prev_plan [H, A] unchanged).
    """
    action, info = wm.pi(z[0], task, noise.action_eps)
    mean = info["mean"] * action_mask(wm, task)
    return jnp.where(eval_mode, mean, action), prev_plan
