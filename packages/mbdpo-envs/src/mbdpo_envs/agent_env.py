"""The environment of one task as an agent sees it (docs/design.md#evaluation).

A single-task agent acts in the task's own environment; a multi-task agent (mt30/mt80) sees every
task padded to its widest observation and action, so one task of its set is wrapped in a
one-task `MultitaskEnv` at the agent's widths. `make_agent_env` is a top-level function, so it
can be handed to worker processes.
"""

from __future__ import annotations

from mbdpo_core.config.schema import Config

from .env import Env
from .make import make
from .wrappers.multitask import MultitaskEnv

__all__ = ["make_agent_env"]


def make_agent_env(cfg: Config, task: str, seed: int) -> Env | MultitaskEnv:
    """Build task `task`'s environment for the agent of `cfg`.

    Args:
        cfg: the agent's config (its obs mode; for a multi-task agent its widths).
        task: a registered task name (one of cfg.tasks for a multi-task agent).
        seed: seeds the task's randomness, as in `make`.

    Returns:
        `make(task, seed, cfg.obs)` for a single-task agent; for a multi-task agent a
        `MultitaskEnv` of that one task padded to obs (cfg.obs_shape[0],) and action
        (cfg.action_dim,).

    Raises:
        UnknownTaskError, ConfigError, MissingExtraError: as `make`.
        ShapeError: the task is wider than the multi-task agent.
    """
    if not cfg.multitask:
        return make(task, seed, cfg.obs)
    return MultitaskEnv([make(task, seed)], obs_dim=cfg.obs_shape[0], action_dim=cfg.action_dim)
