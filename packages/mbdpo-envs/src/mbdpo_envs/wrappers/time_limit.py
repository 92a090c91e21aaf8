"""Time limit: end the episode (truncated=True) after `episode_length` agent steps."""

from __future__ import annotations

import numpy as np

from ..env import Env, Info, Obs, StepResult, Wrapper


class TimeLimit(Wrapper):
    """Counts agent steps and sets `truncated=True` at the limit.

    A termination of the inner env is passed through unchanged (terminated=True,
    truncated=False unless the limit is reached on the same step).
    """

    def __init__(self, env: Env, episode_length: int):
        super().__init__(env)
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}.")
        self.episode_length = int(episode_length)
        self._t: int | None = None

    @property
    def elapsed_steps(self) -> int:
        """Agent steps taken in the current episode."""
        return self._t or 0

    def _reset(self, seed: int | None) -> tuple[Obs, Info]:
        self._t = 0
        return self.env.reset(seed)

    def _step(self, action: np.ndarray) -> StepResult:
        if self._t is None:
            raise RuntimeError(f"{self.spec.name}: call reset() before step().")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        truncated = truncated or self._t >= self.episode_length
        return obs, reward, terminated, truncated, info
