"""Progress of the online loop by phase: a tqdm bar on a terminal, plain status lines otherwise.

See docs/design.md#loops. A run goes through four kinds of phase, each counted in its own units:
`evaluating` (eval env steps, eval_episodes x episode_length per evaluation), `seeding`
(random-action env steps), `update burst` (the `seed_steps` updates at step == seed_steps) and
`training` (env steps of one act and one update). Rates are measured per kind over all its
entries, leaving out the first unit of every entry (JIT compilation, warm-up). A kind not yet
measured is estimated where possible (a training step ~ an eval step + an update), else its ETA
is `?`. The total ETA adds the rest of the current phase and every phase the schedule has left.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["PHASES", "Schedule", "Progress", "duration"]

PHASES = ("evaluating", "seeding", "update burst", "training")
_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}"
_UNIT = {
    "evaluating": "eval steps",
    "seeding": "steps",
    "update burst": "updates",
    "training": "steps",
}


def duration(seconds: float | None) -> str:
    """A human duration: `45 s`, `4.5 min`, `12 min`, `3 h 05 min`; `?` for None."""
    if seconds is None:
        return "?"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    if seconds < 570:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


@dataclass(frozen=True)
class Schedule:
    """What a run will do, in env steps, updates and evaluations (from its config).

    Attributes:
        steps: env steps the run trains for.
        seed_steps: random-action steps; the burst of `seed_steps` updates runs at that step.
        eval_freq: an evaluation at every multiple of it (0: only the final one).
        eval_episodes: episodes per evaluation, over all tasks.
        episode_length: env steps of an eval episode.
    """

    steps: int
    seed_steps: int
    eval_freq: int
    eval_episodes: int
    episode_length: int

    @classmethod
    def from_config(cls, cfg: Any) -> Schedule:
        """The schedule of `cfg` (an mbdpo_core.config.Config)."""
        return cls(
            steps=cfg.steps,
            seed_steps=cfg.seed_steps,
            eval_freq=cfg.eval_freq,
            eval_episodes=cfg.eval_episodes * len(cfg.evaluated_tasks),
            episode_length=cfg.episode_length,
        )

    @property
    def eval_units(self) -> int:
        """Eval env steps of one evaluation: the `total` of an `evaluating` phase."""
        return self.eval_episodes * self.episode_length

    def evaluations(self, after: int, through: int) -> int:
        """Evaluation points e with after < e <= through (after >= -1).

        The points are the multiples of eval_freq in [0, steps] and `steps` itself.
        """
        through = min(through, self.steps)
        if through <= after:
            return 0
        count = through // self.eval_freq - after // self.eval_freq if self.eval_freq > 0 else 0
        final_apart = self.eval_freq == 0 or self.steps % self.eval_freq != 0
        return count + int(final_apart and after < self.steps <= through)


class Progress:
    """Reports the phase of a run, its rate and ETAs, and the latest evaluation return.

    Call `start` once, `enter` at the start of every phase, `advance` after each unit of it,
    `evaluated` after each evaluation and `close` at the end.

    Args:
        schedule: what the run will do.
        desc: label of the bar and of the status lines (e.g. the task name).
        bar: draw a tqdm bar; None: when stderr is a terminal. Else status lines on stdout, one
            at every phase entry and at most one per `every_s` seconds in between.
        every_s: seconds between status lines without a bar.
    """

    def __init__(
        self, schedule: Schedule, desc: str = "", bar: bool | None = None, every_s: float = 30.0
    ) -> None:
        self.schedule, self.desc, self.every_s = schedule, desc, every_s
        self.bar = sys.stderr.isatty() if bar is None else bar
        self._tqdm: Any = None
        self._step, self._last_return = 0, None
        self._phase: str | None = None
        self._done = self._total = 0
        self._last_eval = -1  # env step of the latest evaluation (-1: none yet)
        self._burst_done = False
        self._units = dict.fromkeys(PHASES, 0)  # measured units per kind ...
        self._seconds = dict.fromkeys(PHASES, 0.0)  # ... and the seconds they took
        self._t_unit: float | None = None  # time of the latest unit of this entry
        self._t_start = self._t_shown = time.perf_counter()

    def start(
        self, step: int, last_return: float | None = None, evaluated_at: int | None = None
    ) -> None:
        """Begin at env step `step` (> 0 when resumed).

        Args:
            step: env steps done.
            last_return: return of the latest earlier evaluation.
            evaluated_at: env step of that evaluation; None: `step` when resumed (an evaluation
                due at the stop is then not counted in the total ETA), else none yet.
        """
        self._step, self._last_return = step, last_return
        self._last_eval = evaluated_at if evaluated_at is not None else step if step > 0 else -1
        self._burst_done = step > self.schedule.seed_steps
        self._t_start = time.perf_counter()

    def enter(self, phase: str, total: int, done: int = 0) -> None:
        """Begin a phase of `total` units, `done` of them already done (e.g. when resumed)."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; valid: {', '.join(PHASES)}")
        self._phase, self._total, self._done, self._t_unit = phase, total, done, None
        if phase == "evaluating":
            self._last_eval = self._step
        elif phase == "update burst":
            self._burst_done = True
        self._show(time.perf_counter(), entered=True)

    def advance(self, step: int, n: int = 1) -> None:
        """`n` more units of the current phase done; `step` env steps done so far."""
        assert self._phase is not None, "enter() a phase before advance()"
        now = time.perf_counter()
        if self._t_unit is not None:  # the first unit of an entry is not measured
            self._units[self._phase] += n
            self._seconds[self._phase] += now - self._t_unit
        self._t_unit, self._step, self._done = now, step, self._done + n
        self._show(now, entered=False)
        if self._tqdm is not None:
            self._tqdm.update(n)  # draws at most every 0.1 s

    def evaluated(self, episode_return: float) -> None:
        """An evaluation returned `episode_return`."""
        self._last_return = episode_return

    def status(self) -> str:
        """`update burst 1,200/5,000  41.3 updates/s  phase ETA 1.5 min  total ETA 1 h 12 min
        step 5,000/100,000  last eval 312.4` (one line)."""
        if self._phase is None:
            return self._details()
        counter = "" if self._phase == "evaluating" else f" {self._done:,}/{self._total:,}"
        return f"{self._label()}{counter}  {self._details()}"

    def close(self) -> None:
        """End the display; without a bar, a last line with the wall time."""
        if self._tqdm is not None:
            self._renew_bar()
            self._tqdm.close()
            self._tqdm = None
        elif not self.bar:
            ended = f"ended at step {self._step:,}/{self.schedule.steps:,}"
            elapsed = duration(time.perf_counter() - self._t_start)
            print(f"{self._prefix()}{ended} after {elapsed}", flush=True)

    # -- rates and ETAs --------------------------------------------------------------------

    def _measured(self, kind: str) -> float | None:
        """Measured seconds per unit of `kind`; None before one unit past the first."""
        seconds = self._seconds[kind]
        return seconds / self._units[kind] if seconds > 0 else None

    def _seconds_per_unit(self, kind: str) -> float | None:
        """Measured, else estimated from the other kinds, else None."""
        measured = self._measured(kind)
        if measured is not None:
            return measured
        act, update, train = map(self._measured, ("evaluating", "update burst", "training"))
        if kind == "training" and act is not None and update is not None:
            return act + update
        if kind == "evaluating" and train is not None and update is not None and train > update:
            return train - update
        return None

    def _phase_left(self) -> int:
        return max(self._total - self._done, 0)

    def _units_left(self) -> dict[str, int]:
        """Units of each kind the run has left, the rest of the current phase included."""
        sch, step = self.schedule, self._step
        evaluations = sch.evaluations(step, sch.steps)
        if self._phase != "evaluating":  # one that fell due waits for the episode's end
            evaluations += sch.evaluations(self._last_eval, step) > 0
        no_burst = self._burst_done or sch.seed_steps >= sch.steps
        left = {
            "evaluating": evaluations * sch.eval_units,
            "seeding": max(min(sch.seed_steps, sch.steps) - step, 0),
            "update burst": 0 if no_burst else sch.seed_steps,
            "training": max(sch.steps - max(step, sch.seed_steps), 0),
        }
        if self._phase in ("evaluating", "update burst"):
            left[self._phase] += self._phase_left()
        return left

    def _total_eta(self) -> float | None:
        seconds = 0.0
        for kind, units in self._units_left().items():
            if units > 0:
                per_unit = self._seconds_per_unit(kind)
                if per_unit is None:
                    return None
                seconds += units * per_unit
        return seconds

    # -- display ---------------------------------------------------------------------------

    def _label(self) -> str:
        if self._phase != "evaluating":
            return str(self._phase)
        length = self.schedule.episode_length
        return f"evaluating {self._done // length}/{math.ceil(self._total / length)} episodes"

    def _details(self) -> str:
        parts = []
        if self._phase is not None:
            per_unit, unit = self._seconds_per_unit(self._phase), _UNIT[self._phase]
            mark = "" if self._measured(self._phase) is not None else "~"
            rate = "?" if not per_unit else f"{mark}{1 / per_unit:,.1f}"
            phase_eta = None if per_unit is None else self._phase_left() * per_unit
            parts += [f"{rate} {unit}/s", f"phase ETA {duration(phase_eta)}"]
        parts += [
            f"total ETA {duration(self._total_eta())}",
            f"step {self._step:,}/{self.schedule.steps:,}",
        ]
        if self._last_return is not None:
            parts.append(f"last eval {self._last_return:.1f}")
        return "  ".join(parts)

    def _bar_label(self) -> str:
        return f"{self.desc} {self._label()}".strip()

    def _prefix(self) -> str:
        return f"{self.desc}  " if self.desc else ""

    def _show(self, now: float, entered: bool) -> None:
        """Renew the bar's text (every 0.1 s; `advance` draws it) or print a status line (every
        `every_s` seconds); both at a phase entry."""
        if not entered and now - self._t_shown < (0.1 if self.bar else self.every_s):
            return
        self._t_shown = now
        if not self.bar:
            print(self._prefix() + self.status(), flush=True)
            return
        if self._tqdm is None:
            from tqdm import tqdm

            self._tqdm = tqdm(
                total=self._total,
                initial=self._done,
                desc=self._bar_label(),
                postfix=self._details(),
                dynamic_ncols=True,
                bar_format=_BAR,
            )
            return
        self._renew_bar()
        if entered:
            self._tqdm.reset(total=self._total)  # draws the bar
            self._tqdm.update(self._done)

    def _renew_bar(self) -> None:
        """Phase in the bar's description, the rest of the status in its postfix (not drawn)."""
        self._tqdm.set_description_str(self._bar_label(), refresh=False)
        self._tqdm.set_postfix_str(self._details(), refresh=False)
