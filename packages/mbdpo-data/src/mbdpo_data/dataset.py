"""A converted dataset read through memory maps: batches of H+1 consecutive rows of one episode.

`OfflineDataset(root)` opens the manifest and maps every array of every `.npz` chunk
(`npz_io.open_npz`); nothing is read until a batch asks for its rows, so a 100 GB dataset costs
only the pages its batches touch. `sample` draws B start rows uniformly over every valid start of
every episode (each transition equally likely, as `mbdpo_core.buffer.ReplayBuffer` does): a start
s of an episode of T rows is valid when s + H < T, so a slice never crosses an episode
(docs/data.md#reading).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mbdpo_core.batch import Batch
from mbdpo_core.errors import ConfigError, DataFormatError

from .layouts import LAYOUTS, DatasetLayout
from .manifest import read_manifest
from .npz_io import open_npz

__all__ = ["OfflineDataset"]


class OfflineDataset:
    """The `.npz` chunks of a converted dataset, memory-mapped.

    Attributes: layout (DatasetLayout), episodes (int), transitions (int: episodes x (T - 1)),
    task_range ([low, high] of the task ids present).
    """

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        manifest = read_manifest(root) if root.is_dir() else None
        if manifest is None:
            raise ConfigError(
                f"{root} is not a converted dataset (no manifest.json); convert the .pt chunks "
                "first: uv run apps/convert SRC DST."
            )
        if not manifest["complete"]:
            raise DataFormatError(
                f"{root}: the conversion did not finish; rerun the same apps/convert command."
            )
        self.layout: DatasetLayout = LAYOUTS[manifest["dataset"]]
        self.task_range = manifest["task_range"]
        self._chunks = []
        for record in manifest["chunks"]:
            arrays = open_npz(root / record["name"])
            if arrays["obs"].shape[0] != record["episodes"]:
                raise DataFormatError(f"{root / record['name']}: not the file its manifest lists.")
            if record["episodes"]:
                self._chunks.append(arrays)
        self.episodes = sum(len(c["obs"]) for c in self._chunks)
        self.transitions = self.episodes * (self.layout.episode_rows - 1)
        self._episode_starts = np.cumsum([0] + [len(c["obs"]) for c in self._chunks])

    def sample(self, batch_size: int, horizon: int, rng: np.random.Generator) -> Batch:
        """B slices of H+1 rows, start rows uniform over all valid starts.

        Shapes: obs [H+1, B, obs_dim] float32, action [H, B, action_dim], reward [H, B, 1],
        terminated [H, B, 1] (zeros when the dataset has none), task [B] int64.
        """
        T = self.layout.episode_rows
        starts_per_episode = T - horizon
        if starts_per_episode < 1:
            raise ConfigError(
                f"horizon={horizon} needs episodes of more than {horizon} rows; "
                f"{self.layout.name}'s have {T}."
            )
        flat = rng.integers(0, self.episodes * starts_per_episode, batch_size)
        episode, start = np.divmod(flat, starts_per_episode)
        chunk = np.searchsorted(self._episode_starts, episode, side="right") - 1
        local = episode - self._episode_starts[chunk]

        H, B, L = horizon, batch_size, self.layout
        obs = np.empty((B, H + 1, L.obs_dim), np.float32)
        action = np.empty((B, H, L.action_dim), np.float32)
        reward = np.empty((B, H), np.float32)
        terminated = np.zeros((B, H), np.float32)
        task = np.empty(B, np.int64)
        offsets = np.arange(H + 1)
        for c in np.unique(chunk):
            picked = np.flatnonzero(chunk == c)
            arrays = self._chunks[c]
            rows = (local[picked] * T + start[picked])[:, None] + offsets  # [b, H+1] flat rows
            obs[picked] = arrays["obs"].reshape(-1, L.obs_dim)[rows]
            action[picked] = arrays["action"].reshape(-1, L.action_dim)[rows[:, 1:]]
            reward[picked] = arrays["reward"].reshape(-1)[rows[:, 1:]]
            if "terminated" in arrays:
                terminated[picked] = arrays["terminated"].reshape(-1)[rows[:, 1:]]
            task[picked] = arrays["task"][local[picked], 0]
        return Batch(
            obs=np.ascontiguousarray(obs.transpose(1, 0, 2)),
            action=np.ascontiguousarray(action.transpose(1, 0, 2)),
            reward=np.ascontiguousarray(reward.T[..., None]),
            terminated=np.ascontiguousarray(terminated.T[..., None]),
            task=task,
        )
