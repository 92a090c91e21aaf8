"""The training batch handed from a buffer to `Agent.update`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Batch:
    """B sub-trajectories of H+1 consecutive rows, time-major, numpy.

    Shapes:
      obs [H+1, B, *O] float32 (uint8 for rgb), action [H, B, A], reward [H, B, 1],
      terminated [H, B, 1] (0/1 float32), task [B] int64 or None (single-task).
    Row t of obs is the observation before action[t]; reward[t] follows action[t].
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    task: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        return self.action.shape[0]

    @property
    def batch_size(self) -> int:
        return self.action.shape[1]
