"""The two published TD-MPC2 datasets and the arrays of one chunk (docs/data.md#the-datasets)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ARRAYS",
    "DTYPES_VALID",
    "DatasetLayout",
    "LAYOUTS",
    "OPTIONAL_ARRAYS",
    "SOURCE_URL",
    "dtype_ok",
]

SOURCE_URL = "https://huggingface.co/datasets/nicklashansen/tdmpc2/resolve/main"
"""Where TD-MPC2 publishes the chunks: `<SOURCE_URL>/<dataset>/chunk_<i>.pt`."""

ARRAYS = ("obs", "action", "reward", "task")
"""Arrays every chunk holds, each [episodes, T, ...] (see `DatasetLayout.shapes`)."""

OPTIONAL_ARRAYS = ("terminated",)
"""Arrays a chunk may hold; a reader takes zeros when they are absent."""


@dataclass(frozen=True)
class DatasetLayout:
    """What every chunk of one dataset looks like.

    episode_rows: T, rows per episode (row 0 holds the reset observation and a filler
        action/reward); obs_dim / action_dim: widths every task is zero-padded to;
        n_tasks: task ids run over [0, n_tasks); chunks: how many chunks are published.
    """

    name: str
    episode_rows: int
    obs_dim: int
    action_dim: int
    n_tasks: int
    chunks: int

    def shapes(self, episodes: int) -> dict[str, tuple[int, ...]]:
        """name -> expected shape of each array of a chunk of `episodes` episodes."""
        n, T = episodes, self.episode_rows
        return {
            "obs": (n, T, self.obs_dim),
            "action": (n, T, self.action_dim),
            "reward": (n, T),
            "task": (n, T),
            "terminated": (n, T),
        }

    def urls(self) -> list[str]:
        return [f"{SOURCE_URL}/{self.name}/chunk_{i}.pt" for i in range(self.chunks)]


LAYOUTS = {
    "mt30": DatasetLayout("mt30", episode_rows=501, obs_dim=24, action_dim=6, n_tasks=30, chunks=4),
    "mt80": DatasetLayout(
        "mt80", episode_rows=101, obs_dim=39, action_dim=6, n_tasks=80, chunks=20
    ),
}
"""dataset name -> layout (facts from TD-MPC2's published files)."""


def dtype_ok(name: str, dtype: np.dtype) -> bool:
    """Whether array `name` may have `dtype`: float32 for obs/action/reward, an integer type for
    task, bool or float32 for terminated."""
    if name == "task":
        return np.issubdtype(dtype, np.integer)
    if name == "terminated":
        return dtype in (np.dtype(bool), np.dtype(np.float32))
    return dtype == np.dtype(np.float32)


DTYPES_VALID = {
    "obs": "float32",
    "action": "float32",
    "reward": "float32",
    "task": "an integer type",
    "terminated": "bool or float32",
}
"""array name -> the dtypes `dtype_ok` accepts, in words (for error messages)."""
