"""apps/plot: learning curves of hand-made run directories (known numbers, real matplotlib),
the seed statistics, the shipped published curves, sweeps, and what it refuses."""

import csv
import importlib.util
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from app_runs import ROOT, run_app
from matplotlib.image import imread
from mbdpo_core import tasks as task_registry
from mbdpo_core.sweep import TABLE_COLUMNS

PUBLISHED = ROOT / "apps" / "plot" / "published"
OUTPUTS = ("curves.png", "curves.svg", "suites.png", "suites.svg")
EVAL_COLUMNS = ["step", "episode_reward", "episode_success", "episode_length"]


def load_curves():
    spec = importlib.util.spec_from_file_location("plot_curves", ROOT / "apps/plot/curves.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


curves = load_curves()


def make_run(run_dir: Path, task: str, backend: str, seed: int, rows, obs: str = "state"):
    """A run directory as apps/train leaves it, as far as plotting reads: config.json and
    eval.csv with rows of (step, episode_reward, episode_success)."""
    run_dir.mkdir(parents=True)
    config = {"task": task, "tasks": [task], "backend": backend, "seed": seed, "obs": obs}
    (run_dir / "config.json").write_text(json.dumps(config))
    with open(run_dir / "eval.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EVAL_COLUMNS)
        writer.writerows([step, reward, success, 1000] for step, reward, success in rows)
    return run_dir


def svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(t for t in root.itertext())


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, channels = imread(path).shape
    assert height > 100 and width > 100 and channels in (3, 4)


def test_three_seeds_per_curve_with_the_published_curves(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        rows = [(0, 10.0 * seed, 0.0), (5000, 100.0 * seed, 0.0), (10000, 200.0 * seed, 0.0)]
        make_run(runs / f"walker-walk-{seed}", "walker-walk", "torch", seed, rows)
        rows = [(0, 1.0, 0.0), (5000, 2.0, 0.5 * (seed > 1)), (10000, 3.0, 1.0)]
        make_run(runs / f"mw-reach-{seed}", "mw-reach", "jax", seed, rows)
    make_run(runs / "cheetah-rgb", "cheetah-run", "torch", 1, [(0, 5.0, 0.0)], obs="rgb")
    out = tmp_path / "plots"
    done = run_app("plot", str(runs), "--published", "--xmax", "200000", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert_png(out / "curves.png")
    assert_png(out / "suites.png")
    text = svg_text(out / "curves.svg")
    for label in (
        "walker-walk",
        "mw-reach",
        "cheetah-run",
        "success (%)",
        "episode return",
        "environment steps",
        "mbdpo torch (3 seeds)",
        "mbdpo jax (3 seeds)",
        "mbdpo torch rgb (1 seed)",
        "published MBDPO (3 seeds)",
        "published TD-MPC2 (3 seeds)",
        "published MBDPO (pixels) (3 seeds)",
    ):
        assert label in text, label
    suites = svg_text(out / "suites.svg")
    for label in ("dmcontrol (2 tasks)", "metaworld (1 task)", "normalised score"):
        assert label in suites, label


def test_mean_and_bootstrap_interval_on_known_seeds():
    values = np.array([[1.0, 2.0, 6.0], [4.0, 4.0, 4.0], [0.0, 10.0, 10.0]])
    mean, low, high = curves.mean_interval(values)
    np.testing.assert_allclose(mean, [3.0, 4.0, 20.0 / 3.0])
    assert np.all(low <= mean) and np.all(mean <= high)
    assert np.all(low >= values.min(axis=1)) and np.all(high <= values.max(axis=1))
    assert low[1] == high[1] == 4.0  # identical seeds: no width
    assert high[0] - low[0] > 0.0

    # two seeds 0 and 10: a resampled mean is 0, 5 or 10 with chance 1/4, 1/2, 1/4, so over
    # 1000 draws the 2.5th and 97.5th percentiles are 0 and 10
    mean, low, high = curves.mean_interval(np.array([[0.0, 10.0]]))
    assert (mean[0], low[0], high[0]) == (5.0, 0.0, 10.0)

    mean, low, high = curves.mean_interval(np.array([[7.0], [8.0]]))
    assert mean.tolist() == low.tolist() == high.tolist() == [7.0, 8.0]


def test_seeds_merge_at_the_steps_all_of_them_have():
    steps = [np.array([0, 5, 10]), np.array([0, 5, 10, 15]), np.array([0, 10])]
    values = [np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0, 7.0]), np.array([7.0, 9.0])]
    curve = curves.merge_seeds("mbdpo torch", steps, values)
    assert curve.steps.tolist() == [0, 10]
    np.testing.assert_allclose(curve.mean, [(1 + 4 + 7) / 3, (3 + 6 + 9) / 3])
    assert curve.seeds == 3


def published_mean(path: Path, step: int, scale: float) -> float:
    """The mean over seeds of a published file's value at `step`, straight from the CSV."""
    with open(path, newline="") as f:
        values = [float(r[1]) for r in list(csv.reader(f))[1:] if int(r[0]) == step]
    assert len(values) == 3
    return sum(values) / len(values) * scale


@pytest.mark.parametrize(
    ("source", "task", "file", "scale"),
    [
        ("mbdpo", "walker-walk", "mbdpo/walker-walk.csv", 1.0),
        ("tdmpc2", "mw-reach", "tdmpc2/mw-reach.csv", 100.0),  # success fraction -> percent
        ("tdmpc2", "myo-reach", "tdmpc2/myo-reach.csv", 100.0),
        ("tdmpc2-pixels", "cheetah-run", "tdmpc2-pixels/cheetah-run.csv", 1.0),
    ],
)
def test_the_published_mean_at_100k_is_the_files(source, task, file, scale):
    series = curves.read_published(source, task)
    curve = curves.merge_seeds("x", [s.steps for s in series], [s.score for s in series])
    at = curve.steps.tolist().index(100_000)
    assert curve.mean[at] == pytest.approx(published_mean(PUBLISHED / file, 100_000, scale))
    assert curve.seeds == 3


def test_every_shipped_published_file_is_a_registered_task():
    sources = sorted(p.name for p in PUBLISHED.iterdir())
    assert sources == ["mbdpo", "mbdpo-pixels", "tdmpc2", "tdmpc2-pixels"]
    for source in sources:
        for path in (PUBLISHED / source).glob("*.csv"):
            assert path.stem in task_registry.TASKS, path


def test_a_sweep_table_is_followed(tmp_path):
    sweep = tmp_path / "sweep"
    listed = []
    for seed in (1, 2):
        rows = [(0, 1.0, 0.0), (1000, 2.0 * seed, 0.0)]
        make_run(
            sweep / "cartpole-swingup" / f"torch-seed{seed}",
            "cartpole-swingup",
            "torch",
            seed,
            rows,
        )
        listed.append(f"cartpole-swingup/torch-seed{seed}")
    failed = sweep / "cartpole-swingup" / "torch-seed3"  # failed before its first evaluation
    failed.mkdir()
    (failed / "config.json").write_text("{}")
    listed.append("cartpole-swingup/torch-seed3")
    with open(sweep / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows({"task": "cartpole-swingup", "run_dir": r} for r in listed)
    out = tmp_path / "plots"
    done = run_app("plot", str(sweep), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"skipped {failed}: no eval.csv" in done.stdout
    assert "mbdpo torch (2 seeds)" in svg_text(out / "curves.svg")


def test_bad_paths_are_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "plots"
    missing = tmp_path / "no-such-run"
    done = run_app("plot", str(missing), "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {missing} is not a run directory")
    assert len(done.stderr.strip().splitlines()) == 1

    good = make_run(tmp_path / "good", "walker-walk", "torch", 1, [(0, 1.0, 0.0)])
    unevaluated = tmp_path / "unevaluated"
    unevaluated.mkdir()
    (unevaluated / "config.json").write_text(json.dumps({"task": "walker-walk"}))
    done = run_app("plot", str(good), str(unevaluated), "--out", str(out))
    assert done.returncode == 2
    expected = f"error: {unevaluated} is a run directory without eval.csv (not evaluated yet).\n"
    assert done.stderr == expected
    assert not out.exists()


def test_existing_outputs_are_kept_without_overwrite(tmp_path):
    run = make_run(tmp_path / "run", "walker-walk", "torch", 1, [(0, 1.0, 0.0), (10, 2.0, 0.0)])
    out = tmp_path / "plots"
    assert run_app("plot", str(run), "--out", str(out)).returncode == 0
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    (out / "curves.png").write_bytes(b"mine")

    again = run_app("plot", str(run), "--out", str(out))
    assert again.returncode == 2
    assert again.stderr == (
        f"error: {out / 'curves.png'} exists; give another --out or --overwrite to replace it.\n"
    )
    assert (out / "curves.png").read_bytes() == b"mine"
    assert all((out / n).read_bytes() == before[n] for n in OUTPUTS[1:])

    replaced = run_app("plot", str(run), "--out", str(out), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert_png(out / "curves.png")
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)  # no temporary file left
