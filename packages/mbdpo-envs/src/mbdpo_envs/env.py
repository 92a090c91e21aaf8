"""The common gymnasium-style environment interface every suite adapter implements.

An adapter subclasses `Env` and implements `_reset` and `_step`; the public `reset`/`step`
validate and clip the action, cast the observation and make `info["success"]` a float, so every
suite (and every wrapper) speaks the same types.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mbdpo_core.errors import ShapeError
from mbdpo_core.tasks import TaskSpec

Obs = np.ndarray
Info = dict[str, Any]
StepResult = tuple[Obs, float, bool, bool, Info]


def check_action(action: Any, action_dim: int) -> np.ndarray:
    """Return `action` as a float64 vector clipped to [-1, 1].

    Shapes:
        action: (A,)  -> (A,)

    Raises:
        ShapeError: the action is not of shape (A,) or holds NaN/inf.
    """
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (action_dim,):
        raise ShapeError(f"Action of shape {a.shape}; this task expects ({action_dim},).")
    if not np.all(np.isfinite(a)):
        raise ShapeError(f"Action holds NaN or inf: {a}.")
    return np.clip(a, -1.0, 1.0)


class Env:
    """One task of one suite, stepped with actions in [-1, 1].

    Attributes:
        spec: the task's registry entry.
        obs_mode: "state" (float32 vector) or "rgb" (uint8 stacked frames).
        observation_shape: (O,) for state, (3 * frames, H, W) for rgb.
        action_dim: A.
        episode_length: agent steps per episode (the time limit, when one is applied).

    Shapes:
        reset() -> obs (observation_shape), info
        step(action (A,)) -> obs, reward (), terminated, truncated, info
    """

    def __init__(self, spec: TaskSpec, observation_shape: tuple[int, ...], obs_mode: str = "state"):
        self.spec = spec
        self.obs_mode = obs_mode
        self.observation_shape = tuple(observation_shape)
        self.action_dim = spec.action_dim
        self.episode_length = spec.episode_length

    def reset(self, seed: int | None = None) -> tuple[Obs, Info]:
        """Start an episode; `seed` (optional) re-seeds the task's randomness first."""
        obs, info = self._reset(seed)
        return self._cast_obs(obs), self._cast_info(info)

    def step(self, action: Any) -> StepResult:
        """Advance one agent step; the action is validated and clipped to [-1, 1]."""
        obs, reward, terminated, truncated, info = self._step(check_action(action, self.action_dim))
        reward = 0.0 if reward is None else float(reward)
        return self._cast_obs(obs), reward, bool(terminated), bool(truncated), self._cast_info(info)

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        """Return an RGB frame of the scene. Shapes: -> (height, width, 3) uint8."""
        raise NotImplementedError(f"Rendering is not supported for suite {self.spec.suite!r}.")

    def close(self) -> None:
        """Release simulator resources (no-op unless the suite holds some)."""

    def _reset(self, seed: int | None) -> tuple[Obs, Info]:
        raise NotImplementedError

    def _step(self, action: np.ndarray) -> StepResult:
        raise NotImplementedError

    def _cast_obs(self, obs: Obs) -> Obs:
        obs = np.asarray(obs)
        if self.obs_mode == "state" and obs.dtype != np.float32:
            obs = obs.astype(np.float32)
        if obs.shape != self.observation_shape:
            raise ShapeError(
                f"{self.spec.name}: observation of shape {obs.shape}, expected "
                f"{self.observation_shape}."
            )
        return obs

    @staticmethod
    def _cast_info(info: Info | None) -> Info:
        info = dict(info or {})
        info["success"] = float(info.get("success", 0.0))
        return info

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r}, obs={self.obs_mode})"


class Wrapper(Env):
    """An `Env` around another `Env`; by default everything is passed through."""

    def __init__(
        self,
        env: Env,
        observation_shape: tuple[int, ...] | None = None,
        obs_mode: str | None = None,
    ):
        super().__init__(
            env.spec,
            env.observation_shape if observation_shape is None else observation_shape,
            env.obs_mode if obs_mode is None else obs_mode,
        )
        self.env = env
        self.episode_length = env.episode_length

    @property
    def unwrapped(self) -> Env:
        """The innermost (suite) environment."""
        env = self.env
        while isinstance(env, Wrapper):
            env = env.env
        return env

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        return self.env.render(width, height)

    def close(self) -> None:
        self.env.close()

    def _reset(self, seed: int | None) -> tuple[Obs, Info]:
        return self.env.reset(seed)

    def _step(self, action: np.ndarray) -> StepResult:
        return self.env.step(action)

    def __repr__(self) -> str:
        return f"{type(self).__name__}<{self.env!r}>"
