"""Scores of an evaluation over many tasks (docs/design.md#evaluation).

The normalised score of a task is the published multi-task score: success x 100 for a Meta-World
task, return / 10 for any other (a DMControl return lies in [0, 1000]). A summary averages every
metric over the tasks, and per suite (the "domain") when tasks of more than one suite are present.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import tasks as task_registry

__all__ = ["SUCCESS_SUITES", "normalised_score", "summarise"]

SUCCESS_SUITES = ("metaworld",)
"""Suites whose normalised score is the success rate x 100 (the others: return / 10)."""

_MEANS = ("episode_reward", "episode_success", "episode_length")
_SUITE_MEANS = ("episode_reward", "episode_success", "normalised_score")


def normalised_score(task: str, episode_reward: float, episode_success: float) -> float:
    """Success x 100 for a Meta-World task, return / 10 otherwise.

    Raises:
        UnknownTaskError: `task` is not registered.
    """
    if task_registry.get(task).suite in SUCCESS_SUITES:
        return float(episode_success) * 100.0
    return float(episode_reward) / 10.0


def summarise(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Means over tasks of an evaluation's per-task metrics.

    Args:
        per_task: task name -> {episode_reward, episode_success, episode_length}.

    Returns:
        episode_reward, episode_success, episode_length and normalised_score, each the mean
        over tasks; with tasks of more than one suite also `<suite>/episode_reward`,
        `<suite>/episode_success` and `<suite>/normalised_score`, the means over that suite's
        tasks (suites in order of first appearance).

    Raises:
        ValueError: `per_task` is empty.
        UnknownTaskError: a task is not registered.
    """
    if not per_task:
        raise ValueError("summarise needs the metrics of at least one task.")
    rows = {
        task: {
            **{k: float(m[k]) for k in _MEANS},
            "normalised_score": normalised_score(task, m["episode_reward"], m["episode_success"]),
        }
        for task, m in per_task.items()
    }
    out = {k: float(np.mean([r[k] for r in rows.values()])) for k in (*_MEANS, "normalised_score")}
    suites: dict[str, list[str]] = {}
    for task in rows:
        suites.setdefault(task_registry.get(task).suite, []).append(task)
    if len(suites) > 1:
        for suite, names in suites.items():
            for k in _SUITE_MEANS:
                out[f"{suite}/{k}"] = float(np.mean([rows[t][k] for t in names]))
    return out
