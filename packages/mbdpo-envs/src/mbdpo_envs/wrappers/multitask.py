"""Multi-task environment for the mt30 / mt80 task sets: one env per task behind one interface.

Observations are zero-padded at the end to the set's widest observation and actions are given at
the set's widest action, of which only the current task's first `action_dims[task]` entries reach
the simulator (docs/design.md#configuration). The task is chosen at reset; its index is the
task id of the datasets and of the agent's task embedding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mbdpo_core import tasks
from mbdpo_core.errors import ConfigError, ShapeError, UnknownTaskError, suggest
from mbdpo_core.tasks import TaskSpec

from ..env import Env, Info, Obs, StepResult


class MultitaskEnv:
    """Several single-task `Env`s; `reset(task=i)` switches to task i (default: keep the current).

    Attributes:
        tasks: task names; the index is the task id.
        task_id: the current task's id.
        obs_dims, action_dims, episode_lengths: per task id.
        observation_shape: (O_max,); action_dim: A_max (the widest task's, unless given).

    Shapes:
        reset() -> obs (O_max,) float32, info (info["task"] = task id)
        step(action (A_max,)) -> obs (O_max,), reward, terminated, truncated, info
    """

    def __init__(self, envs: list[Env], obs_dim: int | None = None, action_dim: int | None = None):
        if not envs:
            raise ConfigError("MultitaskEnv needs at least one environment.")
        for env in envs:
            if len(env.observation_shape) != 1:
                raise ShapeError(
                    f"MultitaskEnv pads vector observations only; {env.spec.name} has "
                    f"observation shape {env.observation_shape}."
                )
        self.envs = list(envs)
        self.tasks = [env.spec.name for env in self.envs]
        self.obs_dims = [env.observation_shape[0] for env in self.envs]
        self.action_dims = [env.action_dim for env in self.envs]
        self.episode_lengths = [env.episode_length for env in self.envs]
        self.observation_shape = (obs_dim or max(self.obs_dims),)
        self.action_dim = action_dim or max(self.action_dims)
        if self.observation_shape[0] < max(self.obs_dims) or self.action_dim < max(
            self.action_dims
        ):
            raise ShapeError(
                f"MultitaskEnv widths obs {obs_dim} / action {action_dim} are narrower than its "
                f"tasks' ({max(self.obs_dims)} / {max(self.action_dims)})."
            )
        self.obs_mode = "state"
        self._task = 0

    @property
    def task_id(self) -> int:
        """The current task's id (set it, or pass `task` to `reset`, to switch tasks)."""
        return self._task

    @task_id.setter
    def task_id(self, task: int) -> None:
        if isinstance(task, bool) or not isinstance(task, (int, np.integer)):
            raise ConfigError(f"task must be an int task id, got {task!r}.")
        if not 0 <= task < len(self.envs):
            raise ConfigError(f"task id {task} out of range; valid: 0..{len(self.envs) - 1}.")
        self._task = int(task)

    @property
    def env(self) -> Env:
        """The current task's environment."""
        return self.envs[self._task]

    @property
    def spec(self) -> TaskSpec:
        """The current task's registry entry."""
        return self.env.spec

    @property
    def episode_length(self) -> int:
        """The current task's episode length (agent steps)."""
        return self.episode_lengths[self._task]

    def reset(self, seed: int | None = None, task: int | None = None) -> tuple[Obs, Info]:
        """Start an episode of task `task` (or of the current task when None)."""
        if task is not None:
            self.task_id = task
        obs, info = self.env.reset(seed)
        return self._pad(obs), {**info, "task": self._task}

    def step(self, action: Any) -> StepResult:
        """Advance the current task; only the first `action_dims[task_id]` entries are used."""
        a = np.asarray(action)
        if a.shape != (self.action_dim,):
            raise ShapeError(
                f"Action of shape {a.shape}; this task set expects ({self.action_dim},)."
            )
        obs, reward, terminated, truncated, info = self.env.step(a[: self.action_dims[self._task]])
        return self._pad(obs), reward, terminated, truncated, {**info, "task": self._task}

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        """An RGB frame of the current task. Shapes: -> (height, width, 3) uint8."""
        return self.env.render(width, height)

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def _pad(self, obs: Obs) -> Obs:
        out = np.zeros(self.observation_shape, dtype=np.float32)
        out[: obs.shape[0]] = obs
        return out

    def __repr__(self) -> str:
        return f"MultitaskEnv({len(self.envs)} tasks, task_id={self._task})"


def make_multitask(name: str, seed: int) -> MultitaskEnv:
    """Build the multi-task env of task set `name` ("mt30" or "mt80"), state observations.

    Args:
        name: a multi-task set of `mbdpo_core.tasks.MULTITASK_SETS`.
        seed: seeds every task's env.

    Returns:
        A `MultitaskEnv` over the set's tasks in task-id order.
    """
    from ..make import make

    if name not in tasks.MULTITASK_SETS:
        raise UnknownTaskError(
            f"Unknown multi-task set {name!r}.{suggest(name, tasks.MULTITASK_SETS)} "
            f"Valid: {', '.join(tasks.MULTITASK_SETS)}."
        )
    return MultitaskEnv([make(task, seed) for task in tasks.TASK_SETS[name]])
