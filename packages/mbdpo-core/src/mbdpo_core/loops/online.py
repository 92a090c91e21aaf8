"""The online training loop (single task), composed of parts it receives (docs/design.md#loops).

Order of one environment step: act (uniform random during the first `seed_steps` steps), step
the env, record; from step `seed_steps` on, update on batches from the replay (a one-off burst of
`seed_steps` updates, then one per step). At an episode boundary: add the episode to the replay,
evaluate if an evaluation fell due, checkpoint if one fell due, reset. Checkpoints are written
only at episode boundaries and every episode's reset is seeded from (seed, episode index), so a
run restored from its latest checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..buffer import EpisodeRecorder, ReplayBuffer
from ..config.schema import Config
from ..protocols import Agent
from .checkpointing import Checkpointer, LoopState
from .progress import Progress
from .protocols import Evaluator, Replay, RunLogger
from .seeds import TRAIN, episode_seed

__all__ = ["make_replay", "checkpoint_due", "OnlineTrainer"]


def make_replay(cfg: Config) -> ReplayBuffer:
    """The replay of an online run: cfg.buffer_size rows, sampler seeded with cfg.seed."""
    return ReplayBuffer(
        capacity=cfg.buffer_size,  # independent of steps, so a resumed run samples alike
        obs_shape=cfg.obs_shape,
        action_dim=cfg.action_dim,
        obs_dtype=np.uint8 if cfg.obs == "rgb" else np.float32,
        seed=cfg.seed,
    )


def checkpoint_due(step: int, every: int) -> bool:
    return every > 0 and step > 0 and step % every == 0


class OnlineTrainer:
    """Trains `agent` online on one environment until cfg.steps.

    Args:
        cfg: the run config (steps, seed_steps, batch_size, horizon, eval_freq, save_every, seed).
        agent: acts in `env` and updates on batches of `replay`.
        env: the training environment (reset(seed=...), step(action)).
        replay: stores the collected episodes and serves the batches (any `Replay`).
        evaluator: scores the agent when an evaluation falls due (rows of eval.csv).
        logger: receives the "train" row of every episode and the "eval" rows.
        checkpoints: writes and restores the run's checkpoints.
        progress: reports steps; None: a `Progress` to cfg.steps labelled with the task.
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
    ) -> None:
        self.cfg, self.agent, self.env, self.replay = cfg, agent, env, replay
        self.evaluator, self.logger, self.checkpoints = evaluator, logger, checkpoints
        self.progress = progress or Progress(cfg.steps, desc=cfg.tasks[0])
        self.state = LoopState(rng=np.random.default_rng(cfg.seed))
        self.last_eval: dict[str, float] = {}

    def save(self) -> None:
        """Checkpoint agent, counters, last evaluation and replay at the current step."""
        self.checkpoints.save(self.agent, self.state, self.replay, {"last_eval": self.last_eval})

    def restore(self) -> bool:
        """Continue from the latest checkpoint, if any; True when a run was resumed."""
        restored = self.checkpoints.restore(self.agent, self.replay)
        if restored is None:
            return False
        self.state, meta = restored
        self.last_eval = meta.get("last_eval", {})
        self.logger.truncate_after(self.state.step)
        return True

    def run(self) -> dict[str, float]:
        """Train until cfg.steps; returns the last evaluation's metrics, wall time and speed."""
        cfg, st = self.cfg, self.state
        self.progress.start(st.step, self.last_eval.get("episode_reward"))
        eval_due = cfg.eval_freq > 0 and st.step % cfg.eval_freq == 0
        eval_due &= not self._evaluated_at(st.step)  # a resumed run evaluated before saving
        save_due, done, recorder = False, True, None
        episode_metrics: list[dict[str, float]] = []
        t_start, step_start = time.perf_counter(), st.step
        obs = None
        while True:
            if done:
                if recorder is not None:
                    self._end_episode(recorder, episode_metrics)
                    episode_metrics = []
                if eval_due or st.step >= cfg.steps and not self._evaluated_at(st.step):
                    self._evaluate()
                    eval_due = False
                if save_due or st.step >= cfg.steps:
                    self.save()
                    save_due = False
                if st.step >= cfg.steps:
                    break
                obs, _ = self.env.reset(seed=episode_seed(cfg.seed, TRAIN, st.episode))
                recorder = EpisodeRecorder(obs)
                st.episode += 1
            if st.step < cfg.seed_steps:
                action = st.rng.uniform(-1, 1, cfg.action_dim).astype(np.float32)
            else:
                action = self.agent.act(obs, t0=len(recorder) == 0, eval_mode=False)
            obs, reward, terminated, truncated, info = self.env.step(action)
            recorder.add(action, reward, terminated, obs, info)
            done = bool(terminated or truncated)
            if st.step >= cfg.seed_steps:
                for _ in range(cfg.seed_steps if st.step == cfg.seed_steps else 1):
                    batch = self.replay.sample(cfg.batch_size, cfg.horizon)
                    episode_metrics.append(self.agent.update(batch))
                    st.updates += 1
            st.step += 1
            eval_due |= cfg.eval_freq > 0 and st.step % cfg.eval_freq == 0
            save_due |= checkpoint_due(st.step, cfg.save_every)
            self.progress.step(st.step)
        self.progress.close()
        elapsed = time.perf_counter() - t_start
        self.logger.close()
        return {
            **self.last_eval,
            "wall_time_s": elapsed,
            "steps_per_s": (st.step - step_start) / max(elapsed, 1e-9),
        }

    def _evaluated_at(self, step: int) -> bool:
        return self.last_eval.get("step") == step

    def _end_episode(self, recorder: EpisodeRecorder, metrics: list[dict[str, float]]) -> None:
        episode = recorder.finish()
        self.replay.add(episode)
        row = {
            "episode": self.state.episode,
            "episode_reward": float(np.nansum(episode["reward"])),
            "episode_success": recorder.success,
            "episode_length": len(recorder),
        }
        if metrics:
            row.update({k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]})
        self.logger.log("train", self.state.step, row)

    def _evaluate(self) -> None:
        result = self.evaluator.evaluate(self.agent, self.state.step)
        self.logger.log("eval", self.state.step, result)
        self.last_eval = {"step": self.state.step, **result}
        self.progress.evaluated(result["episode_reward"])
