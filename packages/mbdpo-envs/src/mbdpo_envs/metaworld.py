"""Meta-World adapter: the 50 goal-observable v3 tasks (`mw-<x>` -> "<x>-v3").

Each task is Meta-World's goal-observable class for the task, built with `seed`, with goal
re-sampling switched on at every reset (the reference's `_freeze_rand_vec = False`). Unlike the
stock setting, the goals are drawn from the env's own seeded generator (`seeded_rand_vec`), so the
same seed gives the same sequence of episodes. Action repeat 2 and a 100 agent-step limit come
from the registry entry. Deviation from the reference: `reset` returns the observation of the
state it reached; it does not take the reference's hidden zero-action step after resetting.
"""

from __future__ import annotations

import metaworld
import numpy as np
from mbdpo_core.errors import ShapeError, UnknownTaskError, suggest
from mbdpo_core.tasks import TaskSpec

from .env import Env, Info, Obs, StepResult
from .mjframes import MujocoFrames
from .wrappers import ActionRepeat, TimeLimit

CAMERA = "corner2"
CAMERA_POS = (0.75, 0.075, 0.7)  # the reference moves corner2 here for renders


def env_class(source: str) -> type:
    """The goal-observable Meta-World class of a v3 task name such as "reach-v3"."""
    key = f"{source}-goal-observable"
    classes = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
    if key not in classes:
        names = [k.removesuffix("-goal-observable") for k in classes]
        raise UnknownTaskError(
            f"Meta-World has no task {source!r}.{suggest(source, names)} Valid: {', '.join(names)}."
        )
    return classes[key]


class MetaWorldEnv(Env):
    """One goal-observable Meta-World task, one simulator step per `step`.

    `reset(seed)` re-seeds the env's generator (goal and object positions) before resetting.
    `info` is Meta-World's step info (success, near_object, grasp_success, ...), with
    `success` as a float.

    Shapes:
        obs: (39,) float32; action: (4,) in [-1, 1]
    """

    def __init__(self, spec: TaskSpec, seed: int):
        super().__init__(spec, (spec.obs_dim,))
        self._env = env_class(spec.source)(seed=seed)
        self._env._freeze_rand_vec = False  # a new goal at every reset, as the reference does
        self._env.seeded_rand_vec = True  # ... drawn from the env's seeded generator
        obs_dim = self._env.observation_space.shape[0]
        act_dim = self._env.action_space.shape[0]
        if (obs_dim, act_dim) != (spec.obs_dim, spec.action_dim):
            raise ShapeError(
                f"{spec.name}: Meta-World gives obs {obs_dim} / action {act_dim}, the registry "
                f"says {spec.obs_dim} / {spec.action_dim}."
            )
        model = self._env.model
        model.cam_pos[model.camera(CAMERA).id] = CAMERA_POS
        self._frames = MujocoFrames(model, self._env.data, CAMERA, flip_rows=True)

    @property
    def simulator(self):
        """The underlying Meta-World environment (for tests and tools)."""
        return self._env

    def _reset(self, seed: int | None) -> tuple[Obs, Info]:
        if seed is not None:
            self._env.seed(seed)
        obs, _ = self._env.reset()
        return obs, {"success": 0.0}

    def _step(self, action: np.ndarray) -> StepResult:
        obs, reward, terminated, truncated, info = self._env.step(action)
        return obs, reward, terminated, truncated, info

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        return self._frames.render(width, height)

    def close(self) -> None:
        self._frames.close()
        self._env.close()


def make_env(spec: TaskSpec, seed: int, obs: str) -> Env:
    """Meta-World task with action repeat (2) and the time limit (100 agent steps)."""
    del obs  # make() accepts only "state" for this suite
    env: Env = ActionRepeat(MetaWorldEnv(spec, seed), spec.action_repeat)
    return TimeLimit(env, spec.episode_length)
