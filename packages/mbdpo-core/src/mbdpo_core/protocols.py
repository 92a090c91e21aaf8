"""The interfaces every backend implements (mbdpo_torch and mbdpo_jax mirror them exactly).

Shape letters as in mbdpo_core.shapes ("..." = any leading dims). See
docs/design.md#parity-contract. Arrays are the backend's own type
inside a backend and numpy at the Agent boundary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .batch import Batch
from .config.schema import Config

Array = Any


@runtime_checkable
class WorldModel(Protocol):
    """The latent world model. `task` is an int array [...] or None (single-task)."""

    cfg: Config

    def encode(self, obs: Array, task: Array | None) -> Array:
        """obs [..., *O] -> z [..., Z] (SimNorm)."""

    def next(self, z: Array, a: Array, task: Array | None) -> Array:
        """Latent dynamics: z [..., Z], a [..., A] -> z' [..., Z] (SimNorm)."""

    def reward(self, z: Array, a: Array, task: Array | None) -> Array:
        """Reward logits [..., Kb] (two-hot over symlog space)."""

    def termination(self, z: Array, task: Array | None) -> Array:
        """Termination logit [..., 1] (episodic tasks only)."""

    def pi(self, z: Array, task: Array | None, eps: Array) -> tuple[Array, dict[str, Array]]:
        """Policy prior with given standard-normal eps [..., A].

        Returns (action [..., A], info) with info keys mean [..., A] (squashed), log_std [..., A],
        entropy [..., 1], scaled_entropy [..., 1].
        """

    def Q(
        self,
        z: Array,
        a: Array,
        task: Array | None,
        target: bool = False,
        keep: Array | None = None,
    ) -> Array:
        """Logits of every member [Nq, ..., Kb]; `keep` [Nq, ..., M] dropout masks or None."""

    def F(self, z: Array, a: Array, task: Array | None) -> Array:
        """Energy logit [..., 1]."""

    def score(self, z: Array, x: Array, tau: Array, task: Array | None) -> Array:
        """Score net: z [..., Z], noisy plan x [..., H, A], int level tau [...] -> [..., H, A]."""


@runtime_checkable
class Agent(Protocol):
    """What the training loops talk to."""

    cfg: Config

    def act(
        self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None = None
    ) -> np.ndarray:
        """obs [*O] -> action [A] in [-1, 1] (float32 numpy)."""

    def update(self, batch: Batch) -> dict[str, float]:
        """One world-model step, one policy step, one Polyak step; returns the floats named by
        mbdpo_core.metrics.UPDATE_METRICS."""

    def export_params(self) -> dict[str, np.ndarray]:
        """Parameters (incl. target_q.*) in the canonical naming of mbdpo_core.params."""

    def import_params(self, params: dict[str, np.ndarray]) -> None:
        """Load canonical parameters (names and shapes must match exactly)."""

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything to resume exactly: (arrays, JSON-ready meta); see mbdpo_core.checkpoint."""

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Inverse of state_dict."""

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write a checkpoint (core format) at path (.safetensors + .json)."""

    def load(self, path: str | Path) -> dict[str, Any]:
        """Read a checkpoint written by either backend; returns its metadata."""
