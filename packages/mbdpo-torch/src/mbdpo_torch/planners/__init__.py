"""The three planners behind one interface, chosen by cfg.planner (validated by core's config).

Every planner is a pure function
    plan(model, z [1, Z], prev_plan [H, A], t0, eval_mode, task [1] | None, noise, energy_stats)
        -> (action [A], plan [H, A])
taking its noise bundle (mbdpo_core.noise: DiffusionNoise, MppiNoise, PolicyNoise) from the
caller (docs/design.md#noise-bundles).
"""

from __future__ import annotations

from collections.abc import Callable

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


__all__ = ["make_planner"]
