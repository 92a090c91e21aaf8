"""The planners behind one interface, chosen by cfg.planner (never switched silently).

Every planner is a pure function
    plan(model, z [1, Z], prev_plan [H, A], t0 [], eval_mode [], task [] | None, noise,
         energy_stats) -> (action [A], plan [H, A])
taking its noise bundle (DiffusionNoise, MppiNoise, PolicyNoise of mbdpo_core.noise) from the
caller; the agent draws it from its key inside the jitted act.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from mbdpo_core.config.load import CHOICES
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import ConfigError

from . import diffusion, mppi, policy


def make_planner(cfg: Config) -> Callable:
    """The plan function of cfg.planner (diffusion | mppi | policy)."""
    planners = {"diffusion": diffusion.plan, "mppi": mppi.plan, "policy": policy.plan}
    if cfg.planner not in planners:
        valid = ", ".join(CHOICES["planner"])
        raise ConfigError(f"Invalid planner={cfg.planner!r}. Valid choices: {valid}.")
    return planners[cfg.planner]


def make_env_planner(cfg: Config) -> Callable:
    """The plan function of cfg.planner for N environments of one task in one batched call
    (jax.vmap over a leading env axis; docs/design.md#vectorised-acting):

        plan_envs(model, z [N, 1, Z], prev_plans [N, H, A], t0 [N] bool, eval_mode [],
                  task [] | None, noise (every field [N, ...]), energy_stats)
            -> (actions [N, A], plans [N, H, A])

    Environment n gets exactly what a single call on its slices gives.
    """
    plan = make_planner(cfg)

    def plan_envs(model, z, prev_plans, t0, eval_mode, task, noise, energy_stats):
        def one(z, prev_plan, t0, noise):
            return plan(model, z, prev_plan, t0, eval_mode, task, noise, energy_stats)

        return jax.vmap(one)(z, prev_plans, t0, noise)

    return plan_envs
