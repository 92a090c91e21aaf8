"""apps/train mode=offline end to end: TD-MPC2-format chunks converted with apps/convert, a short
multi-task pretraining run per backend, its files, an exact resume that extends it, and clear
errors before anything is written."""

from pathlib import Path

import pytest
from app_runs import TINY_MODEL, rows, run_app
from mbdpo_data.layouts import LAYOUTS
from published_chunks import episodes_arrays, write_chunk

TINY = [
    "task=mt30",
    "mode=offline",
    *TINY_MODEL,
    "eval_episodes=1",
    "eval_tasks='cartpole-balance pendulum-swingup'",
    "eval_workers=1",
    "planner=policy",  # evaluation acts 4 x 2 episodes: the cheapest planner
    "log_freq=5",
    "eval_freq=10",
    "save_every=10",
]


@pytest.fixture(scope="module")
def mt30_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mt30")
    for i in range(2):
        write_chunk(root / "pt" / f"chunk_{i}.pt", episodes_arrays(LAYOUTS["mt30"], 3, seed=i))
    done = run_app("convert", str(root / "pt"), str(root / "npz"), "--quiet")
    assert done.returncode == 0, done.stderr
    return root / "npz"


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_an_offline_run_trains_evaluates_checkpoints_and_extends(tmp_path, mt30_data, backend):
    run_dir = tmp_path / "run"
    args = ["--backend", backend, *TINY, f"data_dir={mt30_data}", f"run_dir={run_dir}"]
    done = run_app("train", *args, "steps=20")
    assert done.returncode == 0, done.stderr

    assert [r["step"] for r in rows(run_dir / "train.csv")] == ["5", "10", "15", "20"]
    evaluated = [(r["step"], r["task"]) for r in rows(run_dir / "eval.csv")]
    tasks = ("cartpole-balance", "pendulum-swingup")
    assert evaluated == [(s, t) for s in ("0", "10", "20") for t in tasks]
    summary = rows(run_dir / "eval_summary.csv")
    assert [r["step"] for r in summary] == ["0", "10", "20"]
    assert "normalised_score" in summary[0]
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.json")) == [
        "step_10.json",
        "step_20.json",
    ]

    extended = run_app(
        "train", "--backend", backend, f"run_dir={run_dir}", "resume=true", "steps=30"
    )
    assert extended.returncode == 0, extended.stderr
    assert "resumed from update 20" in extended.stdout
    assert [r["step"] for r in rows(run_dir / "train.csv")][-2:] == ["25", "30"]
    assert [r["step"] for r in rows(run_dir / "eval_summary.csv")] == ["0", "10", "20", "30"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=mt80"], "holds mt30"),
        (["data_dir=/nonexistent"], "is not a converted dataset"),
        (["task=cartpole-balance"], "mode=offline pretrains one agent on a task set"),
        (["eval_tasks=walker-wlk"], "Did you mean: walker-walk"),
    ],
)
def test_a_bad_offline_run_is_refused_before_anything_is_written(
    tmp_path, mt30_data, overrides, message
):
    run_dir = tmp_path / "run"
    keys = {o.split("=")[0] for o in overrides}
    given = [o for o in [*TINY, f"data_dir={mt30_data}"] if o.split("=")[0] not in keys]
    done = run_app("train", "--backend", "torch", *given, *overrides, f"run_dir={run_dir}")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not run_dir.exists()
