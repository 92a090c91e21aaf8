"""`apps/train` with num_envs=2 on Meta-World (docs/design.md#vectorised-acting): two environments
in worker processes, one batched planner call per vector step; every environment's episode enters
the replay (a train.csv row each), updates follow one per environment step after the burst, and
a run stopped mid-episode resumes to the uninterrupted run's outputs. The run uses torch: the
loop is core code, and both backends' batched planners are parity-tested against single calls
(tests/parity/test_parity_vector_planning.py)."""

import csv
from pathlib import Path

import numpy as np
import pytest
from app_runs import TINY_MODEL, run_app
from mbdpo_core.checkpoint import latest_checkpoint, load_checkpoint
from mbdpo_core.logger import TIMING_COLUMNS

EPISODE = 100  # mw-reach: fixed-length episodes, the shortest of the suites
SEED_STEPS = 200  # num_envs x episode: the first episodes are in the replay at the burst
TINY = [
    "task=mw-reach",
    *TINY_MODEL,
    f"seed_steps={SEED_STEPS}",
    "eval_freq=200",
    "eval_episodes=1",
    "save_every=200",
    "num_envs=2",
]


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV without its wall-clock columns."""
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


def expected_updates(steps: int, per_step: int = 1) -> int:
    """Published ratio: a burst of seed_steps at step seed_steps, then per_step per later step."""
    return SEED_STEPS + per_step * (steps - SEED_STEPS - 1)


@pytest.mark.slow
def test_two_envs_fill_the_replay_keep_the_ratio_and_resume(tmp_path):
    backend = "torch"
    pytest.importorskip("mbdpo_torch.agent")
    full, split = tmp_path / "full", tmp_path / "split"
    out = run_app("train", "--backend", backend, *TINY, "steps=400", f"run_dir={full}")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_csv(full / "train.csv")
    # 2 vector episodes of 2 environments: 4 episodes of 100 steps, 2 ending at each boundary
    assert [(int(r["step"]), int(r["episode"])) for r in rows] == [
        (200, 1),
        (200, 2),
        (400, 3),
        (400, 4),
    ]
    assert all(int(r["episode_length"]) == EPISODE for r in rows)
    arrays, meta = load_checkpoint(latest_checkpoint(full))
    assert meta["loop"]["step"] == 400
    assert meta["loop"]["updates"] == expected_updates(400)
    assert [int(r["step"]) for r in read_csv(full / "eval.csv")] == [0, 200, 400]

    # stopped mid-episode (step 240: 20 vector steps into the second vector episode)
    first = run_app("train", "--backend", backend, *TINY, "steps=240", f"run_dir={split}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert load_checkpoint(latest_checkpoint(split))[1]["episode"] is not None
    args = (*TINY, "steps=400", f"run_dir={split}", "resume=true")
    second = run_app("train", "--backend", backend, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert read_csv(split / "train.csv") == rows
    evals = [r for r in read_csv(split / "eval.csv") if r["step"] != "240"]
    assert evals == read_csv(full / "eval.csv")
    resumed, _ = load_checkpoint(latest_checkpoint(split))
    assert resumed.keys() == arrays.keys()
    for name in arrays:
        np.testing.assert_array_equal(resumed[name], arrays[name], err_msg=name)


def test_num_envs_must_divide_steps(tmp_path):
    out = run_app(
        "train",
        "--backend",
        "torch",
        "task=cartpole-balance",
        "num_envs=3",
        "steps=1000",
        f"run_dir={tmp_path / 'run'}",
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Invalid num_envs=3: must divide steps=1000" in out.stderr
    assert not (tmp_path / "run").exists()
