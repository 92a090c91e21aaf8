"""Hopper custom task: hop backwards."""

from __future__ import annotations

from dm_control.suite import hopper
from dm_control.utils import rewards

from .common import environment, read_model

_CONTROL_TIMESTEP = 0.02
_TIME_LIMIT = 20  # seconds: 1000 control steps
_STAND_HEIGHT = 0.6
_HOP_SPEED = 1.0
# Centre the floor (suite: x in [-2, 98]) so backwards motion is drawn on it.
_FLOOR = {'pos="48 0 0" size="50 1 .2"': 'pos="0 0 0" size="100 1 .2"'}


class HopBackwards(hopper.Hopper):
    """Rewarded for standing tall (0.6-2 m) while moving at <= -1 m/s."""

    def __init__(self, random=None):
        super().__init__(hopping=True, random=random)

    def get_reward(self, physics: hopper.Physics) -> float:
        standing = rewards.tolerance(physics.height(), (_STAND_HEIGHT, 2))
        hopping = rewards.tolerance(
            physics.speed(),
            bounds=(-float("inf"), -_HOP_SPEED),
            margin=_HOP_SPEED / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return standing * hopping


def hop_backwards(random=None):
    """Hopper hopping backwards."""
    physics = hopper.Physics.from_xml_string(*read_model("hopper.xml", _FLOOR))
    return environment(physics, HopBackwards(random=random), _TIME_LIMIT, _CONTROL_TIMESTEP)
