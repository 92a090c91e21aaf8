"""The planners behind one interface, chosen by cfg.planner (never switched silently).

Every planner is a pure function
    plan(model, z [1, Z], prev_plan [H, A], t0 [], eval_mode [], task [] | None, noise,
         energy_stats) -> (action [A], plan [H, A])
taking its noise bundle (DiffusionNoise, MppiNoise, PolicyNoise of mbdpo_core.noise) from the
caller; the agent draws it from its key inside the jitted act.
"""

from __future__ import annotations

from collections.abc import Callable

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
