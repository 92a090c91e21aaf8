"""Task registry: every task this project can train on, and the named task sets.

Facts come from ../shared/reference/anatomy.md section 7.8; where an installed suite differs
(Meta-World 3 names, MyoSuite 3 dims, ManiSkill3 ids) the installed version wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnknownTaskError, suggest


@dataclass(frozen=True)
class TaskSpec:
    """Static facts of one task.

    Attributes:
        name: our task name, e.g. "cartpole-balance".
        suite: "dmcontrol" | "metaworld" | "maniskill" | "myosuite".
        obs_dim: state observation width O.
        action_dim: action width A (actions live in [-1, 1]).
        episode_length: agent steps per episode (after action repeat).
        action_repeat: simulator steps per agent step.
        episodic: True when episodes end early on real terminations.
        source: the suite's own id (e.g. "cartpole/balance", "reach-v3").
    """

    name: str
    suite: str
    obs_dim: int
    action_dim: int
    episode_length: int
    action_repeat: int
    episodic: bool
    source: str


def _dmc(name: str, source: str, obs_dim: int, action_dim: int) -> TaskSpec:
    return TaskSpec(name, "dmcontrol", obs_dim, action_dim, 500, 2, False, source)


_TASKS: list[TaskSpec] = [
    _dmc("cartpole-balance", "cartpole/balance", 5, 1),
    _dmc("cartpole-swingup", "cartpole/swingup", 5, 1),
]

TASKS: dict[str, TaskSpec] = {t.name: t for t in _TASKS}
"""name -> TaskSpec for every registered task."""

TASK_SETS: dict[str, list[str]] = {}
"""Named, ordered task lists (mt30 and mt80 in dataset order: index = task id)."""

MULTITASK_SETS = ("mt30", "mt80")


def get(name: str) -> TaskSpec:
    """Return the spec of task `name`, or raise UnknownTaskError naming close matches."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(
            f"Unknown task {name!r}.{suggest(name, TASKS)} Valid tasks: {', '.join(TASKS)}; "
            f"task sets: {', '.join(TASK_SETS)}."
        ) from None


def resolve(name: str) -> list[TaskSpec]:
    """Return the specs of a task or of a multi-task set (mt30/mt80), in task-id order."""
    if name in MULTITASK_SETS:
        return [get(t) for t in TASK_SETS[name]]
    return [get(name)]
