"""apps/sweep end to end: 2 tasks x 2 seeds of real trainings through joblib and through
submitit's local executor, a failing job reported while the others finish, a rerun that skips
the finished runs and resumes an interrupted one, and the table rebuilt from the run
directories."""

import importlib.util
import json
from pathlib import Path

import pytest
from app_runs import TINY_MODEL, rows, run_app

TASKS = ["mw-reach", "mw-push"]  # 100-step episodes: the shortest seeding phase that trains
RUN = [
    *TINY_MODEL,
    "planner=policy",
    "seed_steps=100",
    "eval_freq=0",  # one evaluation, at the end
    "eval_episodes=1",
    "save_every=100",  # checkpoints at steps 100 and 110
]
STEPS = 110


def sweep(sweep_dir: Path, launcher: str, *extra: str):
    return run_app(
        "sweep",
        f"tasks=[{','.join(TASKS)}]",
        "seeds=[1,2]",
        f"steps={STEPS}",
        f"launcher={launcher}",
        "parallel=2",
        f"sweep_dir={sweep_dir}",
        *RUN,
        *extra,
    )


def events(run_dir: Path) -> list[tuple[str, int]]:
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    return [(e["event"], e["step"]) for e in map(json.loads, lines)]


def expected_row(sweep_dir: Path, task: str, seed: int) -> dict[str, str]:
    """What the table must say of a finished run, from its own eval.csv (Meta-World: the
    normalised score is the success rate x 100)."""
    last = rows(sweep_dir / task / f"torch-seed{seed}" / "eval.csv")[-1]
    return {
        "task": task,
        "seed": str(seed),
        "backend": "torch",
        "status": "finished",
        "step": str(STEPS),
        "steps": str(STEPS),
        "eval_step": str(STEPS),
        "episode_reward": last["episode_reward"],
        "episode_success": last["episode_success"],
        "normalised_score": str(float(last["episode_success"]) * 100.0),
        "run_dir": f"{task}/torch-seed{seed}",
        "log": f"{task}/torch-seed{seed}.log",
    }


@pytest.mark.slow
def test_joblib_sweep_reports_a_failed_job_and_a_rerun_skips_and_resumes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    root = tmp_path / "sweep"
    blocker = root / "mw-push" / "torch-seed2"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")  # apps/train refuses this run_dir

    first = sweep(root, "joblib")
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"failed: mw-push seed 2 at step 0, log {root}/mw-push/torch-seed2.log" in first.stderr
    assert "is a file, not a directory" in (root / "mw-push" / "torch-seed2.log").read_text()
    table = rows(root / "sweep.csv")
    finished = [("mw-push", 1), ("mw-reach", 1), ("mw-reach", 2)]
    assert [r for r in table if r["status"] == "finished"] == [
        expected_row(root, t, s) for t, s in finished
    ]
    assert [(r["task"], r["seed"], r["status"]) for r in table if r["status"] != "finished"] == [
        ("mw-push", "2", "failed")
    ]
    for task, seed in finished:
        assert events(root / task / f"torch-seed{seed}") == [("start", 0), ("finished", STEPS)]

    # mw-reach seed 2 "killed while writing its final checkpoint": only step 100 is complete
    cut = root / "mw-reach" / "torch-seed2"
    (cut / "checkpoints" / f"step_{STEPS}.json").unlink()
    skipped = {t: root / t / f"torch-seed{s}" for t, s in finished[:2]}
    before = {t: sorted(p.stat().st_mtime_ns for p in d.rglob("*")) for t, d in skipped.items()}

    second = sweep(root, "joblib")
    assert second.returncode == 1, second.stderr[-3000:]
    assert "4 trainings" in second.stdout and "2 finished (skipped), 1 to resume" in second.stdout
    for task, run_dir in skipped.items():  # untouched: no new session, no file rewritten
        assert events(run_dir) == [("start", 0), ("finished", STEPS)]
        assert sorted(p.stat().st_mtime_ns for p in run_dir.rglob("*")) == before[task]
    assert events(cut) == [("start", 0), ("finished", STEPS), ("resume", 100), ("finished", STEPS)]
    table = rows(root / "sweep.csv")
    assert [r["status"] for r in table] == ["finished", "failed", "finished", "finished"]
    assert table[3] == expected_row(root, "mw-reach", 2)


@pytest.mark.slow
def test_submitit_local_sweep_completes_and_the_table_rebuilds_from_the_runs(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    root = tmp_path / "sweep"
    out = sweep(root, "submitit_local")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = rows(root / "sweep.csv")
    assert table == [expected_row(root, t, s) for t in sorted(TASKS) for s in (1, 2)]
    assert list((root / ".sweep").glob("*/.submitit"))  # submitit ran the jobs

    (root / "sweep.csv").unlink()
    rebuilt = run_app("sweep", "table", str(root))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rows(root / "sweep.csv") == table


def test_a_bad_key_fails_before_any_job_starts(tmp_path):
    root = tmp_path / "sweep"
    out = run_app("sweep", "tasks=[mw-reach,mw-push]", f"sweep_dir={root}", "stpes=3")
    assert out.returncode == 2
    assert out.stderr.startswith(
        "error: mw-reach seed 1: Unknown config key 'stpes'. Did you mean: steps?"
    )
    assert len(out.stderr.strip().splitlines()) == 1
    assert not root.exists()


def test_a_missing_launcher_plugin_names_what_to_install(tmp_path):
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None:
        pytest.skip("hydra-ray-launcher is installed here")
    out = run_app("sweep", "tasks=[mw-reach]", f"sweep_dir={tmp_path}", "launcher=ray")
    assert out.returncode == 2
    assert out.stderr.startswith("error: launcher=ray needs the Hydra plugin hydra_ray_launcher")
    assert "uv pip install hydra-ray-launcher" in out.stderr
    assert list(tmp_path.iterdir()) == []
