"""Reacher custom tasks: a three-link arm reaching a big or a small target."""

from __future__ import annotations

from importlib import resources

from dm_control.suite import common, reacher

from .common import environment

_TIME_LIMIT = 20  # seconds: 1000 control steps of 0.02 s
_BIG_TARGET = 0.05
_SMALL_TARGET = 0.015


def read_three_link_model() -> tuple[str, dict]:
    """Our 3-link reacher XML (links 0.09 m, outer joints +-80 deg) and the suite's assets."""
    xml = resources.files(__package__).joinpath("reacher_three.xml").read_text()
    return xml, common.ASSETS


def _make(target_size: float, random):
    physics = reacher.Physics.from_xml_string(*read_three_link_model())
    # dm_control's Reacher samples the target, randomises every joint and pays 1 when the
    # finger touches the target; it reads only the "target"/"finger" geoms, so it fits 3 links.
    return environment(physics, reacher.Reacher(target_size, random=random), _TIME_LIMIT)


def three_easy(random=None):
    """Three-link reacher, target radius 0.05."""
    return _make(_BIG_TARGET, random)


def three_hard(random=None):
    """Three-link reacher, target radius 0.015."""
    return _make(_SMALL_TARGET, random)
