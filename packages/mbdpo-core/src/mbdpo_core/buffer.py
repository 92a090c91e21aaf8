"""Episodic replay in numpy: whole episodes in, time-major `Batch` slices out.

An episode of T steps has T+1 rows. Row 0 holds the reset observation and NaN action, reward and
terminated; row k >= 1 holds the observation after step k and the action, reward and terminated
flag of step k. A slice of H+1 consecutive rows of one episode becomes one batch element: all
H+1 observations, and action/reward/terminated of rows 1..H (so row 0's NaNs are never used).

Sampling is uniform over all valid start rows of all stored episodes (every transition equally
likely), not uniform over episodes then starts. Episodes shorter than H+1 rows are never sampled.
Storage is a ring of `capacity` rows, allocated as it fills (so a large capacity costs nothing
until used); when it is full the oldest whole episodes are dropped. Rows are numbered by how many
were written before them (`written` counts them all); row i sits in ring row i % capacity. An
episode with a NaN or infinite value (outside row 0's NaNs) is refused, so one divergence does not
poison every later batch. `mbdpo_core.replay_snapshots` saves the ring incrementally.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import numpy as np

from .batch import Batch
from .config.validate import CHOICES
from .errors import CheckpointError, ConfigError, DataFormatError, ShapeError

__all__ = ["EpisodeRecord", "EpisodeRecorder", "ReplayBuffer", "SAMPLING"]

SAMPLING = CHOICES["replay_sampling"]
"""How `ReplayBuffer.sample` picks start rows (see its class docstring)."""

_FIELDS = ("obs", "action", "reward", "terminated", "task", "left")  # the ring's arrays


class EpisodeRecord(TypedDict, total=False):
    """One episode as a plain dict, row 0 = reset (`terminated` and `task` may be absent).

    Shapes:
      obs [T+1, *O], action [T+1, A] float32 (row 0 NaN), reward [T+1] float32 (row 0 NaN),
      terminated [T+1] float32 (row 0 NaN); task: int id or None (single-task).
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    task: int | None


class EpisodeRecorder:
    """Accumulates the rows of the running episode: construct with the reset obs, `add` per step.

    Args:
        obs: the reset observation [*O].
        task: task id of the episode, or None (single-task).
    """

    def __init__(self, obs: np.ndarray, task: int | None = None) -> None:
        self._obs = [np.asarray(obs)]
        self._action: list[np.ndarray] = []
        self._reward: list[float] = []
        self._terminated: list[float] = []
        self._task = task
        self.success = 0.0  # info["success"] of the last step (the final-step success)

    def __len__(self) -> int:
        """Steps recorded so far (rows - 1)."""
        return len(self._action)

    def add(
        self,
        action: np.ndarray,
        reward: float,
        terminated: bool,
        obs: np.ndarray,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one step: action [A] taken, its reward and terminated flag, obs [*O] after it."""
        self._action.append(np.asarray(action, dtype=np.float32))
        self._reward.append(float(reward))
        self._terminated.append(float(terminated))
        self._obs.append(np.asarray(obs))
        self.success = float((info or {}).get("success", 0.0))

    def finish(self) -> EpisodeRecord:
        """The episode recorded so far as arrays (row 0 NaN); needs at least one step."""
        if not self._action:
            raise RuntimeError("EpisodeRecorder.finish needs at least one add() after the reset.")
        nan = np.full(1, np.nan, np.float32)
        return EpisodeRecord(
            obs=np.stack(self._obs),
            action=np.stack([np.full_like(self._action[0], np.nan), *self._action]),
            reward=np.concatenate([nan, np.asarray(self._reward, np.float32)]),
            terminated=np.concatenate([nan, np.asarray(self._terminated, np.float32)]),
            task=self._task,
        )


class ReplayBuffer:
    """Ring storage of whole episodes; `sample` draws `Batch` slices that never cross episodes.

    Args:
        capacity: maximum number of stored rows (an episode of T steps uses T+1 rows).
        obs_shape: O, the shape of one observation.
        action_dim: A.
        obs_dtype: storage dtype of observations (float32 for states, uint8 for rgb).
        seed: seed of the sampler's numpy Generator.
        sampling: "rows": slices uniform over all valid start rows (every stored transition
            equally likely); "episodes" (published): an episode uniformly, then a start in it.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_dim: int,
        obs_dtype: np.dtype | type = np.float32,
        seed: int | None = None,
        sampling: str = "rows",
    ) -> None:
        if sampling not in SAMPLING:
            raise ConfigError(
                f"Invalid sampling={sampling!r}. Valid choices: {', '.join(SAMPLING)}."
            )
        self.sampling = sampling
        if capacity < 2:
            raise ConfigError(f"replay capacity must be >= 2 rows, got {capacity}.")
        self.capacity = int(capacity)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.action_dim = int(action_dim)
        self.obs_dtype = np.dtype(obs_dtype)
        self._rng = np.random.default_rng(seed)
        self._size = 0  # allocated rows: storage grows on demand up to capacity
        self._obs = np.zeros((0, *self.obs_shape), self.obs_dtype)
        self._action = np.zeros((0, self.action_dim), np.float32)
        self._reward = np.zeros(0, np.float32)
        self._terminated = np.zeros(0, np.float32)
        self._task = np.zeros(0, np.int64)
        self._left = np.zeros(0, np.int32)  # rows after this one in its episode (-1: none)
        self._write = 0  # next row to write; the oldest episode (or a gap) starts here
        self._filled = 0  # rows ever written, at most capacity
        self._written = 0  # rows ever written; _write == _written % capacity
        self._rows = 0
        self._episodes = 0
        self._has_task: bool | None = None
        self._starts: dict[int, Any] = {}  # horizon -> how to draw start rows (cache)

    def _reserve(self, rows: int) -> None:
        """Grow the storage (doubling, at most capacity) so that it holds `rows` rows."""
        if rows <= self._size:
            return
        size = min(self.capacity, max(rows, 2 * self._size, 1024))
        for name, fill in (
            ("obs", 0),
            ("action", 0),
            ("reward", 0),
            ("terminated", 0),
            ("task", 0),
            ("left", -1),
        ):
            old = getattr(self, f"_{name}")
            new = np.full((size, *old.shape[1:]), fill, old.dtype)
            new[: self._size] = old
            setattr(self, f"_{name}", new)
        self._size = size

    def __len__(self) -> int:
        """Stored transitions (rows minus one reset row per episode)."""
        return self._rows - self._episodes

    @property
    def num_episodes(self) -> int:
        return self._episodes

    @property
    def written(self) -> int:
        """Rows ever written: the number of the next row (its ring row is written % capacity)."""
        return self._written

    def add(self, episode: EpisodeRecord | Mapping[str, Any] | Any) -> None:
        """Store one episode (a dict, or an object with the same attributes), dropping old ones.

        Shapes:
          obs [T+1, *O], action [T+1, A], reward [T+1], terminated [T+1] (optional), T >= 1.
        """
        if isinstance(episode, Mapping):
            get = episode.get
        else:
            get = lambda key: getattr(episode, key, None)  # noqa: E731
        obs, action, reward = get("obs"), get("action"), get("reward")
        n = len(obs)
        terminated = get("terminated")
        terminated = np.zeros(n, np.float32) if terminated is None else terminated
        task = get("task")
        rows = self._check(n, obs, action, reward, terminated, task)

        self._reserve(min(self.capacity, self._write + n))
        if self._write + n > self.capacity:
            self._reserve(self.capacity)
        region = (self._write + np.arange(n)) % self.capacity
        left = self._left[region]
        leftover = max(int(left[-1]), 0)  # rows of a partly overwritten episode beyond the region
        self._left[(self._write + n + np.arange(leftover)) % self.capacity] = -1
        self._rows -= int(np.count_nonzero(left >= 0)) + leftover
        self._episodes -= int(np.count_nonzero(left == 0)) + (leftover > 0)

        self._obs[region], self._action[region] = rows[0], rows[1]
        self._reward[region], self._terminated[region] = rows[2], rows[3]
        self._task[region] = -1 if task is None else int(task)
        self._left[region] = np.arange(n - 1, -1, -1)
        self._filled = min(self.capacity, max(self._filled, self._write + n))
        self._write = (self._write + n) % self.capacity
        self._written += n
        self._rows += n
        self._episodes += 1
        self._starts.clear()

    def _check(self, n, obs, action, reward, terminated, task) -> tuple[np.ndarray, ...]:
        """Validate one episode and return its arrays in storage dtypes."""
        if n < 2:
            raise DataFormatError(f"an episode needs a reset row and >= 1 step, got {n} rows.")
        if n > self.capacity:
            raise ConfigError(
                f"an episode of {n} rows does not fit a replay capacity of {self.capacity} rows; "
                "raise buffer_size."
            )
        expected = {
            "obs": (n, *self.obs_shape),
            "action": (n, self.action_dim),
            "reward": (n,),
            "terminated": (n,),
        }
        arrays = [np.asarray(a) for a in (obs, action, reward, terminated)]
        for (name, shape), value in zip(expected.items(), arrays, strict=True):
            if name in ("reward", "terminated") and value.shape == (n, 1):
                continue
            if value.shape != shape:
                raise ShapeError(f"episode {name} has shape {value.shape}, expected {shape}.")
        if self._has_task is not None and self._has_task != (task is not None):
            raise DataFormatError(
                f"episode task is {task!r} but earlier episodes were "
                f"{'multi-task (int ids)' if self._has_task else 'single-task (None)'}."
            )
        try:
            obs = arrays[0].astype(self.obs_dtype, casting="same_kind", copy=False)
        except TypeError as err:
            raise DataFormatError(
                f"episode obs dtype {arrays[0].dtype} cannot be stored as {self.obs_dtype}."
            ) from err
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused
            rows = (obs, *(a.reshape(n, -1).astype(np.float32, copy=False) for a in arrays[1:]))
        for name, value, first in zip(expected, rows, (0, 1, 1, 1), strict=True):
            if not np.issubdtype(value.dtype, np.floating):
                continue
            finite = np.isfinite(value[first:].reshape(n - first, -1)).all(axis=1)
            if not finite.all():
                step = first + int(np.argmin(finite))
                raise DataFormatError(
                    f"episode {name} is not finite (NaN or inf) at step {step} of {n - 1} (row 0 "
                    "is the reset); the episode was refused and the replay is unchanged. The "
                    "agent or the simulator diverged: check the losses and the environment."
                )
        self._has_task = task is not None
        return rows[0], rows[1], rows[2].reshape(n), rows[3].reshape(n)

    def _valid_starts(self, horizon: int) -> np.ndarray:
        """Rows that start a slice of horizon + 1 rows inside one episode."""
        return np.flatnonzero(self._left[: self._filled] >= horizon)

    def _episode_starts(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """(first row, number of valid start rows) of each episode with >= horizon + 1 rows."""
        left = self._left[: self._filled]
        previous = np.roll(left, 1)  # the ring's previous row
        if self._filled < self.capacity:
            previous[0] = -1
        firsts = np.flatnonzero((left >= horizon) & (previous != left + 1))
        return firsts, left[firsts] - horizon + 1

    def _draw_starts(self, batch_size: int, horizon: int) -> np.ndarray:
        """B start rows, uniform over valid start rows or over episodes then their rows."""
        if horizon not in self._starts:  # fixed until the next add
            by_rows = self.sampling == "rows"
            find = self._valid_starts if by_rows else self._episode_starts
            self._starts[horizon] = find(horizon)
        if self.sampling == "rows":
            starts = self._starts[horizon]
            self._check_slices(starts.size, horizon)
            return starts[self._rng.integers(0, starts.size, size=batch_size)]
        firsts, counts = self._starts[horizon]
        self._check_slices(firsts.size, horizon)
        episode = self._rng.integers(0, firsts.size, size=batch_size)
        return (firsts[episode] + self._rng.integers(0, counts[episode])) % self.capacity

    def _check_slices(self, count: int, horizon: int) -> None:
        if count == 0:
            raise ConfigError(
                f"no stored episode has horizon + 1 = {horizon + 1} rows "
                f"({self._episodes} episodes, {len(self)} transitions stored); "
                "add more data or lower horizon."
            )

    def sample(self, batch_size: int, horizon: int) -> Batch:
        """B slices of H+1 consecutive rows of one episode each (start rows as `sampling` says).

        Shapes:
          obs [H+1, B, *O], action [H, B, A], reward [H, B, 1], terminated [H, B, 1],
          task [B] int64 or None.
        """
        if batch_size < 1 or horizon < 1:
            raise ConfigError(f"sample needs batch_size, horizon >= 1; got {batch_size}, {horizon}")
        first = self._draw_starts(batch_size, horizon)
        rows = (first[None, :] + np.arange(horizon + 1)[:, None]) % self.capacity  # [H+1, B]
        return Batch(
            obs=self._obs[rows],
            action=self._action[rows[1:]],
            reward=self._reward[rows[1:], None],
            terminated=self._terminated[rows[1:], None],
            task=self._task[first] if self._has_task else None,
        )

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-ready meta) that restore this buffer and its sampler exactly.

        The arrays are views of the ring, in ring order (row i of the ring holds the newest row
        numbered i mod capacity); `left` is the rows after each row in its episode, -1 where the
        row is not stored (overwritten, or its episode partly overwritten).

        Shapes:
          obs [R, *O], action [R, A], reward [R], terminated [R], task [R], left [R], where R is
          the number of ring rows written so far (<= capacity).
        """
        n = self._filled
        arrays = {name: getattr(self, f"_{name}")[:n] for name in _FIELDS}
        meta = {
            "capacity": self.capacity,
            "obs_shape": list(self.obs_shape),
            "action_dim": self.action_dim,
            "obs_dtype": self.obs_dtype.name,
            "write": self._write,
            "filled": self._filled,
            "written": self._written,
            "rows": self._rows,
            "episodes": self._episodes,
            "has_task": self._has_task,
            "rng": self._rng.bit_generator.state,
        }
        return arrays, meta

    def load_state_dict(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Inverse of state_dict; the buffer must have the same capacity, shapes and dtype.

        Everything is checked before the buffer changes.
        """
        mine = (self.capacity, list(self.obs_shape), self.action_dim, self.obs_dtype.name)
        theirs = (meta["capacity"], list(meta["obs_shape"]), meta["action_dim"], meta["obs_dtype"])
        if mine != theirs:
            raise CheckpointError(
                "replay state (capacity, obs_shape, action_dim, obs_dtype) = "
                f"{tuple(theirs)} does not match this buffer {tuple(mine)}."
            )
        n, written = int(meta["filled"]), meta.get("written")
        if (
            written is None
            or n != min(written, self.capacity)
            or meta["write"] != written % self.capacity
        ):
            raise CheckpointError(
                f"replay state is inconsistent: write={meta['write']}, filled={n}, "
                f"written={written}; expected filled = min(written, capacity {self.capacity}) "
                "and write = written % capacity."
            )
        for name in _FIELDS:
            if name not in arrays or len(arrays[name]) != n:
                raise CheckpointError(f"replay state array {name!r} is missing or not {n} rows.")
        rng = np.random.Generator(type(self._rng.bit_generator)())
        try:
            rng.bit_generator.state = meta["rng"]
        except (TypeError, ValueError, KeyError) as err:
            raise CheckpointError(f"replay state has an invalid sampler state: {err}") from err
        self._reserve(n)
        for name in _FIELDS:
            getattr(self, f"_{name}")[:n] = arrays[name]
        self._left[n:] = -1
        self._write, self._filled, self._written = int(meta["write"]), n, written
        self._rows, self._episodes = int(meta["rows"]), int(meta["episodes"])
        self._has_task = meta["has_task"]
        self._rng = rng
        self._starts.clear()
