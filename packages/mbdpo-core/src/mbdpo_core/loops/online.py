"""The online training loop (one task), composed of parts it receives (docs/design.md#loops).

One environment step: act (uniform random up to and including step `seed_steps`, as
published), step the env, record; a step from `seed_steps` on owes updates on batches from the
replay (the first one a burst of `seed_steps` updates, then one each), paid before the next
step. With `seed_steps=0` (fine-tuning's default) the agent acts from the first step and every
step owes one update once the replay holds an episode, as the published fine-tuning does.
At an episode's end: add it to the replay and log its row; then, at that boundary, evaluate and
checkpoint if one fell due. The run stops after exactly `steps` steps, evaluating and
checkpointing there, mid-episode if need be. Evaluation leaves the agent's state (RNG, warm
start) as it found it.

Every episode's reset is seeded from (seed, episode index), so a run restored from a checkpoint
continues exactly as the uninterrupted run would have: a checkpoint written mid-episode (at the
end, or when stopped by `StopRequest` between two steps, two updates or two evaluation steps)
holds the running episode's rows, and restoring replays its actions from the seeded reset
(docs/design.md#interrupting-and-resuming).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..buffer import EpisodeRecorder, ReplayBuffer
from ..config.schema import Config
from ..errors import CheckpointError
from ..protocols import Agent
from ..video import discard_videos_after, video_due, video_path
from .checkpointing import Checkpointer, LoopState
from .clock import RunClock
from .interrupt import Interrupted, StopRequest
from .progress import Progress, Schedule
from .protocols import Evaluator, Replay, RunLogger
from .seeds import TRAIN, episode_seed
from .task_eval import task_id

__all__ = ["make_replay", "checkpoint_due", "OnlineTrainer"]


def make_replay(cfg: Config) -> ReplayBuffer:
    """The replay of an online run: cfg.buffer_size rows, sampler seeded with cfg.seed."""
    return ReplayBuffer(
        capacity=cfg.buffer_size,  # independent of steps, so a resumed run samples alike
        obs_shape=cfg.obs_shape,
        action_dim=cfg.action_dim,
        obs_dtype=np.uint8 if cfg.obs == "rgb" else np.float32,
        seed=cfg.seed,
        sampling=cfg.replay_sampling,
    )


def checkpoint_due(step: int, every: int) -> bool:
    return every > 0 and step > 0 and step % every == 0


class OnlineTrainer:
    """Trains `agent` online on one environment until cfg.steps.

    Args:
        cfg: the run config (steps, seed_steps, batch_size, horizon, eval_freq, save_every, seed).
        agent: acts in `env` and updates on batches of `replay`.
        env: the training environment of task cfg.task (reset(seed=...), step(action)), at the
            agent's widths; deterministic given its reset seed and actions (a mid-episode
            checkpoint is restored by replaying them).
        replay: stores the collected episodes and serves the batches (any `Replay`).
        evaluator: scores the agent when an evaluation falls due (rows of eval.csv).
        logger: receives the "train" row of every episode and the "eval" rows.
        checkpoints: writes and restores the run's checkpoints.
        progress: reports the phases; None: a `Progress` of the config's schedule.
        stop: checked at every safe point; None: stop only at cfg.steps.
        videos: the folder of the evaluation videos (cfg.video_every): the filmed evaluations'
            first episode of cfg.task as `step_<N>.mp4`, also logged as TensorBoard "eval/video"
            (docs/design.md#videos); None: no videos.
    """

    def __init__(
        self,
        cfg: Config,
        agent: Agent,
        env: Any,
        replay: Replay,
        evaluator: Evaluator,
        logger: RunLogger,
        checkpoints: Checkpointer,
        progress: Progress | None = None,
        stop: StopRequest | None = None,
        videos: Path | None = None,
    ) -> None:
        self.cfg, self.agent, self.env, self.replay = cfg, agent, env, replay
        self.videos = videos
        self.evaluator, self.logger, self.checkpoints = evaluator, logger, checkpoints
        self.progress = progress or Progress(Schedule.from_config(cfg), desc=cfg.tasks[0])
        self.stop = stop or StopRequest()
        self.state = LoopState(rng=np.random.default_rng(cfg.seed), eval_due=cfg.eval_freq > 0)
        self.last_eval: dict[str, float] = {}
        self.recorder: EpisodeRecorder | None = None  # the running episode
        self.obs: np.ndarray | None = None
        self.done = False
        self.episode_metrics: list[dict[str, float]] = []
        self._phase = ""
        self.clock = RunClock()
        self.task = task_id(cfg, cfg.task)  # what a multi-task agent is told (None: single-task)
        self.steady_updates = cfg.updates_per_step  # what a step owes after the burst

    # --- checkpoints ---------------------------------------------------------------------------

    def save(self) -> None:
        """Checkpoint agent, counters, last evaluation, running episode and replay."""
        self.state.elapsed_s = self.clock.elapsed()
        arrays, episode = self._episode_state()
        extra = {"last_eval": self.last_eval, "episode": episode}
        self.checkpoints.save(self.agent.state_dict(), self.state, self.replay, extra, arrays)

    def restore(self, step: int | None = None) -> None:
        """Continue from checkpoint `step` (default: the newest); raises CheckpointError."""
        self.state, meta, arrays = self.checkpoints.restore(self.agent, self.replay, step)
        self.last_eval = meta.get("last_eval", {})
        if meta.get("episode") is not None:
            self._resume_episode(arrays, meta["episode"])
        self.logger.truncate_after(self.state.step)
        if self.videos is not None:
            discard_videos_after(self.videos, self.state.step)

    def _episode_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
        """The running episode's rows (arrays) and update metrics (meta); None between episodes."""
        if self.recorder is None:
            return {}, None
        rows = self.recorder.finish()
        arrays = {
            "episode/obs": rows["obs"],
            "episode/action": rows["action"][1:],
            "episode/reward": rows["reward"][1:],
        }
        keys = list(self.episode_metrics[0]) if self.episode_metrics else []
        metrics = {k: [float(m[k]) for m in self.episode_metrics] for k in keys}
        return arrays, {"metrics": metrics}

    def _resume_episode(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Rebuild the running episode: reset with its seed and replay its recorded actions."""
        index = self.state.episode - 1
        obs, _ = self.env.reset(seed=episode_seed(self.cfg.seed, TRAIN, index))
        recorded, done = arrays["episode/obs"], False
        self._check_replayed(obs, recorded[0], index, 0)
        recorder = EpisodeRecorder(obs, self.task)
        for t, action in enumerate(arrays["episode/action"]):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self._check_replayed(obs, recorded[t + 1], index, t + 1)
            recorder.add(action, reward, terminated, obs, info)
            done = bool(terminated or truncated)
        self.recorder, self.obs, self.done = recorder, obs, done
        self._restore_metrics(meta)

    def _restore_metrics(self, meta: dict[str, Any]) -> None:
        """The running episode's update metrics from a checkpoint's meta."""
        names, columns = list(meta["metrics"]), meta["metrics"].values()
        rows = zip(*columns, strict=True)
        self.episode_metrics = [dict(zip(names, row, strict=True)) for row in rows]

    @staticmethod
    def _check_replayed(obs: np.ndarray, recorded: np.ndarray, episode: int, t: int) -> None:
        if not np.array_equal(np.asarray(obs), recorded):
            raise CheckpointError(
                f"cannot resume mid-episode: replaying episode {episode} from its seed gives "
                f"another observation at step {t} than recorded (the environment is not "
                "deterministic); resume from a checkpoint written at an episode's end."
            )

    @property
    def finished(self) -> bool:
        """The run has done cfg.steps steps, their updates and its final evaluation."""
        st = self.state
        done = st.step >= self.cfg.steps and not st.updates_due
        return done and self.last_eval.get("step") == st.step

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> dict[str, float]:
        """Train until cfg.steps; returns the last evaluation's metrics, wall time and speed.

        Raises:
            Interrupted: a stop was requested; a checkpoint was written first.
        """
        cfg, st = self.cfg, self.state
        self.clock.start(st.elapsed_s, st.step)
        last = self.last_eval
        self.progress.start(st.step, last.get("episode_reward"), evaluated_at=last.get("step"))
        try:
            while True:
                self._pay_updates()
                if self.recorder is not None and self.done:
                    self._end_episode()
                at_end = st.step >= cfg.steps
                if self.recorder is None or at_end:
                    if st.eval_due or at_end and self.last_eval.get("step") != st.step:
                        self._evaluate()
                    if st.save_due or at_end:
                        self.save()
                        st.save_due = False
                    if at_end:
                        break
                self._env_step()
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
            "steps_per_s": (st.step - self.clock.first_step) / max(elapsed, 1e-9),
        }

    def _env_step(self) -> None:
        cfg, st = self.cfg, self.state
        if self.recorder is None:
            self.obs, _ = self.env.reset(seed=episode_seed(cfg.seed, TRAIN, st.episode))
            self.recorder, self.done = EpisodeRecorder(self.obs, self.task), False
            st.episode += 1
        if st.step <= cfg.seed_steps and cfg.seed_steps:  # the burst's step acts at random too
            self._enter("seeding", min(cfg.seed_steps + 1, cfg.steps) - st.step)
            action = st.rng.uniform(-1, 1, cfg.action_dim).astype(np.float32)
        else:
            self._enter("training", cfg.steps - st.step)
            t0 = len(self.recorder) == 0
            action = self.agent.act(self.obs, t0=t0, eval_mode=False, task=self.task)
        self.obs, reward, terminated, truncated, info = self.env.step(action)
        self.recorder.add(action, reward, terminated, self.obs, info)
        self.done = bool(terminated or truncated)
        if not cfg.seed_steps:  # once an episode is in the replay
            st.updates_due = int(st.episode > 1) * cfg.updates_per_step
        elif st.step >= cfg.seed_steps:
            burst = st.step == cfg.seed_steps
            st.updates_due = cfg.seed_steps if burst else cfg.updates_per_step
        st.step += 1
        st.eval_due |= cfg.eval_freq > 0 and st.step % cfg.eval_freq == 0
        st.save_due |= checkpoint_due(st.step, cfg.save_every)
        if st.updates_due <= self.steady_updates:
            self.progress.advance(st.step)

    def _pay_updates(self) -> None:
        """Run the updates the last step owes; a burst is interruptible between two updates."""
        st = self.state
        burst = st.updates_due > self.steady_updates
        if burst:
            self._enter("update burst", st.updates_due)
        while st.updates_due:
            batch = self.replay.sample(self.cfg.batch_size, self.cfg.horizon)
            self.episode_metrics.append(self.agent.update(batch))
            st.updates += 1
            st.updates_due -= 1
            if burst:
                self.progress.advance(st.step)
                if st.updates_due:
                    self.stop.check()

    def _end_episode(self) -> None:
        episode = self.recorder.finish()
        self.replay.add(episode)
        row = {
            "episode": self.state.episode,
            "episode_reward": float(np.nansum(episode["reward"])),
            "episode_success": self.recorder.success,
            "episode_length": len(self.recorder),
        }
        metrics = self.episode_metrics
        if metrics:
            row.update({k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]})
        self.logger.log(
            "train", self.state.step, {**row, **self.clock.columns("train", self.state.step)}
        )
        self.recorder, self.episode_metrics = None, []

    def _evaluate(self) -> None:
        """Evaluate at this step; the agent's state is put back afterwards (also if stopped)."""
        st = self.state
        self._enter("evaluating", self.progress.schedule.eval_units)
        films = self._films()
        before = self.agent.state_dict()
        try:
            result = self.evaluator.evaluate(
                self.agent, st.step, on_step=self._eval_step, **({"videos": films} if films else {})
            )
        finally:
            self.agent.load_state_dict(*before)
        self.logger.log("eval", st.step, {**result, **self.clock.columns("eval", self.state.step)})
        for path in films.values():
            self.logger.log_video("eval/video", st.step, path)
        self.last_eval = {"step": st.step, **result}
        st.eval_due = False
        self.progress.evaluated(result["episode_reward"])
        self._phase = ""

    def _films(self) -> dict[str, Path]:
        """cfg.task -> its video of the evaluation at this step if it is filmed, else {}."""
        cfg, step = self.cfg, self.state.step
        if self.videos is None or not video_due(
            cfg.video_every, step, self.last_eval.get("step"), cfg.steps
        ):
            return {}
        return {cfg.task: video_path(self.videos, step)}

    def _eval_step(self) -> None:
        self.progress.advance(self.state.step)
        self.stop.check()

    def _enter(self, phase: str, total: int) -> None:
        if phase != self._phase:
            self._phase = phase
            self.progress.enter(phase, total)
