"""The three planners behind one interface, chosen by cfg.planner (never switched silently).

Every planner is a pure function
    plan(wm, z [1, Z], prev_plan [H, A], t0 [], eval_mode [], task [] | None, noise,
         energy_stats) -> (action [A], plan [H, A])
taking its noise bundle (mbdpo_core.noise: DiffusionNoise, MppiNoise, PolicyNoise) from the
caller; mbdpo_jax.noise.draw_plan_noise draws it from a key inside a jitted act.
"""

from __future__ import annotations

from collections.abc import Callable

from mbdpo_core.config.schema import Config
from mbdpo_core.errors import ConfigError

from . import diffusion, mppi, policy

PLANNERS: dict[str, Callable] = {
    "diffusion": diffusion.plan,
    "mppi": mppi.plan,
    "policy": policy.plan,
}


def make_planner(cfg: Config) -> Callable:
    """The plan function of cfg.planner (diffusion | mppi | policy)."""
    if cfg.planner not in PLANNERS:
        raise ConfigError(f"Invalid planner={cfg.planner!r}. Valid choices: {', '.join(PLANNERS)}.")
    return PLANNERS[cfg.planner]


__all__ = ["PLANNERS", "make_planner"]
