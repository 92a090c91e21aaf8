"""What a training loop needs from its parts (docs/design.md#loops).

A loop receives every part it talks to: a source of batches, an evaluator, a logger, a
checkpointer and a progress reporter. The online loop's source is also a `Replay` (it adds the
episodes it collects); an offline loop needs only a `BatchSource`. A source whose sampling state
must survive a restart is also `Stateful`, and the checkpointer then saves it with the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..batch import Batch
from ..buffer import EpisodeRecord
from ..protocols import Agent

__all__ = ["BatchSource", "Replay", "Stateful", "Evaluator", "RunLogger", "DiscardingLogger"]


@runtime_checkable
class BatchSource(Protocol):
    """Serves training batches."""

    def sample(self, batch_size: int, horizon: int) -> Batch:
        """B sub-trajectories of H+1 rows; shapes as in `mbdpo_core.batch.Batch`."""


@runtime_checkable
class Replay(BatchSource, Protocol):
    """A batch source that also stores the episodes a loop collects."""

    def add(self, episode: EpisodeRecord) -> None:
        """Store one finished episode (layout of `mbdpo_core.buffer.EpisodeRecord`)."""


@runtime_checkable
class Stateful(Protocol):
    """A part with state to checkpoint: (arrays, JSON-ready meta) and its inverse."""

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]: ...

    def load_state_dict(
        self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
    ) -> None: ...


@runtime_checkable
class Evaluator(Protocol):
    """Scores an agent; the loop logs the returned row under "eval"."""

    def evaluate(
        self, agent: Agent, step: int, on_step: Callable[[], None] | None = None
    ) -> dict[str, float]:
        """Metrics of `agent` at loop step `step`: episode_reward, episode_success,
        episode_length (means), plus any per-task columns; `on_step()` after every env step.

        An evaluator that films (`EpisodeEvaluator`, `TaskEvaluator`) also takes
        `videos={task: mp4 path}`; a loop passes it only at the evaluations it films."""


@runtime_checkable
class RunLogger(Protocol):
    """Where rows of metrics go (`mbdpo_core.logger.Logger` is the standard one)."""

    def log(
        self,
        category: str,
        step: int,
        metrics: Mapping[str, float | str],
        scalars: str | None = None,
        console: bool | None = None,
    ) -> None:
        """One row of `category` at `step`; `scalars`: its TensorBoard tag prefix (default the
        category); `console`: print it (default: "eval" rows)."""

    def truncate_after(self, step: int) -> None:
        """Forget rows logged after `step` (a resumed run rewrites them)."""

    def log_video(self, tag: str, step: int, path: Path) -> None:
        """The evaluation episode filmed into the mp4 at `path`, as `tag` at `step`."""

    def close(self) -> None: ...


class DiscardingLogger:
    """A RunLogger that keeps nothing: the logger of the processes of a data-parallel run
    other than rank 0, which logs the run (docs/design.md#data-parallel-updates)."""

    def log(
        self,
        category: str,
        step: int,
        metrics: Mapping[str, float | str],
        scalars: str | None = None,
        console: bool | None = None,
    ) -> None:
        """Drop the row."""

    def truncate_after(self, step: int) -> None:
        """Nothing to forget."""

    def log_video(self, tag: str, step: int, path: Path) -> None:
        """Drop the video."""

    def close(self) -> None:
        """Nothing to close."""
