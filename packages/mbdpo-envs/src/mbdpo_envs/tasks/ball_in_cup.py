"""Ball-in-cup custom task: spin the ball around the cup, fast and far from it."""

from __future__ import annotations

import numpy as np
from dm_control.suite import ball_in_cup
from dm_control.utils import rewards

from .common import environment, read_model

_CONTROL_TIMESTEP = 0.02
_TIME_LIMIT = 20  # seconds: 1000 control steps
_START_IN_CUP = 0.9  # probability that an episode starts with the ball inside the cup
_FAR = 0.5
_FAST = 6.0


class Spin(ball_in_cup.BallInCup):
    """Rewarded for keeping the ball out of the cup, far from it (>= 0.5) and fast (>= 6)."""

    def initialize_episode(self, physics: ball_in_cup.Physics) -> None:
        if self.random.rand() >= _START_IN_CUP:
            super().initialize_episode(physics)  # the catch task's random free ball
            return
        physics.after_reset()
        target = physics.named.data.site_xpos["target", ["x", "z"]]
        free = (
            physics.named.model.site_size["target", [0, 2]]
            - physics.named.model.geom_size["ball", 0]
        )
        origin = physics.named.model.body_pos["ball", ["x", "z"]]
        penetrating = True
        while penetrating:  # a collision-free random position inside the cup
            x, z = target + self.random.uniform(-free, free) - origin
            physics.named.data.qpos["ball_x"] = x
            physics.named.data.qpos["ball_z"] = z
            physics.after_reset()
            penetrating = physics.data.ncon > 0
        super(ball_in_cup.BallInCup, self).initialize_episode(physics)

    def get_reward(self, physics: ball_in_cup.Physics) -> float:
        distance = float(np.linalg.norm(physics.ball_to_target()))
        speed = float(np.linalg.norm(physics.named.data.qvel[["ball_x", "ball_z"]]))
        far = rewards.tolerance(
            distance,
            bounds=(_FAR, float("inf")),
            margin=_FAR / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        fast = rewards.tolerance(
            speed,
            bounds=(_FAST, float("inf")),
            margin=_FAST / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return (1 - physics.in_target()) * (far + 2 * fast) / 3


def spin(random=None):
    """Ball-in-cup: spin the ball around the cup."""
    physics = ball_in_cup.Physics.from_xml_string(*read_model("ball_in_cup.xml"))
    return environment(physics, Spin(random=random), _TIME_LIMIT, _CONTROL_TIMESTEP)
