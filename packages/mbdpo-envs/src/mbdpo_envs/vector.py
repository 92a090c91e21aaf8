"""N environments of one task stepped in worker processes through gymnasium's vector API
(`gymnasium.vector.AsyncVectorEnv`; docs/design.md#vectorised-acting).

Each worker builds the task's environment as the agent sees it (`make_agent_env`) with its own
construction seed (`env_seed(seed, n)`), wrapped as a `gymnasium.Env` whose spaces are the
agent's widths. Autoreset is off: the loop resets every environment itself, each with its own
episode seed. `make_vector_env` is the factory the online loop gets its environments from.

Shapes: reset(seed=[N seeds]) -> obs [N, *O], info; step(actions [N, A]) -> obs [N, *O],
reward [N], terminated [N], truncated [N], info (each key an array [N], gymnasium's layout).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from mbdpo_core.config.schema import Config
from mbdpo_core.loops.seeds import env_seed

from .agent_env import make_agent_env

__all__ = ["GymnasiumEnv", "make_vector_env"]


class GymnasiumEnv(gymnasium.Env):
    """One environment of the agent of `cfg` as a `gymnasium.Env`: Box spaces of the agent's
    observation (float32; rgb uint8 in [0, 255]) and action ([-1, 1]^A) widths.

    Args:
        cfg: the agent's config (obs mode and widths).
        env: an `Env` (or a one-task `MultitaskEnv`) at those widths.
    """

    def __init__(self, cfg: Config, env: Any) -> None:
        self.env = env
        shape = tuple(cfg.obs_shape)
        if cfg.obs == "rgb":
            self.observation_space = gymnasium.spaces.Box(0, 255, shape, np.uint8)
        else:
            self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape, np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (cfg.action_dim,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """The wrapped env's reset(seed); options are not used."""
        return self.env.reset(seed=seed)

    def step(self, action: np.ndarray):
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()


def _worker_env(cfg: Config, task: str, seed: int) -> GymnasiumEnv:
    """What one worker process builds (a top-level function: spawned workers unpickle it)."""
    return GymnasiumEnv(cfg, make_agent_env(cfg, task, seed))


def make_vector_env(cfg: Config, task: str, seed: int, num_envs: int) -> AsyncVectorEnv:
    """`num_envs` environments of `task` for the agent of `cfg`, each in its own worker process
    (spawned, so a multithreaded parent is never forked) with construction seed
    env_seed(seed, n); autoreset off.

    Raises:
        UnknownTaskError, ConfigError, MissingExtraError: as `make_agent_env`, in this process
            (AsyncVectorEnv builds the first environment here to read its spaces).
    """
    fns = [functools.partial(_worker_env, cfg, task, env_seed(seed, n)) for n in range(num_envs)]
    return AsyncVectorEnv(fns, context="spawn", autoreset_mode=AutoresetMode.DISABLED)
