"""Progress of a loop: a tqdm bar on a terminal, plain status lines otherwise (logs, nohup, CI).

See docs/design.md#loops.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """Reports loop steps out of `total`, with the return of the latest evaluation.

    Args:
        total: the step count the run goes to.
        desc: label of the bar (e.g. the task name).
        bar: draw a tqdm bar; None: when stderr is a terminal.
        every: steps between status lines without a bar; None: max(total // 20, 500).
    """

    def __init__(
        self, total: int, desc: str = "", bar: bool | None = None, every: int | None = None
    ) -> None:
        self.total, self.desc = total, desc
        self.bar = sys.stderr.isatty() if bar is None else bar
        self.every = max(total // 20, 500) if every is None else every
        self._tqdm: Any = None
        self._start_time, self._start_step = time.perf_counter(), 0
        self._last_return: float | None = None

    def start(self, step: int, last_return: float | None = None) -> None:
        """Begin at `step` (later than 0 when resumed); `last_return` of an earlier evaluation."""
        self._start_time, self._start_step = time.perf_counter(), step
        self._last_return = last_return
        if not self.bar:
            return
        from tqdm import tqdm

        self._tqdm = tqdm(
            total=self.total,
            initial=step,
            unit="step",
            dynamic_ncols=True,
            desc=self.desc,
            smoothing=0.05,
        )
        if last_return is not None:
            self._tqdm.set_postfix(eval_return=f"{last_return:.1f}")

    def step(self, step: int) -> None:
        """One more step done; `step` is the count of steps done."""
        if self._tqdm is not None:
            self._tqdm.update(1)
        elif step % self.every == 0:
            print(self.status(step), flush=True)

    def evaluated(self, episode_return: float) -> None:
        """An evaluation returned `episode_return`."""
        self._last_return = episode_return
        if self._tqdm is not None:
            self._tqdm.set_postfix(eval_return=f"{episode_return:.1f}", refresh=False)

    def status(self, step: int) -> str:
        """`step 1,000/100,000  20.5 steps/s  ETA 80 min  last eval 312.4`."""
        rate = (step - self._start_step) / max(time.perf_counter() - self._start_time, 1e-9)
        eta = (self.total - step) / max(rate, 1e-9)
        line = f"step {step:,}/{self.total:,}  {rate:.1f} steps/s  ETA {eta / 60:.0f} min"
        if self._last_return is not None:
            line += f"  last eval {self._last_return:.1f}"
        return line

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
