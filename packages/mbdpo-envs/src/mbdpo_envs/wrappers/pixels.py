"""Pixel observations: render the scene after each agent step and stack the last frames."""

from __future__ import annotations

from collections import deque

import numpy as np

from ..env import Env, Info, Obs, StepResult, Wrapper


class PixelStack(Wrapper):
    """Replaces the observation by the last `frames` RGB renders, channel-first.

    On reset the first frame is repeated `frames` times. Frames are stacked oldest first, so
    the newest frame is the last 3 channels.

    Shapes:
        obs: (3 * frames, size, size) uint8
    """

    def __init__(self, env: Env, size: int = 64, frames: int = 3):
        super().__init__(env, observation_shape=(3 * frames, size, size), obs_mode="rgb")
        self.size = size
        self._frames: deque[np.ndarray] = deque(maxlen=frames)

    def _frame(self) -> np.ndarray:
        return np.ascontiguousarray(self.env.render(self.size, self.size).transpose(2, 0, 1))

    def _obs(self) -> Obs:
        return np.concatenate(self._frames, axis=0).astype(np.uint8, copy=False)

    def _reset(self, seed: int | None) -> tuple[Obs, Info]:
        _, info = self.env.reset(seed)
        frame = self._frame()
        for _ in range(self._frames.maxlen):
            self._frames.append(frame)
        return self._obs(), info

    def _step(self, action: np.ndarray) -> StepResult:
        _, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(self._frame())
        return self._obs(), reward, terminated, truncated, info
