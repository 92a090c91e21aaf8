"""Cheetah custom tasks: run backwards, run on the front / back foot, jump in place."""

from __future__ import annotations

from dm_control.suite import cheetah
from dm_control.utils import rewards

from .common import environment, read_model

_TIME_LIMIT = 10  # seconds: 1000 control steps of 0.01 s
_UP_HEIGHT = 1.2
_RUN_SPEED = 6.0
_BACKWARDS_SPEED = 8.0
_STILL_SPEED = 0.5
# Centre the floor (suite: x in [-2, 198]) so backwards motion is drawn on it.
_FLOOR = {'pos="98 0 0" size="100 .8 .5"': 'pos="0 0 0" size="200 .8 .5"'}


def _height(physics: cheetah.Physics, body: str) -> float:
    return float(physics.named.data.xpos[body, "z"])


def _up(value: float) -> float:
    """1 at or above the target height, falling off over half of it."""
    return rewards.tolerance(value, bounds=(_UP_HEIGHT, float("inf")), margin=_UP_HEIGHT / 2)


class RunBackwards(cheetah.Cheetah):
    """Rewarded for a speed <= -8 m/s (linear ramp from 0 m/s)."""

    def get_reward(self, physics: cheetah.Physics) -> float:
        return rewards.tolerance(
            physics.speed(),
            bounds=(-float("inf"), -_BACKWARDS_SPEED),
            margin=_BACKWARDS_SPEED,
            value_at_margin=0,
            sigmoid="linear",
        )


class RunOnFoot(cheetah.Cheetah):
    """Run forward (>= 6 m/s) reared up with `lifted` foot ("bfoot"/"ffoot") and torso high."""

    def __init__(self, lifted: str, random=None):
        self._lifted = lifted
        super().__init__(random=random)

    def get_reward(self, physics: cheetah.Physics) -> float:
        up = (3 * _up(_height(physics, self._lifted)) + 2 * _up(_height(physics, "torso"))) / 5
        speed = rewards.tolerance(
            physics.speed(),
            bounds=(_RUN_SPEED, float("inf")),
            margin=_RUN_SPEED,
            value_at_margin=0,
            sigmoid="linear",
        )
        return up * (5 * speed + 1) / 6


class Jump(cheetah.Cheetah):
    """Mean of standing still on the back foot and on the front foot."""

    def get_reward(self, physics: cheetah.Physics) -> float:
        still = rewards.tolerance(
            physics.speed(),
            bounds=(-_STILL_SPEED, _STILL_SPEED),
            margin=_STILL_SPEED,
            value_at_margin=0,
            sigmoid="linear",
        )
        torso = _height(physics, "torso")
        stand = [
            (5 * _up((torso + _height(physics, lifted)) / 2) + still) / 6
            for lifted in ("ffoot", "bfoot")  # standing on the back foot, then the front one
        ]
        return float(sum(stand) / 2)


def _make(task: cheetah.Cheetah):
    physics = cheetah.Physics.from_xml_string(*read_model("cheetah.xml", _FLOOR))
    return environment(physics, task, _TIME_LIMIT)


def run_backwards(random=None):
    """Cheetah running backwards."""
    return _make(RunBackwards(random=random))


def run_front(random=None):
    """Cheetah running forward on its front foot (back foot lifted)."""
    return _make(RunOnFoot("bfoot", random=random))


def run_back(random=None):
    """Cheetah running forward on its back foot (front foot lifted)."""
    return _make(RunOnFoot("ffoot", random=random))


def jump(random=None):
    """Cheetah standing up on either foot while staying in place."""
    return _make(Jump(random=random))
