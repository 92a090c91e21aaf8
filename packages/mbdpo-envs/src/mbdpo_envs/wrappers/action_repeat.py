"""Action repeat: apply one agent action for `repeat` simulator steps."""

from __future__ import annotations

import numpy as np

from ..env import Env, StepResult, Wrapper


class ActionRepeat(Wrapper):
    """Repeats the action `repeat` times and sums the rewards (a None reward counts 0).

    Stops early when the inner env terminates or truncates; the returned observation and info
    are those of the last simulator step taken.
    """

    def __init__(self, env: Env, repeat: int):
        super().__init__(env)
        if repeat < 1:
            raise ValueError(f"Action repeat must be >= 1, got {repeat}.")
        self.repeat = int(repeat)

    def _step(self, action: np.ndarray) -> StepResult:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += 0.0 if reward is None else float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info
