"""Stopping a loop on request: SIGINT (Ctrl-C) and SIGTERM (what schedulers send) ask the loop to
stop at its next safe point and checkpoint there; a second signal exits at once
(docs/design.md#interrupting-and-resuming).
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

__all__ = ["Interrupted", "StopRequest", "EXIT_CODES"]

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
"""Exit status of a process stopped by each signal (128 + the signal number)."""


class Interrupted(Exception):  # noqa: N818 (control flow, not an error)
    """Raised at a safe point of a loop after a stop was requested; `signal` names the request."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal = signal_name


class StopRequest:
    """Records a SIGINT/SIGTERM while installed; loops call `check()` at their safe points.

    Use as a context manager around the loop: the previous handlers come back on exit. The first
    signal only records itself (and says so on stderr); a second one exits the process at once
    with the signal's exit status, leaving the last complete checkpoint as it was.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal is not None:
            print(f"\n[mbdpo] second {name}: exiting now, without a checkpoint.", file=sys.stderr)
            sys.stderr.flush()
            os._exit(EXIT_CODES.get(name, 128 + signum))
        self.signal = name
        print(
            f"\n[mbdpo] {name}: stopping after the current step and writing a checkpoint "
            f"({name} again exits at once).",
            file=sys.stderr,
            flush=True,
        )

    def check(self) -> None:
        """Raise `Interrupted` when a stop was requested."""
        if self.signal is not None:
            raise Interrupted(self.signal)
