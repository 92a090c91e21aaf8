"""Exception hierarchy. Every message names the bad value, the valid choices and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "MbdpoError",
    "ConfigError",
    "UnknownTaskError",
    "ShapeError",
    "CheckpointError",
    "DataFormatError",
    "MissingExtraError",
    "suggest",
]


class MbdpoError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(MbdpoError, ValueError):
    """A configuration key or value is invalid."""


class UnknownTaskError(ConfigError, KeyError):
    """A task or task-set name is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ShapeError(MbdpoError, ValueError):
    """An array does not have the shape a public boundary expects."""


class CheckpointError(MbdpoError, ValueError):
    """A checkpoint is missing, corrupt, or of another shape than the agent."""


class DataFormatError(MbdpoError, ValueError):
    """A dataset chunk is corrupt, truncated or of an unexpected layout."""


class MissingExtraError(MbdpoError, ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' Did you mean: a, b?' for the closest choices, or '' if none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=n, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""
