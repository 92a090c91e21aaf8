"""Plot learning curves: `uv run apps/plot PATH... [--published] [--xmax N] [--out DIR]`.

PATH: a run directory (config.json + eval.csv), a sweep directory (its sweep.csv lists the
runs) or a folder whose subfolders are run directories. Runs of one task, backend and obs with
different seeds make one curve: the mean over seeds at the steps all of them have, shaded by a
95% bootstrap interval. Writes to --out (default plots/):
    curves.png, curves.svg   one panel per task: success x 100 (Meta-World, MyoSuite,
                             ManiSkill) or the episode return, against environment steps
    suites.png, suites.svg   one panel per suite: the mean normalised score over its tasks
--published draws the published MBDPO and TD-MPC2 curves of the same tasks beside ours (pixel
runs: the pixel curves), from the CSVs in apps/plot/published/. --xmax N cuts the x axis at N
steps. Existing outputs are kept unless --overwrite. Exit status 2 for a bad path or argument
(nothing written), 1 when writing fails. Details: docs/design.md#plots.
Examples:
    uv run apps/plot runs/walker-walk/torch-seed1 runs/walker-walk/torch-seed2 --published
    uv run apps/plot runs/sweep-mt30 --out plots/mt30
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
from pathlib import Path

import matplotlib
from curves import (
    PUBLISHED,
    Curve,
    Series,
    clip_steps,
    read_published,
    success_task,
    suite_curve,
    task_curves,
)
from figures import grid_figure
from inputs import find_runs, read_run
from matplotlib.figure import Figure
from mbdpo_core import tasks as task_registry
from mbdpo_core.errors import ConfigError, MbdpoError

OUTPUTS = ("curves.png", "curves.svg", "suites.png", "suites.svg")
DPI = 120


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="apps/plot", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run, sweep or folder of runs")
    parser.add_argument("--published", action="store_true", help="draw the published curves")
    parser.add_argument("--xmax", type=float, default=None, help="last environment step shown")
    parser.add_argument("--out", default="plots", help="output folder (default: plots)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return plot(args)
    except MbdpoError as err:  # bad input, found before anything is written
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except OSError as err:
        hint = " (the disk is full)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        print(
            f"error: cannot write {err.filename or args.out}: {err.strerror}{hint}.",
            file=sys.stderr,
        )
        return 1


def plot(args: argparse.Namespace) -> int:
    """Read and check every input, check the outputs, draw, write; the exit status."""
    if args.xmax is not None and args.xmax <= 0:
        raise ConfigError(f"Invalid --xmax {args.xmax:g}: must be a number of steps > 0.")
    runs, skipped = find_runs([Path(p) for p in args.paths])
    series, obs_of = read_series(runs)
    out = Path(args.out)
    check_outputs(out, args.overwrite)
    for path in skipped:
        print(f"[mbdpo] skipped {path}: no eval.csv (the job failed or has not evaluated yet)")
    tasks = list(dict.fromkeys(s.task for s in series))
    if args.published:
        series += published_series(tasks, obs_of)
    curves = curves_figure(series, tasks, args.xmax)
    suites = suites_figure(series, tasks, args.xmax)
    for name in OUTPUTS:
        figure = curves if name.startswith("curves") else suites
        save(figure, out / name)
        print(f"[mbdpo] wrote {out / name}")
    return 0


def read_series(runs: list[Path]) -> tuple[list[Series], dict[str, set[str]]]:
    """Every run's series, and task -> the observation kinds its runs used.

    Raises:
        ConfigError: a run unreadable, or two runs of the same task, backend, obs and seed.
    """
    series: list[Series] = []
    obs_of: dict[str, set[str]] = {}
    owner: dict[tuple[str, str, int], Path] = {}
    for run in runs:
        found, obs = read_run(run)
        for s in found:
            key = (s.task, s.label, s.seed)
            if key in owner:
                raise ConfigError(
                    f"{owner[key]} and {run} are both {s.label} seed {s.seed} on {s.task}: "
                    "give one run per seed."
                )
            owner[key] = run
            obs_of.setdefault(s.task, set()).add(obs)
        series += found
    return series, obs_of


def published_series(tasks: list[str], obs_of: dict[str, set[str]]) -> list[Series]:
    """The published seeds of each task: state curves for state runs, pixel curves for rgb runs."""
    out: list[Series] = []
    for task in tasks:
        suffixes = [""] * ("state" in obs_of[task]) + ["-pixels"] * ("rgb" in obs_of[task])
        for source in PUBLISHED:
            for suffix in suffixes:
                found = read_published(source + suffix, task)
                if not found:
                    print(f"[mbdpo] no {source + suffix} curve is published for {task}")
                out += found
    return out


def check_outputs(out: Path, overwrite: bool) -> None:
    """The output folder can be made and no output exists (unless overwrite)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder.")
    if not overwrite:
        for name in OUTPUTS:
            if (out / name).exists():
                raise ConfigError(
                    f"{out / name} exists; give another --out or --overwrite to replace it."
                )


def _shown(curves: list[Curve], xmax: float | None) -> list[Curve]:
    clipped = [clip_steps(c, xmax) for c in curves]
    return [c for c in clipped if len(c.steps)]


def curves_figure(series: list[Series], tasks: list[str], xmax: float | None) -> Figure:
    """One panel per task."""
    panels = [
        (
            task,
            "success (%)" if success_task(task) else "episode return",
            _shown(task_curves(series, task), xmax),
        )
        for task in tasks
    ]
    return grid_figure("Learning curves", panels, xmax)


def suites_figure(series: list[Series], tasks: list[str], xmax: float | None) -> Figure:
    """One panel per suite: each label's mean normalised score over the suite's tasks."""
    suites: dict[str, list[str]] = {}
    for task in tasks:
        suites.setdefault(task_registry.get(task).suite, []).append(task)
    panels = []
    for suite, names in suites.items():
        labels = dict.fromkeys(s.label for s in series if s.task in names)
        found = [suite_curve(series, label, names) for label in labels]
        curves = _shown([c for c in found if c is not None], xmax)
        count = f"{len(names)} task{'s' if len(names) != 1 else ''}"
        panels.append((f"{suite} ({count})", "normalised score", curves))
    return grid_figure("Mean normalised score per suite", panels, xmax)


def save(figure: Figure, target: Path) -> None:
    """Write the figure atomically: a temporary file beside target, fsync, rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f, matplotlib.rc_context({"svg.fonttype": "none"}):
            figure.savefig(f, format=target.suffix[1:], dpi=DPI, metadata=_metadata(target))
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _metadata(target: Path) -> dict[str, str | None]:
    """No creation date, so the same inputs give the same file."""
    return {"Date": None} if target.suffix == ".svg" else {}


if __name__ == "__main__":
    sys.exit(main())
