"""Pendulum custom task: spin as fast as possible."""

from __future__ import annotations

from dm_control.suite import pendulum
from dm_control.utils import rewards

from .common import environment, read_model

_TIME_LIMIT = 20  # seconds: 1000 control steps of 0.02 s
_SPIN_SPEED = 9.0


class Spin(pendulum.SwingUp):
    """Swing-up initial state; rewarded for |angular velocity| >= 9 rad/s."""

    def get_reward(self, physics: pendulum.Physics) -> float:
        return rewards.tolerance(
            abs(float(physics.angular_velocity()[0])),
            bounds=(_SPIN_SPEED, float("inf")),
            margin=_SPIN_SPEED / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )


def spin(random=None):
    """Pendulum spinning in either direction."""
    physics = pendulum.Physics.from_xml_string(*read_model("pendulum.xml"))
    return environment(physics, Spin(random=random), _TIME_LIMIT)
