"""Helpers shared by the custom dm_control tasks."""

from __future__ import annotations

from dm_control.rl import control
from dm_control.suite import base, common


def read_model(filename: str, replace: dict[str, str] | None = None) -> tuple[str, dict]:
    """Return a suite model XML (with each `replace` key swapped for its value) and the assets.

    Raises:
        ValueError: a `replace` key is not found exactly once (the suite XML changed).
    """
    xml = common.read_model(filename)
    if isinstance(xml, bytes):
        xml = xml.decode()
    for old, new in (replace or {}).items():
        if xml.count(old) != 1:
            raise ValueError(f"{filename}: expected {old!r} exactly once.")
        xml = xml.replace(old, new)
    return xml, common.ASSETS


def environment(
    physics, task: base.Task, time_limit: float, control_timestep: float | None = None
) -> control.Environment:
    """Wrap a physics and a task into a dm_control Environment (visualize_reward off)."""
    kwargs = {} if control_timestep is None else {"control_timestep": control_timestep}
    return control.Environment(physics, task, time_limit=time_limit, **kwargs)
