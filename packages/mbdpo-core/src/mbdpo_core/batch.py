"""The training batch handed from a buffer to `Agent.update`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config.schema import Config
from .errors import ShapeError
from .shapes import check_shape


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


def check_batch(batch: Batch, cfg: Config) -> None:
    """Raise ShapeError naming the first field whose shape does not match cfg (any H and B)."""
    if batch.action.ndim != 3:
        raise ShapeError(f"batch.action has shape {batch.action.shape}, expected [H B A].")
    H, B = batch.action.shape[:2]
    obs_spec = " ".join(["H+1", "B", *map(str, cfg.obs_shape)])
    check_shape("batch.obs", batch.obs, obs_spec, H=H, B=B)
    check_shape("batch.action", batch.action, "H B A", H=H, B=B, A=cfg.action_dim)
    check_shape("batch.reward", batch.reward, "H B 1", H=H, B=B)
    check_shape("batch.terminated", batch.terminated, "H B 1", H=H, B=B)
    if cfg.multitask:
        if batch.task is None:
            raise ShapeError("a multi-task agent needs batch.task [B].")
        check_shape("batch.task", batch.task, "B", B=B)
