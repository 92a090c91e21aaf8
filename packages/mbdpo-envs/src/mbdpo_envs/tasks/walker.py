"""Walker custom tasks: walk and run backwards."""

from __future__ import annotations

from dm_control.suite import walker
from dm_control.utils import rewards

from .common import environment, read_model

_CONTROL_TIMESTEP = 0.025
_TIME_LIMIT = 25  # seconds: 1000 control steps
_STAND_HEIGHT = 1.2
_WALK_SPEED = 1.0
_RUN_SPEED = 8.0
# The suite floor starts at x = -2 and runs forward; centre it so the walker is drawn on the
# floor when it moves backwards (MuJoCo planes collide everywhere, so physics is unchanged).
_FLOOR = {'pos="248 0 0" size="250 .8 .2"': 'pos="0 0 0" size="500 .8 .2"'}


class BackwardsWalker(walker.PlanarWalker):
    """Planar walker rewarded for standing upright while moving at <= -move_speed."""

    def get_reward(self, physics: walker.Physics) -> float:
        standing = rewards.tolerance(
            physics.torso_height(), bounds=(_STAND_HEIGHT, float("inf")), margin=_STAND_HEIGHT / 2
        )
        upright = (1 + physics.torso_upright()) / 2
        stand = (3 * standing + upright) / 4
        move = rewards.tolerance(
            physics.horizontal_velocity(),
            bounds=(-float("inf"), -self._move_speed),
            margin=self._move_speed / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return stand * (5 * move + 1) / 6


def _make(speed: float, random):
    physics = walker.Physics.from_xml_string(*read_model("walker.xml", _FLOOR))
    task = BackwardsWalker(move_speed=speed, random=random)
    return environment(physics, task, _TIME_LIMIT, _CONTROL_TIMESTEP)


def walk_backwards(random=None):
    """Walker walking backwards at >= 1 m/s."""
    return _make(_WALK_SPEED, random)


def run_backwards(random=None):
    """Walker running backwards at >= 8 m/s."""
    return _make(_RUN_SPEED, random)
