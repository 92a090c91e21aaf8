"""Learning curves as numbers: a run's scores per step, seeds merged into a mean with a 95%
bootstrap interval, per-suite means of the normalised score, and the published curves shipped
in `published/` (docs/design.md#plots).

Nothing here draws; `figures.py` does. Steps are environment steps (eval.csv's `step`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mbdpo_core import tasks as task_registry
from mbdpo_core.scores import normalised_score

SUCCESS_PLOT_SUITES = ("metaworld", "myosuite", "maniskill")
"""Suites whose per-task panel shows the success rate x 100 (the others: the episode return)."""
PUBLISHED_DIR = Path(__file__).resolve().parent / "published"
PUBLISHED = {"mbdpo": "published MBDPO", "tdmpc2": "published TD-MPC2"}
"""Published source folder (state observations; `<source>-pixels` for obs=rgb) -> legend label."""
RESAMPLES = 1000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Series:
    """One seed's evaluations of one task.

    Attributes:
        task, seed: as named; label: the curve it belongs to (e.g. "mbdpo torch").
        steps: [S] environment steps, increasing; score: [S] the panel's unit (`plot_score`);
        normalised: [S] `mbdpo_core.scores.normalised_score`, or None where the source lacks
        the metric it needs (a published success curve of a suite scored by return).
    """

    task: str
    seed: int
    label: str
    steps: np.ndarray
    score: np.ndarray
    normalised: np.ndarray | None


@dataclass(frozen=True)
class Curve:
    """The mean over seeds at the steps every seed has, with a 95% bootstrap interval.

    Attributes:
        label: legend text without the seed count; seeds: how many were merged.
        steps, mean, low, high: [S] each (low == high == mean for one seed).
    """

    label: str
    seeds: int
    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def success_task(task: str) -> bool:
    """Whether the panel of `task` shows success x 100 (Meta-World, MyoSuite, ManiSkill)."""
    return task_registry.get(task).suite in SUCCESS_PLOT_SUITES


def plot_score(task: str, reward: float, success: float) -> float:
    """The panel's score of one evaluation: success x 100 or the return (`success_task`)."""
    return float(success) * 100.0 if success_task(task) else float(reward)


def mean_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and its 95% percentile bootstrap interval.

    The seeds are resampled with replacement RESAMPLES times by a generator seeded with
    BOOTSTRAP_SEED (the same draws for every curve); the interval is the 2.5th and 97.5th
    percentiles of the resampled means.

    Shapes:
        values: [S, N] (N seeds) -> mean, low, high: [S] each.
    """
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean(axis=1)
    n = values.shape[1]
    if n == 1:
        return mean, mean.copy(), mean.copy()
    picks = np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(RESAMPLES, n))
    resampled = values[:, picks].mean(axis=2)  # [S, RESAMPLES]
    low, high = np.percentile(resampled, [2.5, 97.5], axis=1)
    return mean, low, high


def merge_seeds(label: str, steps: Sequence[np.ndarray], values: Sequence[np.ndarray]) -> Curve:
    """One curve from N seeds' (steps [S_i], values [S_i]) at the steps all of them have."""
    common = steps[0]
    for s in steps[1:]:
        common = np.intersect1d(common, s)
    table = np.stack(
        [v[np.searchsorted(s, common)] for s, v in zip(steps, values, strict=True)], axis=1
    )
    mean, low, high = mean_interval(table)
    return Curve(label, len(steps), common, mean, low, high)


def task_curves(series: Sequence[Series], task: str) -> list[Curve]:
    """The curves of one task: one per label, seeds merged, in order of first appearance."""
    labels = dict.fromkeys(s.label for s in series if s.task == task)
    curves = []
    for label in labels:
        mine = [s for s in series if s.task == task and s.label == label]
        curves.append(merge_seeds(label, [s.steps for s in mine], [s.score for s in mine]))
    return curves


def suite_curve(series: Sequence[Series], label: str, tasks: Sequence[str]) -> Curve | None:
    """Mean normalised score over `tasks` for one label, per seed present in every task, then
    merged over those seeds; steps every task and seed has. None without such a seed or when a
    task's normalised score is unknown."""
    by_task = {t: {s.seed: s for s in series if s.task == t and s.label == label} for t in tasks}
    seeds = sorted(set.intersection(*(set(d) for d in by_task.values())))
    if not seeds or any(s.normalised is None for d in by_task.values() for s in d.values()):
        return None
    steps, values = [], []
    for seed in seeds:
        runs = [by_task[t][seed] for t in tasks]
        common = runs[0].steps
        for r in runs[1:]:
            common = np.intersect1d(common, r.steps)
        at = [r.normalised[np.searchsorted(r.steps, common)] for r in runs]
        steps.append(common)
        values.append(np.mean(at, axis=0))
    return merge_seeds(label, steps, values)


def clip_steps(curve: Curve, xmax: float | None) -> Curve:
    """The curve's points at steps <= xmax (all of them for None)."""
    if xmax is None:
        return curve
    keep = curve.steps <= xmax
    return Curve(
        curve.label,
        curve.seeds,
        *(a[keep] for a in (curve.steps, curve.mean, curve.low, curve.high)),
    )


def read_published(source: str, task: str, folder: Path = PUBLISHED_DIR) -> list[Series]:
    """The published seeds of `task` from `<folder>/<source>/<task>.csv` ([] without that file).

    The files hold `step,reward,seed` or `step,success,seed` (a fraction, scaled x 100 here);
    the MBDPO files give success tasks' success x 100 in their `reward` column. The score is
    in the panel's unit; the normalised score is known where it uses the published metric.
    The MBDPO files' step-0 rows are placeholders (0.0 in every file, no evaluation) and are
    left out.
    """
    path = folder / source / f"{task}.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [(int(float(r[0])), float(r[1]), int(r[2])) for r in reader]
    scale = 100.0 if header[1] == "success" else 1.0
    base = source.removesuffix("-pixels")
    if base == "mbdpo":
        rows = [r for r in rows if r[0] != 0]
    label = PUBLISHED[base] + (" (pixels)" if source.endswith("-pixels") else "")
    normalised_ok = (task_registry.get(task).suite == "metaworld") == success_task(task)
    out = []
    for seed in dict.fromkeys(r[2] for r in rows):
        mine = sorted((step, value * scale) for step, value, s in rows if s == seed)
        steps = np.array([m[0] for m in mine])
        score = np.array([m[1] for m in mine])
        normalised = None
        if normalised_ok:
            normalised = np.array([normalised_score(task, v, v / 100.0) for v in score])
        out.append(Series(task, seed, label, steps, score, normalised))
    return out
