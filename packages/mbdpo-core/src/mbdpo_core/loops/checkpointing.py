"""Checkpoint and resume of a loop: agent state, loop counters, the loop's own arrays (e.g. the
running episode) and the state of its batch source (docs/design.md#agent-state-and-checkpoints,
docs/design.md#interrupting-and-resuming).

Layout in `<run_dir>/checkpoints/`: `step_<N>` holds the agent's arrays, the loop's arrays under
`loop/` and, for a small `Stateful` source, its arrays under `source/`; its meta is the agent's
plus `loop` (the counters) and what the loop adds (e.g. `last_eval`). A `ReplayBuffer` source is
snapshotted incrementally beside it (`mbdpo_core.replay_snapshots`), before `step_<N>` is
written, so every complete `step_<N>` has its replay. The newest `keep` checkpoints are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..buffer import ReplayBuffer
from ..checkpoint import add_prefix, checkpoint_path, load_checkpoint, save_checkpoint, split_prefix
from ..errors import CheckpointError
from ..replay_snapshots import load_snapshot, prune_snapshots, save_snapshot
from .protocols import Stateful

__all__ = ["LoopState", "Checkpointer", "checkpoint_steps", "TEMPORARY_GLOB"]

TEMPORARY_GLOB = ".*.tmp"
"""Names of the temporary files of atomic writes (`mbdpo_core.checkpoint`, the logger)."""


@dataclass
class LoopState:
    """Counters that, with the agent and the batch source, make a run resumable.

    `rng` draws the loop's own randomness (the uniform actions of the seeding phase).
    `updates_due` counts the updates the last environment step still owes (the burst after
    seeding is `seed_steps` of them), `eval_due`/`save_due` an evaluation or a checkpoint that
    fell due and waits for the episode's end, `elapsed_s` the wall time of earlier sessions.
    """

    step: int = 0
    episode: int = 0
    updates: int = 0
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    updates_due: int = 0
    eval_due: bool = False
    save_due: bool = False
    elapsed_s: float = 0.0

    def to_meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "episode": self.episode,
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
            "updates_due": self.updates_due,
            "eval_due": self.eval_due,
            "save_due": self.save_due,
            "elapsed_s": self.elapsed_s,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> LoopState:
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]
        return cls(
            meta["step"],
            meta["episode"],
            meta["updates"],
            rng,
            meta.get("updates_due", 0),
            meta.get("eval_due", False),
            meta.get("save_due", False),
            meta.get("elapsed_s", 0.0),
        )


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints (their JSON exists) of a run, ascending."""
    directory = Path(run_dir) / "checkpoints"
    if not directory.is_dir():
        return []
    names = (p.name for p in directory.glob("step_*.json"))
    return sorted(int(n[5:-5]) for n in names if n[5:-5].isdigit())


class Checkpointer:
    """Writes, prunes and reads the checkpoints of one run directory.

    Args:
        run_dir: the run directory.
        keep: how many of the newest checkpoints to keep (0 = all).
        writes: False for the processes of a data-parallel run other than rank 0: they read
            checkpoints to resume and `save` writes nothing (rank 0 writes the same state;
            docs/design.md#data-parallel-updates).
    """

    def __init__(self, run_dir: str | Path, keep: int = 0, writes: bool = True) -> None:
        self.run_dir, self.keep, self.writes = Path(run_dir), keep, writes
        self.directory = self.run_dir / "checkpoints"

    def steps(self) -> list[int]:
        return checkpoint_steps(self.run_dir)

    def save(
        self,
        agent_state: tuple[dict[str, np.ndarray], dict[str, Any]],
        state: LoopState,
        source: object | None = None,
        extra: dict[str, Any] | None = None,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> Path:
        """Checkpoint at `state.step`, then drop the checkpoints beyond `keep`; returns the stem.

        Args:
            agent_state: the agent's `state_dict()`.
            state: the loop counters, stored as meta `loop`.
            source: the batch source: a `ReplayBuffer` is snapshotted, another `Stateful`
                source's state goes into the checkpoint.
            extra: more JSON-ready meta of the loop (e.g. {"last_eval": ...}).
            arrays: the loop's own arrays, stored under `loop/`.
        """
        step = state.step
        if not self.writes:
            return checkpoint_path(self.run_dir, step)
        agent_arrays, meta = agent_state
        all_arrays = {**agent_arrays, **add_prefix(arrays or {}, "loop/")}
        meta = {**meta, "loop": state.to_meta(), **(extra or {})}
        if isinstance(source, ReplayBuffer):
            save_snapshot(source, self.directory, step)
        elif isinstance(source, Stateful):
            source_arrays, source_meta = source.state_dict()
            all_arrays.update(add_prefix(source_arrays, "source/"))
            meta["source"] = source_meta
        path = checkpoint_path(self.run_dir, step)
        save_checkpoint(path, all_arrays, meta)
        if self.keep:
            older = [s for s in self.steps() if s < step]
            self._remove(older[: max(len(older) - (self.keep - 1), 0)])
        return path

    def restore(
        self, agent: Any, source: object | None = None, step: int | None = None
    ) -> tuple[LoopState, dict[str, Any], dict[str, np.ndarray]]:
        """Load checkpoint `step` (default: the newest) into `agent` and `source`.

        Returns:
            (the loop counters, the checkpoint's meta, the loop's arrays without `loop/`).

        Raises:
            CheckpointError: there is no such checkpoint, or it is incomplete or corrupt; the
                message lists the other checkpoints to resume from with `resume_from=step_N`.
        """
        steps = self.steps()
        step = self.choose(step)
        try:
            arrays, meta = load_checkpoint(checkpoint_path(self.run_dir, step))
            state = LoopState.from_meta(meta["loop"])
            if isinstance(source, ReplayBuffer):
                load_snapshot(source, self.directory, step)  # checks before it changes anything
        except CheckpointError as err:
            others = [s for s in steps if s != step]
            hint = (
                f" Resume from an older one with resume_from=step_N: {_names(others)}."
                if others
                else " No other checkpoint is left to resume from."
            )
            raise CheckpointError(f"{err}{hint}") from None
        if isinstance(source, Stateful) and not isinstance(source, ReplayBuffer):
            source.load_state_dict(split_prefix(arrays, "source/"), meta["source"])
        agent_arrays = {k: v for k, v in arrays.items() if not k.startswith(("loop/", "source/"))}
        agent.load_state_dict(agent_arrays, meta)
        return state, meta, split_prefix(arrays, "loop/")

    def discard_after(self, step: int) -> list[int]:
        """Remove the checkpoints later than `step` (a run resumed from `step` rewrites them)."""
        later = [s for s in self.steps() if s > step]
        self._remove(later)
        return later

    def clean(self) -> list[Path]:
        """Delete what an interrupted write left: temporary files, and replay snapshots of a
        checkpoint that was never completed. Returns the temporary files removed."""
        found = [p for p in self.run_dir.rglob(TEMPORARY_GLOB) if p.is_file()]
        for path in found:
            path.unlink(missing_ok=True)
        if self.directory.is_dir():
            prune_snapshots(self.directory, self.steps())
        return found

    def _remove(self, steps: list[int]) -> None:
        for step in steps:
            stem = checkpoint_path(self.run_dir, step)
            for suffix in (".json", ".safetensors"):  # the JSON first: incomplete, never mixed
                stem.with_name(stem.name + suffix).unlink(missing_ok=True)
        if steps:
            prune_snapshots(self.directory, self.steps())

    def choose(self, step: int | None = None) -> int:
        """`step` if it is a complete checkpoint, the newest one for None.

        Raises CheckpointError: there is no checkpoint, or none at `step` (the others listed).
        """
        steps = self.steps()
        if not steps:
            raise CheckpointError(
                f"{self.run_dir} has no complete checkpoint to resume from (a run writes one "
                "every save_every steps, at the end, and when stopped with Ctrl-C or SIGTERM). "
                "Start a new run with another run_dir, or remove this one."
            )
        if step is None:
            return steps[-1]
        if step not in steps:
            raise CheckpointError(
                f"resume_from=step_{step}: no such checkpoint in {self.directory}; found "
                f"{_names(steps)}."
            )
        return step


def _names(steps: list[int]) -> str:
    return ", ".join(f"step_{s}" for s in steps)
