"""MyoSuite adapter: the 10 hand tasks (`myo-<x>[-hard]` -> myoHand<X>{Fixed,Random}-v0).

The raw MyoSuite env is used without its gymnasium wrappers: its own time limits (50 to 200
steps) and its terminations (e.g. a dropped pen, MuJoCo instabilities) are ignored, so every
episode is exactly 100 agent steps, as in the reference. No action repeat. Success is MyoSuite's
`info["solved"]`.
"""

from __future__ import annotations

import gymnasium as gym
import myosuite  # noqa: F401  (registers the myo* ids with gymnasium)
import numpy as np
from mbdpo_core.errors import ShapeError, UnknownTaskError, suggest
from mbdpo_core.tasks import TaskSpec

from .env import Env, Info, Obs, StepResult
from .mjframes import MujocoFrames
from .wrappers import TimeLimit

CAMERA = "hand_side_inter"


def _raw_env(source: str):
    if source not in gym.registry:
        names = [k for k in gym.registry if k.startswith("myoHand")]
        raise UnknownTaskError(
            f"MyoSuite has no env {source!r}.{suggest(source, names)} Valid: {', '.join(names)}."
        )
    return gym.make(source).unwrapped


class MyoSuiteEnv(Env):
    """One MyoSuite hand task, one MyoSuite step per `step`; never terminates by itself.

    `reset(seed)` re-seeds MyoSuite's generator (targets, initial poses) before resetting.

    Shapes:
        obs: (O,) float32 (O = 83 to 115); action: (39,) muscle commands in [-1, 1]
    """

    def __init__(self, spec: TaskSpec, seed: int):
        super().__init__(spec, (spec.obs_dim,))
        self._env = _raw_env(spec.source)
        self._env.seed(seed)
        obs_dim = self._env.observation_space.shape[0]
        act_dim = self._env.action_space.shape[0]
        if (obs_dim, act_dim) != (spec.obs_dim, spec.action_dim):
            raise ShapeError(
                f"{spec.name}: MyoSuite gives obs {obs_dim} / action {act_dim}, the registry "
                f"says {spec.obs_dim} / {spec.action_dim}."
            )
        self._frames = MujocoFrames(self._env.model, self._env.data, CAMERA)

    @property
    def simulator(self):
        """The underlying MyoSuite environment (for tests and tools)."""
        return self._env

    def _reset(self, seed: int | None) -> tuple[Obs, Info]:
        obs, _ = self._env.reset(seed=seed)
        return obs, {"success": 0.0}

    def _step(self, action: np.ndarray) -> StepResult:
        obs, reward, _, _, info = self._env.step(action.astype(np.float32))
        info = {k: v for k, v in info.items() if k not in ("obs_dict", "rwd_dict")}
        info["success"] = float(info.get("solved", 0.0))
        return obs, reward, False, False, info

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        return self._frames.render(width, height)

    def close(self) -> None:
        self._frames.close()
        self._env.close()


def make_env(spec: TaskSpec, seed: int, obs: str) -> Env:
    """MyoSuite task with the 100-step time limit (no action repeat)."""
    del obs  # make() accepts only "state" for this suite
    return TimeLimit(MyoSuiteEnv(spec, seed), spec.episode_length)
