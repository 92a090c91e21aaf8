"""The world model's head calls, written once for both backends (docs/design.md#mirrored-backends).

Which net reads which inputs is framework-neutral: `HeadCalls` routes each call to one net of
`self.nets` (canonical module name -> the backend's module). A backend's WorldModel inherits it
and provides `cfg`, `nets` and `_inputs(x, task, *rest)`: the first-layer input [x, e, *rest] in
its framework (e = the task embedding, multi-task only). Shapes in the letters of
mbdpo_core.shapes; `...` any leading dims.
"""

from __future__ import annotations

from typing import Any

from .config.schema import Config

Array = Any  # a torch tensor or a jax array


class HeadCalls:
    """encode / next / reward / termination / F of mbdpo_core.protocols.WorldModel."""

    cfg: Config
    nets: Any

    def _inputs(self, x: Array, task: Array | None, *rest: Array) -> Any:
        raise NotImplementedError

    def encode(self, obs: Array, task: Array | None) -> Array:
        """obs [..., O] (rgb: uint8 [..., C, 64, 64]) -> z [..., Z] (SimNorm)."""
        if self.cfg.obs == "rgb":
            return self.nets["encoder"](obs)
        return self.nets["encoder"](self._inputs(obs, task))

    def next(self, z: Array, a: Array, task: Array | None) -> Array:
        """Latent dynamics: z [..., Z], a [..., A] -> z' [..., Z] (SimNorm)."""
        return self.nets["dynamics"](self._inputs(z, task, a))

    def reward(self, z: Array, a: Array, task: Array | None) -> Array:
        """Reward logits: z [..., Z], a [..., A] -> [..., Kb] (docs/method.md#world-model)."""
        return self.nets["reward"](self._inputs(z, task, a))

    def termination(self, z: Array, task: Array | None) -> Array:
        """Termination logit (episodic only): z [..., Z] -> [..., 1]."""
        if "termination" not in self.nets:
            raise RuntimeError("termination() needs episodic=true (no termination head built).")
        return self.nets["termination"](self._inputs(z, task))

    def F(self, z: Array, a: Array, task: Array | None) -> Array:
        """Energy logit (docs/method.md#energy-head): z [..., Z], a [..., A] -> [..., 1]."""
        return self.nets["energy"](self._inputs(z, task, a))
