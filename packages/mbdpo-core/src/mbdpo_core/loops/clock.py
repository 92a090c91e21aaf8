"""The wall clock of a run across its sessions, and the timing columns of its rows."""

from __future__ import annotations

import time

from ..logger import TIMING_COLUMNS

__all__ = ["RunClock"]


class RunClock:
    """`start(elapsed_s, step)` at the start of each session (0, 0 for a new run); then
    `elapsed()` is the run's wall time so far, earlier sessions included, and `columns(category,
    step)` the TIMING_COLUMNS of a row: wall_time_s, and steps per second since the previous row
    of the same category in this session (or since the session began)."""

    def __init__(self) -> None:
        self.start(0.0, 0)

    def start(self, elapsed_s: float, step: int) -> None:
        self._began, self._before, self.first_step = time.perf_counter(), elapsed_s, step
        self._last: dict[str, tuple[float, int]] = {}

    def session_s(self) -> float:
        """Seconds since this session began."""
        return time.perf_counter() - self._began

    def elapsed(self) -> float:
        return self._before + self.session_s()

    def columns(self, category: str, step: int) -> dict[str, float]:
        now = self.elapsed()
        since, from_step = self._last.get(category, (self._before, self.first_step))
        self._last[category] = (now, step)
        rate = (step - from_step) / max(now - since, 1e-9)
        return dict(zip(TIMING_COLUMNS, (now, rate), strict=True))
