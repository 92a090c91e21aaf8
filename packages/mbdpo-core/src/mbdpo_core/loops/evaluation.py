"""Evaluation: deterministic (eval-mode) episodes, per task and averaged (docs/design.md#loops).

The episodes of the evaluation at loop step s reset from `episode_seed(episode_seed(seed, EVAL,
s), EVAL, i)`, i = 0..episodes-1, in every task's environment: two runs (or a run and its
resumption) evaluated at the same step see the same initial states.

Given a video path, the first episode is filmed as it is played (`mbdpo_core.video`): the video
shows the episode whose return is logged, at the cost of its renders alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..protocols import Agent
from ..video import VIDEO_SIZE, EpisodeVideo
from .seeds import EVAL, episode_seed

__all__ = ["EVAL_METRICS", "run_episodes", "EpisodeEvaluator"]

EVAL_METRICS = ("episode_reward", "episode_success", "episode_length")


def run_episodes(
    agent: Agent,
    env: Any,
    episodes: int,
    seed: int,
    task: int | None = None,
    on_step: Callable[[], None] | None = None,
    video: Path | None = None,
) -> dict[str, float]:
    """Run `episodes` eval-mode episodes of `env`; mean return, final-step success and length.

    Args:
        agent: acts with eval_mode=True (and `task`).
        env: reset(seed=...) -> (obs, info); step(action) -> (obs, reward, terminated,
            truncated, info).
        episodes: number of episodes.
        seed: episode i resets with `episode_seed(seed, EVAL, i)`.
        task: task id given to the agent, None for a single-task agent.
        on_step: called after every environment step (progress, stop requests).
        video: film episode 0 into this mp4: `env.render(VIDEO_SIZE, VIDEO_SIZE)` after the reset
            and after every step (length + 1 frames).
    """
    results = []  # (return, success, length) per episode
    for i in range(episodes):
        reset_seed = episode_seed(seed, EVAL, i)
        if i == 0 and video is not None:
            with EpisodeVideo(video) as film:
                results.append(_episode(agent, env, reset_seed, task, on_step, film))
        else:
            results.append(_episode(agent, env, reset_seed, task, on_step))
    returns, successes, lengths = zip(*results, strict=True)
    return {
        "episode_reward": float(np.mean(returns)),
        "episode_success": float(np.mean(successes)),
        "episode_length": float(np.mean(lengths)),
    }


def _episode(
    agent: Agent,
    env: Any,
    seed: int,
    task: int | None,
    on_step: Callable[[], None] | None,
    film: EpisodeVideo | None = None,
) -> tuple[float, float, int]:
    """One eval-mode episode reset with `seed`: (return, final-step success, length)."""
    obs, _ = env.reset(seed=seed)
    if film is not None:
        film.add(env.render(VIDEO_SIZE, VIDEO_SIZE))
    done, total, length, info = False, 0.0, 0, {}
    while not done:
        action = agent.act(obs, t0=length == 0, eval_mode=True, task=task)
        obs, reward, terminated, truncated, info = env.step(action)
        if film is not None:
            film.add(env.render(VIDEO_SIZE, VIDEO_SIZE))
        total += float(reward)
        length += 1
        done = terminated or truncated
        if on_step is not None:
            on_step()
    return total, float(info.get("success", 0.0)), length


class EpisodeEvaluator:
    """Evaluates an agent on one environment per task (an `Evaluator`).

    The row of `evaluate` holds EVAL_METRICS averaged over tasks; with more than one task it adds
    `<task>/<metric>` for each task.

    Args:
        envs: task name -> its evaluation environment (kept apart from the training ones).
        episodes: episodes per task and evaluation.
        seed: the run seed.
        task_ids: task name -> the id the agent takes; None for a single-task agent.
    """

    def __init__(
        self,
        envs: Mapping[str, Any],
        episodes: int,
        seed: int,
        task_ids: Mapping[str, int] | None = None,
    ) -> None:
        self.envs, self.episodes, self.seed = dict(envs), episodes, seed
        self.task_ids = None if task_ids is None else dict(task_ids)

    def per_task(
        self,
        agent: Agent,
        step: int,
        on_step: Callable[[], None] | None = None,
        videos: Mapping[str, Path] | None = None,
    ) -> dict[str, dict[str, float]]:
        """Task name -> its EVAL_METRICS at loop step `step`; `on_step` as in run_episodes;
        `videos`: task name -> the mp4 its first episode is filmed into (tasks not named: none).
        """
        seed = episode_seed(self.seed, EVAL, step)
        videos = videos or {}
        return {
            name: run_episodes(
                agent,
                env,
                self.episodes,
                seed,
                None if self.task_ids is None else self.task_ids[name],
                on_step,
                videos.get(name),
            )
            for name, env in self.envs.items()
        }

    def evaluate(
        self,
        agent: Agent,
        step: int,
        on_step: Callable[[], None] | None = None,
        videos: Mapping[str, Path] | None = None,
    ) -> dict[str, float]:
        """The eval row at loop step `step` (see the class docstring); `videos` as in per_task."""
        results = self.per_task(agent, step, on_step, videos)
        row = {k: float(np.mean([r[k] for r in results.values()])) for k in EVAL_METRICS}
        if len(results) > 1:
            row.update({f"{name}/{k}": r[k] for name, r in results.items() for k in EVAL_METRICS})
        return row
