"""apps/train and apps/sweep with wandb=true: tiny real trainings tracked by real offline W&B runs,
read back from their files and compared with the run directory's own CSV and config files; a
resumed run continues the same W&B run without logging a step twice; a sweep's trainings form one
W&B group. The errors (no package, no login): packages/mbdpo-core/tests/test_tracking.py."""

import importlib.util
import json
import math

import pytest
from app_runs import TINY_MODEL, run_app
from mbdpo_core.logger import TIMING_COLUMNS
from wandb_records import csv_history, offline_runs

pytest.importorskip("wandb")

RUN = [
    "task=mw-reach",  # 100-step episodes: the shortest run that seeds, trains and evaluates
    *TINY_MODEL,
    "planner=policy",
    "seed_steps=100",
    "eval_freq=100",
    "eval_episodes=1",
    "save_every=100",
    "wandb=true",
    "wandb_mode=offline",
]


@pytest.fixture(autouse=True)
def wandb_env(tmp_path, monkeypatch):
    """The apps' W&B staging, cache and settings in tmp_path; none of the caller's W&B
    variables (W&B's own files go to each run directory)."""
    for name in ("DATA", "CACHE", "CONFIG", "ARTIFACT"):
        monkeypatch.setenv(f"WANDB_{name}_DIR", str(tmp_path / f"wandb-{name.lower()}"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_history(history: dict[int, dict], expected: dict[int, dict]) -> None:
    """W&B's rows hold exactly the expected numbers at exactly the expected steps."""
    assert sorted(history) == sorted(expected)
    for step, values in expected.items():
        logged = {k: v for k, v in history[step].items() if not k.startswith("_")}
        assert logged.keys() >= values.keys(), step
        assert all(same(logged[k], values[k]) for k in values), (step, logged, values)


def test_a_tracked_run_sends_its_rows_config_and_artefacts(tmp_path):
    pytest.importorskip("mbdpo_torch.agent")
    run_dir = tmp_path / "runs" / "reach"
    out = run_app("train", "--backend", "torch", *RUN, "steps=200", f"run_dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr

    (run,) = offline_runs(run_dir)  # W&B's files in the run directory
    assert run.id == json.loads((run_dir / "wandb.json").read_text())["id"]
    assert (run.name, run.project, run.group, run.exit_code) == ("runs/reach", "mbdpo", "", 0)
    assert run.config == json.loads((run_dir / "config.json").read_text())
    expected = csv_history(run_dir)
    assert sorted(expected) == [0, 100, 200]
    assert_history(run.history, expected)
    assert all(same(run.summary[k], v) for k, v in expected[200].items())

    (files, _, _, staged), (model, _, aliases, weights) = run.artifacts
    assert files == f"{run.id}-files" and model == f"{run.id}-model" and "step_200" in aliases
    assert {"config.json", "eval.csv", "train.csv", "history.jsonl"} <= staged.keys()
    assert any(name.startswith("events.out.tfevents.") for name in staged)
    assert not any(name.startswith(("checkpoints/", "wandb/", ".")) for name in staged)
    assert sorted(weights) == ["step_200.json", "step_200.safetensors"]
    for name, copy in weights.items():
        assert copy.read_bytes() == (run_dir / "checkpoints" / name).read_bytes(), name


@pytest.mark.slow
def test_a_resumed_run_continues_its_wandb_run_without_logging_a_step_twice(tmp_path):
    pytest.importorskip("mbdpo_torch.agent")
    run_dir = tmp_path / "run"
    first = run_app("train", "--backend", "torch", *RUN, "steps=200", f"run_dir={run_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_app(
        "train",
        "--backend",
        "torch",
        f"run_dir={run_dir}",
        "resume=true",
        "resume_from=step_100",  # the rows of step 200 are written again
        "steps=300",
    )
    assert second.returncode == 0, second.stderr[-3000:]

    runs = offline_runs(run_dir)
    assert len(runs) == 2 and runs[0].id == runs[1].id
    assert [sorted(r.history) for r in runs] == [[0, 100, 200], [300]]
    # step 200 as the first session sent it equals the CSV rewritten by the second (an exact
    # resume), the wall-clock columns aside
    assert_history({**runs[0].history, **runs[1].history}, csv_history(run_dir, TIMING_COLUMNS))
    assert runs[1].config["steps"] == 300 and runs[1].config["resume"] is True


@pytest.mark.slow
def test_a_sweep_groups_its_trainings_in_one_wandb_group(tmp_path):
    pytest.importorskip("mbdpo_torch.agent")
    if importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None:
        pytest.skip("the joblib launcher is not installed (uv sync --extra sweep)")
    sweep_dir = tmp_path / "my-sweep"
    sweep = ["tasks=[mw-reach]", "seeds=[1,2]", "steps=100", f"sweep_dir={sweep_dir}"]
    out = run_app("sweep", *sweep, *RUN[1:])  # the sweep sets task=
    assert out.returncode == 0, out.stderr[-3000:]
    runs = [offline_runs(sweep_dir / "mw-reach" / f"torch-seed{s}")[0] for s in (1, 2)]
    assert [r.group for r in runs] == ["my-sweep", "my-sweep"]
    assert [r.name for r in runs] == ["mw-reach/torch-seed1", "mw-reach/torch-seed2"]
    assert runs[0].id != runs[1].id
