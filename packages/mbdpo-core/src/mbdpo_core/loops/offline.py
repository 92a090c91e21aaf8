"""The offline loop: one agent trained on batches of a fixed dataset (docs/design.md#loops).

One iteration is one update on a batch of the source (`mbdpo_data.DatasetSampler` over a
converted mt30/mt80 dataset, or any `BatchSource`). Every `log_freq` updates the mean of their
metrics becomes a `train.csv` row; every `eval_freq` updates (and at update 0, as published) the
evaluator scores every evaluated task: `eval.csv` gets one row per task (its return, success,
length and normalised score) and `eval_summary.csv` one row per evaluation (the means, the
normalised score and the per-suite means, printed on the console). Checkpoints every
`save_every` updates, at the end and when stopped hold the agent, the counters, the partial
log window and the source's sampling state, so a resumed run continues exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config.schema import Config
from ..protocols import Agent
from ..scores import normalised_score, summarise
from ..video import discard_videos_after, video_due, video_path
from .checkpointing import Checkpointer, LoopState
from .clock import RunClock
from .interrupt import Interrupted, StopRequest
from .online import checkpoint_due
from .progress import Progress, Schedule
from .protocols import BatchSource, RunLogger

__all__ = ["OfflineTrainer", "offline_schedule"]


def offline_schedule(cfg: Config) -> Schedule:
    """The run's phases in updates (no seeding) and evaluation steps over the evaluated tasks."""
    lengths = dict(zip(cfg.tasks, cfg.episode_lengths, strict=True))
    tasks = cfg.evaluated_tasks
    return Schedule(
        steps=cfg.steps,
        seed_steps=0,
        eval_freq=cfg.eval_freq,
        eval_episodes=cfg.eval_episodes * len(tasks),
        episode_length=round(np.mean([lengths[t] for t in tasks])),
    )


class OfflineTrainer:
    """Trains `agent` on batches of `batches` until cfg.steps updates.

    Args:
        cfg: the run config (steps, batch_size, horizon, log_freq, eval_freq, save_every).
        agent: updates on the batches.
        batches: the dataset's batch source; its state is checkpointed when it is `Stateful`.
        evaluator: has `per_task(agent, step, on_step)` -> task -> EVAL_METRICS, e.g.
            `TaskEvaluator` over cfg.evaluated_tasks.
        logger: receives the train, eval (per task) and eval_summary rows.
        checkpoints: writes and restores the run's checkpoints.
        progress: reports the phases; None: a `Progress` of `offline_schedule(cfg)`.
        stop: checked after every update and evaluation step; None: stop only at cfg.steps.
        videos: the folder of the evaluation videos (cfg.video_every): each evaluated task's
            first episode of a filmed evaluation as `step_<N>-<task>.mp4`, also logged as
            TensorBoard "eval/<task>/video" (docs/design.md#videos); None: no videos.
    """

    def __init__(
        self,
        cfg: Config,
        agent: Agent,
        batches: BatchSource,
        evaluator: Any,
        logger: RunLogger,
        checkpoints: Checkpointer,
        progress: Progress | None = None,
        stop: StopRequest | None = None,
        videos: Path | None = None,
    ) -> None:
        self.cfg, self.agent, self.batches = cfg, agent, batches
        self.videos = videos
        self.evaluator, self.logger, self.checkpoints = evaluator, logger, checkpoints
        self.progress = progress or Progress(offline_schedule(cfg), desc=cfg.task)
        self.stop = stop or StopRequest()
        self.state = LoopState(eval_due=cfg.eval_freq > 0)
        self.last_eval: dict[str, float] = {}
        self.window: list[dict[str, float]] = []  # update metrics since the last train row
        self._phase = ""
        self.clock = RunClock()

    def save(self) -> None:
        """Checkpoint agent, counters, last evaluation, log window and the source's state."""
        self.state.elapsed_s = self.clock.elapsed()
        extra = {"last_eval": self.last_eval, "window": self.window}
        self.checkpoints.save(self.agent.state_dict(), self.state, self.batches, extra)

    def restore(self, step: int | None = None) -> None:
        """Continue from checkpoint `step` (default: the newest); raises CheckpointError."""
        self.state, meta, _ = self.checkpoints.restore(self.agent, self.batches, step)
        self.last_eval = meta.get("last_eval", {})
        self.window = meta.get("window", [])
        self.logger.truncate_after(self.state.step)
        if self.videos is not None:
            discard_videos_after(self.videos, self.state.step)

    @property
    def finished(self) -> bool:
        """The run has done cfg.steps updates and its final evaluation."""
        st = self.state
        return st.step >= self.cfg.steps and self.last_eval.get("step") == st.step

    def run(self) -> dict[str, float]:
        """Train until cfg.steps updates; returns the last evaluation summary, wall time, speed.

        Raises:
            Interrupted: a stop was requested; a checkpoint was written first.
        """
        cfg, st = self.cfg, self.state
        self.clock.start(st.elapsed_s, st.step)
        last = self.last_eval
        self.progress.start(st.step, last.get("episode_reward"), evaluated_at=last.get("step"))
        try:
            while True:
                at_end = st.step >= cfg.steps
                if st.eval_due or at_end and self.last_eval.get("step") != st.step:
                    self._evaluate()
                if st.save_due or at_end:
                    self.save()
                    st.save_due = False
                if at_end:
                    break
                self._update()
                self.stop.check()
        except Interrupted:
            self.save()
            raise
        finally:
            self.progress.close()
            self.logger.close()
        elapsed = self.clock.session_s()
        return {
            **self.last_eval,
            "wall_time_s": elapsed,
            "updates_per_s": (st.step - self.clock.first_step) / max(elapsed, 1e-9),
        }

    def _update(self) -> None:
        cfg, st = self.cfg, self.state
        self._enter("training", cfg.steps - st.step)
        batch = self.batches.sample(cfg.batch_size, cfg.horizon)
        self.window.append({k: float(v) for k, v in self.agent.update(batch).items()})
        st.step += 1
        st.updates += 1
        if st.step % cfg.log_freq == 0 or st.step == cfg.steps:
            means = {k: float(np.mean([m[k] for m in self.window])) for k in self.window[0]}
            self.logger.log(
                "train", st.step, {**means, **self.clock.columns("train", self.state.step)}
            )
            self.window = []
        st.eval_due |= cfg.eval_freq > 0 and st.step % cfg.eval_freq == 0
        st.save_due |= checkpoint_due(st.step, cfg.save_every)
        self.progress.advance(st.step)

    def _evaluate(self) -> None:
        """Score every evaluated task; the agent's state is put back afterwards."""
        st = self.state
        self._enter("evaluating", self.progress.schedule.eval_units)
        films = self._films()
        before = self.agent.state_dict()
        try:
            results = self.evaluator.per_task(
                self.agent, st.step, on_step=self._eval_step, **({"videos": films} if films else {})
            )
        finally:
            self.agent.load_state_dict(*before)
        for task, path in films.items():
            self.logger.log_video(f"eval/{task}/video", st.step, path)
        for task, metrics in results.items():
            score = normalised_score(task, metrics["episode_reward"], metrics["episode_success"])
            row = {"task": task, **metrics, "normalised_score": score}
            self.logger.log("eval", st.step, row, scalars=f"eval/{task}", console=False)
        summary = summarise(results)
        timing = self.clock.columns("eval", self.state.step)
        self.logger.log("eval_summary", st.step, {**summary, **timing}, console=True)
        self.last_eval = {"step": st.step, **summary}
        st.eval_due = False
        self.progress.evaluated(summary["episode_reward"])
        self._phase = ""

    def _films(self) -> dict[str, Path]:
        """Evaluated task -> its video of the evaluation at this step if it is filmed, else {}."""
        cfg, step = self.cfg, self.state.step
        if self.videos is None or not video_due(
            cfg.video_every, step, self.last_eval.get("step"), cfg.steps
        ):
            return {}
        return {task: video_path(self.videos, step, task) for task in cfg.evaluated_tasks}

    def _eval_step(self) -> None:
        self.progress.advance(self.state.step)
        self.stop.check()

    def _enter(self, phase: str, total: int) -> None:
        if phase != self._phase:
            self._phase = phase
            self.progress.enter(phase, total)
