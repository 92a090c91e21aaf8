"""DeepMind Control Suite adapter (standard tasks plus our custom tasks in `mbdpo_envs.tasks`)."""

from __future__ import annotations

import numpy as np
from dm_control import suite
from mbdpo_core.errors import ShapeError
from mbdpo_core.tasks import TaskSpec

from .env import Env, Info, Obs, StepResult
from .tasks import CUSTOM_TASKS
from .wrappers import ActionRepeat, PixelStack, TimeLimit

PIXEL_SIZE = 64
PIXEL_FRAMES = 3


def load(source: str, random: np.random.RandomState | int | None):
    """Load the dm_control environment "domain/task" (custom tasks first, then the suite)."""
    if source in CUSTOM_TASKS:
        return CUSTOM_TASKS[source](random=random)
    domain, task = source.split("/")
    return suite.load(domain, task, task_kwargs={"random": random}, visualize_reward=False)


def flatten_observation(observation: dict) -> np.ndarray:
    """Concatenate every entry of a dm_control observation dict, in dict order.

    Shapes:
        -> (O,) float32
    """
    parts = [np.asarray(v, dtype=np.float64).ravel() for v in observation.values()]
    return np.concatenate(parts).astype(np.float32)


class DMCEnv(Env):
    """One dm_control task: one simulator control step per `step`, actions in [-1, 1].

    The task's RandomState is owned here, so `reset(seed)` re-seeds it in place.
    """

    def __init__(self, spec: TaskSpec, seed: int):
        super().__init__(spec, (spec.obs_dim,))
        self._random = np.random.RandomState(seed)
        self._env = load(spec.source, self._random)
        action_spec = self._env.action_spec()
        self._low = np.asarray(action_spec.minimum, dtype=np.float64)
        self._high = np.asarray(action_spec.maximum, dtype=np.float64)
        obs_dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        action_dim = int(np.prod(action_spec.shape))
        if (obs_dim, action_dim) != (spec.obs_dim, spec.action_dim):
            raise ShapeError(
                f"{spec.name}: dm_control gives obs {obs_dim} / action {action_dim}, "
                f"the registry says {spec.obs_dim} / {spec.action_dim}."
            )
        self.camera_id = 2 if spec.source.startswith("quadruped/") else 0

    @property
    def physics(self):
        """The dm_control Physics of the task (for tests and tools)."""
        return self._env.physics

    @property
    def task(self):
        """The dm_control Task (reward definition)."""
        return self._env.task

    def _reset(self, seed: int | None) -> tuple[Obs, Info]:
        if seed is not None:
            self._random.seed(seed)
        time_step = self._env.reset()
        return flatten_observation(time_step.observation), {"success": 0.0}

    def _step(self, action: np.ndarray) -> StepResult:
        scaled = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        time_step = self._env.step(scaled)
        last = time_step.last()
        terminated = bool(last and time_step.discount == 0.0)
        obs = flatten_observation(time_step.observation)
        return obs, time_step.reward, terminated, last and not terminated, {"success": 0.0}

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        return self._env.physics.render(height, width, camera_id=self.camera_id)

    def close(self) -> None:
        self._env.close()


def make_env(spec: TaskSpec, seed: int, obs: str) -> Env:
    """DMControl task with action repeat, optional 64x64x3-frame pixels and the time limit."""
    env: Env = ActionRepeat(DMCEnv(spec, seed), spec.action_repeat)
    if obs == "rgb":
        env = PixelStack(env, size=PIXEL_SIZE, frames=PIXEL_FRAMES)
    return TimeLimit(env, spec.episode_length)
