"""Checkpoint and resume of a loop: agent state, loop counters and, when the loop's batch source
is `Stateful`, its state (docs/design.md#agent-state-and-checkpoints, docs/design.md#loops).

Layout in `<run_dir>/checkpoints/`: `step_<N>` (the agent's arrays; its meta plus `loop`, the
counters, and what the loop adds, e.g. `last_eval`) and `replay_step_<N>` (the source's state,
meta plus `step`). The source is written first and the agent last, so a complete `step_<N>`
always has its source state; only the newest source snapshot is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from ..protocols import Agent
from .protocols import Stateful

__all__ = ["LoopState", "Checkpointer"]


@dataclass
class LoopState:
    """Counters that, with the agent and the batch source, make a run resumable.

    `rng` draws the loop's own randomness (the uniform actions of the seeding phase).
    """

    step: int = 0
    episode: int = 0
    updates: int = 0
    rng: np.random.Generator = field(default_factory=np.random.default_rng)

    def to_meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "episode": self.episode,
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> LoopState:
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]
        return cls(meta["step"], meta["episode"], meta["updates"], rng)


class Checkpointer:
    """Writes and reads the checkpoints of one run directory.

    Args:
        run_dir: the run directory.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def source_path(self, step: int) -> Path:
        """The stem `<run_dir>/checkpoints/replay_step_<step>`."""
        return self.run_dir / "checkpoints" / f"replay_step_{int(step)}"

    def save(
        self,
        agent: Agent,
        state: LoopState,
        source: object | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Checkpoint at `state.step`; returns the agent checkpoint's stem.

        Args:
            agent: its `state_dict()` is written.
            state: the loop counters, stored as meta `loop`.
            source: the batch source; its state is written when it is `Stateful`.
            extra: more JSON-ready meta of the loop (e.g. {"last_eval": ...}).
        """
        step = state.step
        path = checkpoint_path(self.run_dir, step)
        arrays, meta = agent.state_dict()
        meta = {**meta, "loop": state.to_meta(), **(extra or {})}
        if isinstance(source, Stateful):
            source_arrays, source_meta = source.state_dict()
            save_checkpoint(self.source_path(step), source_arrays, {**source_meta, "step": step})
        save_checkpoint(path, arrays, meta)
        keep = self.source_path(step).name
        for old in path.parent.glob("replay_step_*"):  # keep only the newest source snapshot
            if old.name.split(".")[0] != keep:
                old.unlink()
        return path

    def restore(
        self, agent: Agent, source: object | None = None
    ) -> tuple[LoopState, dict[str, Any]] | None:
        """Load the latest checkpoint into `agent` (and a `Stateful` source), if there is one.

        Returns:
            None when the run has no checkpoint, else (the loop counters, the checkpoint's meta).
        """
        path = latest_checkpoint(self.run_dir)
        if path is None:
            return None
        arrays, meta = load_checkpoint(path)
        state = LoopState.from_meta(meta["loop"])
        stateful = isinstance(source, Stateful)
        if stateful:  # read everything before changing anything
            source_arrays, source_meta = load_checkpoint(self.source_path(state.step))
        agent.load_state_dict(arrays, meta)
        if stateful:
            source.load_state_dict(source_arrays, source_meta)
        return state, meta
