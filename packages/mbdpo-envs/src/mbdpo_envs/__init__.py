"""Simulator suites for MBDPO behind one gymnasium-style interface.

`make(task, seed, obs="state")` builds any registered task (see `mbdpo_core.tasks`); suite
simulators are optional extras imported only when one of their tasks is made.
"""

from . import _gl  # noqa: F401  (first: MUJOCO_GL default and native-library load order)

# isort: split

from .agent_env import make_agent_env
from .env import Env, Wrapper
from .make import OBS_MODES, SUITES, make

__all__ = ["Env", "Wrapper", "OBS_MODES", "SUITES", "make", "make_agent_env"]
