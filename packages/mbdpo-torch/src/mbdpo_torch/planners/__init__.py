"""The three planners behind one interface, chosen by cfg.planner (validated by core's config).

Every planner is a pure function
    plan(model, z [1, Z], prev_plan [H, A], t0, eval_mode, task [1] | None, noise, energy_stats)
        -> (action [A], plan [H, A])
taking its noise bundle (mbdpo_core.noise: DiffusionNoise, MppiNoise, PolicyNoise) from the
caller (docs/design.md#noise-bundles).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from mbdpo_core.config.load import CHOICES
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import ConfigError

from . import diffusion, mppi, policy


def make_planner(cfg: Config) -> Callable:
    """The plan function of cfg.planner (diffusion | mppi | policy).

    Raises:
        ConfigError: an unknown planner name (with the valid choices).
    """
    if cfg.planner not in CHOICES["planner"]:
        choices = ", ".join(CHOICES["planner"])
        raise ConfigError(f"Invalid planner={cfg.planner!r}. Valid choices: {choices}.")
    return {"diffusion": diffusion.plan, "mppi": mppi.plan, "policy": policy.plan}[cfg.planner]


def make_env_planner(cfg: Config) -> Callable:
    """The plan function of cfg.planner for N environments of one task in one batched call
    (torch.func.vmap over a leading env axis; docs/design.md#vectorised-acting):

        plan_envs(model, z [N, 1, Z], prev_plans [N, H, A], t0 [N] bool, eval_mode,
                  task [1] | None, noise (every field [N, ...]), energy_stats)
            -> (actions [N, A], plans [N, H, A])

    Environment n gets exactly what a single call on its slices gives.
    """
    plan = make_planner(cfg)

    def plan_envs(model, z, prev_plans, t0, eval_mode, task, noise, energy_stats):
        bundle = type(noise)
        arrays = {f.name: getattr(noise, f.name) for f in dataclasses.fields(noise)}
        arrays = {k: v for k, v in arrays.items() if v is not None}

        def one(z, prev_plan, t0, arrays):
            return plan(model, z, prev_plan, t0, eval_mode, task, bundle(**arrays), energy_stats)

        return torch.func.vmap(one)(z, prev_plans, t0, arrays)

    return plan_envs


__all__ = ["make_planner", "make_env_planner"]
