"""Task registry: every task this project can train on, and the named task sets.

Facts as listed in docs/design.md#configuration (104 distinct state tasks: 39
DMControl, 50 Meta-World, 5 ManiSkill, 10 MyoSuite); where an installed suite differs
(Meta-World 3 names, MyoSuite 3 dims, ManiSkill3 ids) the installed version wins. The table
order below is the dataset order: mt30 and mt80 index = task id.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError, UnknownTaskError, suggest


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


def _mw(name: str) -> TaskSpec:
    # Meta-World 3.1.1 (installed) only knows v3 names ("reach-v3"); it has no v2 ids, so the
    # reference's "<x>-v2-goal-observable" becomes "<x>-v3".
    return TaskSpec(name, "metaworld", 39, 4, 100, 2, False, f"{name.removeprefix('mw-')}-v3")


def _ms(name: str, source: str, obs_dim: int, action_dim: int) -> TaskSpec:
    return TaskSpec(name, "maniskill", obs_dim, action_dim, 100, 2, True, source)


def _myo(name: str, source: str, obs_dim: int) -> TaskSpec:
    return TaskSpec(name, "myosuite", obs_dim, 39, 100, 1, False, source)


_DMC = [
    # the 19 standard DMControl tasks of mt30 (ids 0-18)
    _dmc("walker-stand", "walker/stand", 24, 6),
    _dmc("walker-walk", "walker/walk", 24, 6),
    _dmc("walker-run", "walker/run", 24, 6),
    _dmc("cheetah-run", "cheetah/run", 17, 6),
    _dmc("reacher-easy", "reacher/easy", 6, 2),
    _dmc("reacher-hard", "reacher/hard", 6, 2),
    _dmc("acrobot-swingup", "acrobot/swingup", 6, 1),
    _dmc("pendulum-swingup", "pendulum/swingup", 3, 1),
    _dmc("cartpole-balance", "cartpole/balance", 5, 1),
    _dmc("cartpole-balance-sparse", "cartpole/balance_sparse", 5, 1),
    _dmc("cartpole-swingup", "cartpole/swingup", 5, 1),
    _dmc("cartpole-swingup-sparse", "cartpole/swingup_sparse", 5, 1),
    _dmc("cup-catch", "ball_in_cup/catch", 8, 2),
    _dmc("finger-spin", "finger/spin", 9, 2),
    _dmc("finger-turn-easy", "finger/turn_easy", 12, 2),
    _dmc("finger-turn-hard", "finger/turn_hard", 12, 2),
    _dmc("fish-swim", "fish/swim", 24, 5),
    _dmc("hopper-stand", "hopper/stand", 15, 4),
    _dmc("hopper-hop", "hopper/hop", 15, 4),
    # the 11 custom tasks of mt30 (ids 19-29), implemented in mbdpo_envs.tasks
    _dmc("walker-walk-backwards", "walker/walk_backwards", 24, 6),
    _dmc("walker-run-backwards", "walker/run_backwards", 24, 6),
    _dmc("cheetah-run-backwards", "cheetah/run_backwards", 17, 6),
    _dmc("cheetah-run-front", "cheetah/run_front", 17, 6),
    _dmc("cheetah-run-back", "cheetah/run_back", 17, 6),
    _dmc("cheetah-jump", "cheetah/jump", 17, 6),
    _dmc("hopper-hop-backwards", "hopper/hop_backwards", 15, 4),
    _dmc("reacher-three-easy", "reacher/three_easy", 8, 3),
    _dmc("reacher-three-hard", "reacher/three_hard", 8, 3),
    _dmc("cup-spin", "ball_in_cup/spin", 8, 2),
    _dmc("pendulum-spin", "pendulum/spin", 3, 1),
    # outside mt30/mt80
    _dmc("quadruped-walk", "quadruped/walk", 78, 12),
    _dmc("quadruped-run", "quadruped/run", 78, 12),
    _dmc("humanoid-walk", "humanoid/walk", 67, 21),
    _dmc("humanoid-run", "humanoid/run", 67, 21),
    _dmc("humanoid-stand", "humanoid/stand", 67, 21),
    _dmc("dog-walk", "dog/walk", 223, 38),
    _dmc("dog-run", "dog/run", 223, 38),
    _dmc("dog-stand", "dog/stand", 223, 38),
    _dmc("dog-trot", "dog/trot", 223, 38),
]

# mt80 ids 30-79, in dataset order.
_METAWORLD = [
    _mw(f"mw-{x}")
    for x in (
        "assembly basketball button-press-topdown button-press-topdown-wall button-press "
        "button-press-wall coffee-button coffee-pull coffee-push dial-turn disassemble door-open "
        "door-close drawer-close drawer-open faucet-open faucet-close hammer handle-press-side "
        "handle-press handle-pull-side handle-pull lever-pull peg-insert-side peg-unplug-side "
        "pick-out-of-hole pick-place pick-place-wall plate-slide plate-slide-side "
        "plate-slide-back plate-slide-back-side push-back push push-wall reach reach-wall "
        "shelf-place soccer stick-push stick-pull sweep-into sweep window-open window-close "
        "bin-picking box-close door-lock door-unlock hand-insert"
    ).split()
]

# ManiSkill3 (mani-skill 3.0.1) ids and dims; the installed version wins over the reference's
# ManiSkill2 figures. Measured with the Panda arm and state obs: lift/pick/stack-cube (ee-position
# control, A = 4). pick-ycb and turn-faucet (ee-pose control, A = 7) need downloaded assets, so
# their obs dims are derived from the ManiSkill3 source (18 joint state + task extras), not run.
# ManiSkill3 has no LiftCube; "MBDPO-LiftCube-v1" is registered by mbdpo_envs.maniskill_lift.
_MANISKILL = [
    _ms("lift-cube", "MBDPO-LiftCube-v1", 35, 4),
    _ms("pick-cube", "PickCube-v1", 42, 4),
    _ms("stack-cube", "StackCube-v1", 48, 4),
    _ms("pick-ycb", "PickSingleYCB-v1", 45, 7),
    _ms("turn-faucet", "TurnFaucet-v1", 33, 7),
]

# MyoSuite 3.0.0 dims, measured again by mbdpo_envs' tests (the installed version wins);
# easy = Fixed, hard = Random.
_MYOSUITE = [
    _myo(f"myo-{name}{suffix}", f"myoHand{cls}{variant}-v0", obs_dim)
    for name, cls, obs_dim in (
        ("reach", "Reach", 115),
        ("pose", "Pose", 108),
        ("obj-hold", "ObjHold", 91),
        ("key-turn", "KeyTurn", 93),
        ("pen-twirl", "PenTwirl", 83),
    )
    for suffix, variant in (("", "Fixed"), ("-hard", "Random"))
]

_TASKS: list[TaskSpec] = _DMC + _METAWORLD + _MANISKILL + _MYOSUITE

TASKS: dict[str, TaskSpec] = {t.name: t for t in _TASKS}
"""name -> TaskSpec for every registered task."""

_DMC_NAMES = [t.name for t in _DMC]

TASK_SETS: dict[str, list[str]] = {
    "mt30": _DMC_NAMES[:30],
    "mt80": _DMC_NAMES[:30] + [t.name for t in _METAWORLD],
    "dmcontrol": _DMC_NAMES,
    "metaworld": [t.name for t in _METAWORLD],
    "maniskill": [t.name for t in _MANISKILL],
    "myosuite": [t.name for t in _MYOSUITE],
    "locomotion": [
        "dog-walk",
        "dog-run",
        "dog-stand",
        "dog-trot",
        "humanoid-walk",
        "humanoid-run",
        "humanoid-stand",
    ],
    "visual": [
        "acrobot-swingup",
        "cheetah-run",
        "finger-spin",
        "finger-turn-easy",
        "finger-turn-hard",
        "quadruped-walk",
        "reacher-easy",
        "reacher-hard",
        "walker-run",
        "walker-walk",
    ],
}
"""Named, ordered task lists (mt30 and mt80 in dataset order: index = task id). Only mt30 and
mt80 are multi-task training sets; the others group tasks for benchmarks and sweeps."""

MULTITASK_SETS = ("mt30", "mt80")
"""The task sets that `task=` accepts: one multi-task model over all their tasks."""

RGB_SUITES = ("dmcontrol",)
"""Suites whose tasks render pixel observations (obs=rgb); mbdpo_envs.make.SUITES agrees."""


def get(name: str) -> TaskSpec:
    """Return the spec of task `name`, or raise UnknownTaskError naming close matches."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(
            f"Unknown task {name!r}.{suggest(name, TASKS)} Valid tasks: {', '.join(TASKS)}."
        ) from None


def resolve(name: str) -> list[TaskSpec]:
    """Return the specs of a task or of a multi-task set (mt30/mt80), in task-id order.

    Raises UnknownTaskError for an unknown name and ConfigError for a task set that is not a
    multi-task training set (e.g. "visual", a group of tasks to run one by one).
    """
    if name in MULTITASK_SETS:
        return [get(t) for t in TASK_SETS[name]]
    if name in TASK_SETS:
        raise ConfigError(
            f"task={name} names a group of {len(TASK_SETS[name])} tasks to run one at a time, "
            f"not a task: give one of them ({', '.join(TASK_SETS[name])}) or a multi-task set "
            f"({', '.join(MULTITASK_SETS)})."
        )
    if name not in TASKS:
        raise UnknownTaskError(
            f"Unknown task {name!r}.{suggest(name, [*TASKS, *MULTITASK_SETS])} Valid: one task "
            f"({', '.join(TASKS)}) or a multi-task set ({', '.join(MULTITASK_SETS)})."
        )
    return [TASKS[name]]
