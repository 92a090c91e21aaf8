"""The progress display: phases, rates measured per phase kind, phase and total ETAs, status lines.

Time is simulated: the module's `time` is replaced by a clock the test moves forward, so the
expected ETAs follow from the simulated seconds per unit, computed by hand below.
"""

from __future__ import annotations

import pytest
from mbdpo_core.config import load_config
from mbdpo_core.loops import progress as progress_module
from mbdpo_core.loops.progress import PHASES, Progress, Schedule, duration


class Clock:
    """Stands in for the `time` module inside progress.py."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_module, "time", fake)
    return fake


def run_phase(progress: Progress, clock: Clock, phase, total, seconds, step, first=None):
    """Enter `phase`, then `len(seconds)` units taking those seconds (the first one `first` if
    given); `step`: the env step after unit i (a function of i), or one step for all units (an
    evaluation, the burst)."""
    progress.enter(phase, total)
    for i, dt in enumerate(seconds):
        clock.now += first if i == 0 and first is not None else dt
        progress.advance(step(i) if callable(step) else step, 1)


def test_durations_read_as_a_person_would_write_them():
    assert duration(None) == "?"
    assert duration(0) == "0 s"
    assert duration(45.2) == "45 s"
    assert duration(90) == "1.5 min"
    assert duration(12 * 60 + 10) == "12 min"
    assert duration(3 * 3600 + 5 * 60) == "3 h 05 min"
    assert duration(795 * 3600) == "795 h 00 min"


def test_schedule_counts_evaluations_at_multiples_of_eval_freq_and_at_the_end():
    for steps in (1, 7, 10, 25, 30):
        for eval_freq in (0, 1, 3, 10, 40):
            sch = Schedule(
                steps, seed_steps=2, eval_freq=eval_freq, eval_episodes=1, episode_length=5
            )
            points = {steps} | ({*range(0, steps + 1, eval_freq)} if eval_freq else set())
            for after in range(-1, steps + 2):
                for through in range(after, steps + 3):
                    expected = sum(after < p <= through for p in points)
                    assert sch.evaluations(after, through) == expected, (steps, eval_freq)
    assert Schedule(100_000, 2500, 10_000, 10, 500).evaluations(-1, 100_000) == 11
    assert Schedule(1, 2500, 5000, 10, 500).evaluations(-1, 500) == 2  # step 0 and the end


def test_schedule_from_a_config():
    cfg = load_config(
        [
            "task=cartpole-balance",
            "preset=cpu",
            "steps=3000",
            "seed_steps=600",
            "eval_freq=1000",
            "eval_episodes=3",
        ]
    )
    assert Schedule.from_config(cfg) == Schedule(3000, 600, 1000, 3, 500)
    assert Schedule.from_config(cfg).eval_units == 1500


def test_a_run_names_each_phase_in_its_status_lines(clock, capsys):
    sch = Schedule(steps=100, seed_steps=20, eval_freq=50, eval_episodes=2, episode_length=10)
    progress = Progress(sch, desc="cartpole", bar=False, every_s=1e9)  # entry lines only
    progress.start(0)
    run_phase(progress, clock, "evaluating", 20, [0.1] * 20, 0)
    progress.evaluated(4.0)
    run_phase(progress, clock, "seeding", 20, [0.01] * 20, lambda i: i + 1)
    run_phase(progress, clock, "update burst", 20, [0.2] * 20, 20)
    run_phase(progress, clock, "training", 80, [0.3] * 30, lambda i: 21 + i)
    run_phase(progress, clock, "evaluating", 20, [0.1] * 20, 50)
    run_phase(progress, clock, "training", 50, [0.3] * 50, lambda i: 51 + i)
    run_phase(progress, clock, "evaluating", 20, [0.1] * 20, 100)
    progress.close()
    lines = capsys.readouterr().out.splitlines()
    phases = [line.removeprefix("cartpole  ") for line in lines]
    expected = [
        "evaluating 0/2",
        "seeding 0/20",
        "update burst 0/20",
        "training 0/80",
        "evaluating 0/2",
        "training 0/50",
        "evaluating 0/2",
        "ended at step 100/100",
    ]
    assert [p.startswith(e) for p, e in zip(phases, expected, strict=True)] == [True] * 8
    assert all(line.startswith("cartpole  ") for line in lines)
    assert set(PHASES) == {"evaluating", "seeding", "update burst", "training"}
    assert "last eval 4.0" in lines[1] and "last eval" not in lines[0]
    assert not any("-" in line for line in lines)  # no negative ETA


def test_phase_and_total_eta_follow_the_measured_rates(clock):
    # 10,000 steps; 100 seeding steps; evaluations at 0, 500, ..., 10,000 of 2 x 10 eval steps.
    sch = Schedule(steps=10_000, seed_steps=100, eval_freq=500, eval_episodes=2, episode_length=10)
    progress = Progress(sch, bar=False, every_s=1e9)
    progress.start(0)
    run_phase(progress, clock, "evaluating", 20, [0.5] * 20, 0, first=100.0)  # 0.5 s / eval step
    progress.evaluated(7.0)
    run_phase(progress, clock, "seeding", 100, [0.1] * 100, lambda i: i + 1, first=1.0)
    run_phase(progress, clock, "update burst", 100, [2.0] * 41, 100, first=50.0)  # 2 s / update
    # burst: 59 updates x 2 s = 118 s; training estimated as act + update = 0.5 + 2 = 2.5 s/step:
    # 9,900 x 2.5 = 24,750 s; evaluations at 500..10,000: 20 x 20 x 0.5 = 200 s.
    # total 25,068 s = 417.8 min -> 6 h 58 min.
    assert progress.status() == (
        "update burst 41/100  0.5 updates/s  phase ETA 2.0 min  total ETA 6 h 58 min  "
        "step 100/10,000  last eval 7.0"
    )
    run_phase(progress, clock, "update burst", 59, [2.0] * 59, 100)
    progress.enter("training", 9900)
    # 9,900 x 2.5 s = 412.5 min, rounded half to even: 412 min
    assert "~0.4 steps/s  phase ETA 6 h 52 min" in progress.status()
    run_phase(progress, clock, "training", 9900, [3.0] * 11, lambda i: 101 + i, first=30.0)
    # measured 3 s / step: phase 9,889 x 3 = 29,667 s = 494.45 min -> 8 h 14 min;
    # total adds 20 evaluations x 20 x 0.5 s = 200 s: 29,867 s = 497.8 min -> 8 h 18 min.
    assert progress.status() == (
        "training 11/9,900  0.3 steps/s  phase ETA 8 h 14 min  total ETA 8 h 18 min  "
        "step 111/10,000  last eval 7.0"
    )


def test_a_huge_first_unit_does_not_make_a_huge_eta(clock):
    # JAX compiles on the first step: 2,000 s, then 0.05 s per step.
    sch = Schedule(steps=100_000, seed_steps=1000, eval_freq=0, eval_episodes=1, episode_length=500)
    progress = Progress(sch, bar=False, every_s=1e9)
    progress.start(50_000)
    run_phase(progress, clock, "training", 50_000, [0.05] * 5, lambda i: 50_001 + i, first=2000.0)
    # phase: 49,995 x 0.05 = 2,499.75 s = 41.7 min -> 42 min
    assert "20.0 steps/s  phase ETA 42 min" in progress.status()
    # the final evaluation's rate is estimated as a training step less an update: unknown here.
    assert progress.status().split("  ")[3] == "total ETA ?"


def test_an_unmeasured_rate_gives_a_question_mark(clock, capsys):
    sch = Schedule(steps=5000, seed_steps=1000, eval_freq=1000, eval_episodes=1, episode_length=10)
    progress = Progress(sch, bar=False, every_s=1e9)
    progress.start(0)
    progress.enter("evaluating", 10)
    assert progress.status() == (
        "evaluating 0/1 episodes  ? eval steps/s  phase ETA ?  total ETA ?  step 0/5,000"
    )
    clock.now += 60.0
    progress.advance(0)  # the first unit alone measures nothing
    assert progress.status().startswith("evaluating 0/1 episodes  ? eval steps/s  phase ETA ?")
    run_phase(progress, clock, "seeding", 1000, [0.01] * 3, lambda i: i + 1)
    # seeding is measured (2 units after the first), the burst is not: total unknown.
    assert progress.status().split("  ")[1:4] == ["100.0 steps/s", "phase ETA 10 s", "total ETA ?"]
    assert capsys.readouterr().out.splitlines()[0].endswith("total ETA ?  step 0/5,000")


def test_plain_lines_are_rate_limited(clock, capsys):
    sch = Schedule(steps=1000, seed_steps=500, eval_freq=0, eval_episodes=1, episode_length=10)
    progress = Progress(sch, bar=False, every_s=10.0)
    progress.start(0)
    run_phase(progress, clock, "seeding", 500, [1.0] * 100, lambda i: i + 1)
    lines = capsys.readouterr().out.splitlines()
    # the entry, then one line each 10 simulated seconds of the 100: at 10, 20, ..., 100.
    assert len(lines) == 11
    assert [line.split()[1] for line in lines] == [f"{10 * k}/500" for k in range(11)]


def test_an_evaluation_that_fell_due_is_still_counted(clock):
    # eval points 0, 500, 1000; at step 505 the one due at 500 waits for the episode's end.
    sch = Schedule(steps=1000, seed_steps=100, eval_freq=500, eval_episodes=5, episode_length=10)
    progress = Progress(sch, bar=False, every_s=1e9)
    progress.start(400)  # resumed: evaluated at 400 when it saved
    run_phase(progress, clock, "evaluating", 50, [1.0] * 10, 400)  # 1 s per eval step
    run_phase(progress, clock, "training", 600, [2.0] * 105, lambda i: 401 + i)
    # training 495 x 2 = 990 s, evaluations 2 x 50 x 1 = 100 s: 1,090 s = 18.2 min -> 18 min
    # (without the one due at 500: 1,040 s -> 17 min)
    assert "total ETA 18 min  step 505/1,000" in progress.status()
    run_phase(progress, clock, "evaluating", 50, [1.0] * 3, 505)
    # rest of this one 47 s + the one at 1000 (50 s) + training 990 s = 1,087 s -> 18 min
    assert "phase ETA 47 s  total ETA 18 min" in progress.status()
    progress.enter("training", 495)
    assert "total ETA 17 min" in progress.status()  # 990 + 50 = 1,040 s = 17.3 min


def test_a_resumed_run_starts_from_its_step(clock, capsys):
    sch = Schedule(
        steps=10_000, seed_steps=1000, eval_freq=5000, eval_episodes=1, episode_length=10
    )
    progress = Progress(sch, bar=False, every_s=1e9)
    progress.start(5000, last_return=3.5)  # evaluated at 5000, burst long done
    assert progress.status() == "total ETA ?  step 5,000/10,000  last eval 3.5"
    run_phase(progress, clock, "training", 5000, [0.5] * 11, lambda i: 5001 + i)
    # 4,989 steps x 0.5 = 2,494.5 s, then one evaluation (10 eval steps) estimated from
    # training less update: no update rate measured, so the total is unknown.
    assert "2.0 steps/s  phase ETA 42 min  total ETA ?" in progress.status()

    at_end = Progress(sch, bar=False, every_s=1e9)
    at_end.start(10_000, last_return=9.0)
    assert at_end.status() == "total ETA 0 s  step 10,000/10,000  last eval 9.0"


def test_steps_shorter_than_an_episode_show_no_negative_eta(clock, capsys):
    # steps=1: the loop still finishes its first 500-step episode, then evaluates.
    sch = Schedule(steps=1, seed_steps=2500, eval_freq=5000, eval_episodes=1, episode_length=500)
    progress = Progress(sch, bar=False, every_s=5.0)
    progress.start(0)
    run_phase(progress, clock, "evaluating", 500, [0.01] * 500, 0)
    run_phase(progress, clock, "seeding", 1, [0.02] * 500, lambda i: i + 1)
    # only the final evaluation is left: 500 x 0.01 = 5 s
    assert "phase ETA 0 s  total ETA 5 s  step 500/1" in progress.status()
    progress.close()
    out = capsys.readouterr().out
    assert "-" not in out


def test_a_terminal_gets_a_bar_with_phase_and_etas(clock, capsys):
    sch = Schedule(steps=1000, seed_steps=100, eval_freq=0, eval_episodes=1, episode_length=10)
    progress = Progress(sch, desc="walker", bar=True)
    progress.start(0)
    run_phase(progress, clock, "update burst", 100, [1.0] * 10, 100)
    progress.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "walker update burst" in captured.err and "10/100" in captured.err
    assert "1.0 updates/s  phase ETA 1.5 min  total ETA ?" in captured.err


def test_a_resumed_run_counts_the_evaluation_that_was_due_when_it_stopped(clock):
    # evaluations at 0, 1000, ..., 10,000; stopped mid-burst at step 1001, last evaluated at 0.
    sch = Schedule(
        steps=10_000, seed_steps=1000, eval_freq=1000, eval_episodes=1, episode_length=10
    )
    progress = Progress(sch, bar=False, every_s=1e9)
    progress.start(1001, last_return=1.0, evaluated_at=0)
    run_phase(progress, clock, "update burst", 500, [1.0] * 500, 1001)  # 1 s per update
    run_phase(progress, clock, "training", 8999, [1.5] * 11, lambda i: 1002 + i)
    # training 8,988 x 1.5 = 13,482 s; an eval step is estimated as 1.5 - 1 = 0.5 s: the one due
    # at 1000 and 2000, ..., 10,000: 10 x 10 x 0.5 = 50 s. 13,532 s = 225.5 min -> 3 h 46 min.
    assert progress.status() == (
        "training 11/8,999  0.7 steps/s  phase ETA 3 h 45 min  total ETA 3 h 46 min  "
        "step 1,012/10,000  last eval 1.0"
    )
