"""Our dm_control tasks beyond the suite (the 11 custom tasks of mt30).

`CUSTOM_TASKS` maps a registry source "domain/task" to a constructor
`(random=None) -> dm_control.rl.control.Environment`; `mbdpo_envs.dmc` looks here before
`dm_control.suite.load`.
"""

from __future__ import annotations

from collections.abc import Callable

from . import ball_in_cup, cheetah, hopper, pendulum, reacher, walker

CUSTOM_TASKS: dict[str, Callable] = {
    "walker/walk_backwards": walker.walk_backwards,
    "walker/run_backwards": walker.run_backwards,
    "cheetah/run_backwards": cheetah.run_backwards,
    "cheetah/run_front": cheetah.run_front,
    "cheetah/run_back": cheetah.run_back,
    "cheetah/jump": cheetah.jump,
    "hopper/hop_backwards": hopper.hop_backwards,
    "reacher/three_easy": reacher.three_easy,
    "reacher/three_hard": reacher.three_hard,
    "ball_in_cup/spin": ball_in_cup.spin,
    "pendulum/spin": pendulum.spin,
}

__all__ = ["CUSTOM_TASKS"]
