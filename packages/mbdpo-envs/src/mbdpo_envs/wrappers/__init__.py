"""Reusable wrappers around `mbdpo_envs.env.Env`."""

from .action_repeat import ActionRepeat
from .multitask import MultitaskEnv, make_multitask
from .pixels import PixelStack
from .time_limit import TimeLimit

__all__ = ["ActionRepeat", "MultitaskEnv", "PixelStack", "TimeLimit", "make_multitask"]
