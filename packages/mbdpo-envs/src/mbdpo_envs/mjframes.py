"""Offscreen RGB frames of a MuJoCo model (Meta-World and MyoSuite renders)."""

from __future__ import annotations

import mujoco
import numpy as np


class MujocoFrames:
    """Offscreen RGB renders of a MuJoCo model from one named camera (renderer cached by size).

    `flip_rows` turns the frame upside down: Meta-World's corner cameras were set up for
    mujoco-py, which returned rows bottom-up, so the reference's frames are mujoco's flipped.

    Shapes:
        render(width, height) -> (height, width, 3) uint8
    """

    def __init__(
        self, model: mujoco.MjModel, data: mujoco.MjData, camera: str, flip_rows: bool = False
    ):
        names = [model.camera(i).name for i in range(model.ncam)]
        if camera not in names:
            raise ValueError(f"No camera {camera!r} in the model; cameras: {', '.join(names)}.")
        self._model, self._data, self._camera = model, data, camera
        self._flip_rows = flip_rows
        self._renderer: mujoco.Renderer | None = None

    def render(self, width: int, height: int) -> np.ndarray:
        r = self._renderer
        if r is None or (r.width, r.height) != (width, height):
            self.close()
            self._model.vis.global_.offwidth = max(self._model.vis.global_.offwidth, width)
            self._model.vis.global_.offheight = max(self._model.vis.global_.offheight, height)
            r = self._renderer = mujoco.Renderer(self._model, height, width)
        r.update_scene(self._data, camera=self._camera)
        frame = r.render()
        return np.ascontiguousarray(frame[::-1] if self._flip_rows else frame)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
