"""`make(task, seed, obs)`: build one task's environment from the registry.

Each suite lives in its own adapter module exposing `make_env(spec, seed, obs) -> Env`; the
adapter is imported only when a task of that suite is made, so a missing optional dependency
affects only its own suite and is reported with the extra that installs it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from mbdpo_core import tasks
from mbdpo_core.errors import ConfigError, MissingExtraError

from .env import Env

OBS_MODES = ("state", "rgb")


@dataclass(frozen=True)
class _Suite:
    module: str  # adapter module
    extra: str  # optional-dependency group of mbdpo-envs that installs the simulator
    obs_modes: tuple[str, ...]


SUITES: dict[str, _Suite] = {
    "dmcontrol": _Suite("mbdpo_envs.dmc", "dmc", ("state", "rgb")),
    "metaworld": _Suite("mbdpo_envs.metaworld", "metaworld", ("state",)),
    "myosuite": _Suite("mbdpo_envs.myosuite", "myosuite", ("state",)),
    "maniskill": _Suite("mbdpo_envs.maniskill", "maniskill", ("state",)),
}


def _adapter(suite_name: str) -> ModuleType:
    suite = SUITES[suite_name]
    try:
        return importlib.import_module(suite.module)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] == "mbdpo_envs":
            raise
        raise MissingExtraError(
            f"Suite {suite_name!r} needs the module {err.name!r}, which is not installed; "
            f"install it with `pip install 'mbdpo-envs[{suite.extra}]'` "
            f"(in this repository: `uv sync --all-packages --all-extras`)."
        ) from err


def make(task: str, seed: int, obs: str = "state") -> Env:
    """Build the environment of one registered task.

    Args:
        task: a task name of `mbdpo_core.tasks.TASKS`, e.g. "walker-walk" or "mw-reach", or a
            multi-task set ("mt30", "mt80"), which returns a `MultitaskEnv`.
        seed: seeds the task's randomness (initial states, goals).
        obs: "state" (float32 vector) or "rgb" (uint8 stack of 3 64x64 frames; DMControl only).

    Returns:
        An `Env` with action repeat and time limit applied.

    Shapes:
        obs: state (O,) float32, rgb (9, 64, 64) uint8; action (A,) in [-1, 1].

    Raises:
        UnknownTaskError: `task` is not registered.
        ConfigError: `obs` is not a valid mode for the task's suite, or `task` is a task set.
        MissingExtraError: the suite's simulator is not installed.
    """
    if task in tasks.MULTITASK_SETS:
        if obs != "state":
            raise ConfigError(f"Multi-task set {task!r} supports obs='state' only, got {obs!r}.")
        from .wrappers.multitask import make_multitask

        return make_multitask(task, seed)
    if task in tasks.TASK_SETS and task not in tasks.TASKS:
        raise ConfigError(
            f"{task!r} is a task set; make() builds one task or a multi-task set "
            f"({', '.join(tasks.MULTITASK_SETS)}). "
            f"Make each of mbdpo_core.tasks.TASK_SETS[{task!r}]."
        )
    spec = tasks.get(task)
    if obs not in OBS_MODES:
        raise ConfigError(f"Unknown observation mode {obs!r}; valid: {', '.join(OBS_MODES)}.")
    suite = SUITES[spec.suite]
    if obs not in suite.obs_modes:
        raise ConfigError(
            f"Observation mode {obs!r} is not supported for {task!r} (suite {spec.suite!r}); "
            f"valid: {', '.join(suite.obs_modes)}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an int, got {seed!r}.")
    return _adapter(spec.suite).make_env(spec, seed, obs)
