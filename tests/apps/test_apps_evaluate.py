"""apps/evaluate end to end: a checkpoint of a short torch run scored by both backends (the
run's own final evaluation reproduced), a video, and clear errors before anything is written."""

import json
from pathlib import Path

import pytest
from app_runs import TINY_MODEL, rows, run_app
from mbdpo_core.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from mbdpo_core.config import load_config

TINY = [
    "task=cartpole-balance",
    *TINY_MODEL,
    "planner=policy",  # cheap episodes; evaluate can change it
    "seed_steps=500",  # the least cartpole allows (one episode)
    "steps=510",
    "eval_freq=0",  # one evaluation, at the end
    "eval_episodes=1",
    "save_every=0",
]
COLUMNS = [
    "task",
    "suite",
    "episode_reward",
    "episode_success",
    "episode_length",
    "normalised_score",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A torch run of 510 steps: its final checkpoint and eval.csv row."""
    pytest.importorskip("mbdpo_torch.agent")
    run = tmp_path_factory.mktemp("evaluate") / "run"
    out = run_app("train", "--backend", "torch", *TINY, f"run_dir={run}")
    assert out.returncode == 0, out.stderr[-3000:]
    return run


def listing(*folders: Path) -> list[str]:
    return sorted(str(p) for folder in folders for p in folder.rglob("*"))


def test_torch_scores_its_checkpoint_as_the_run_did(run, tmp_path):
    stem = latest_checkpoint(run)
    out = run_app("evaluate", f"checkpoint={stem}.json", f"out={tmp_path / 'torch'}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "normalised score" in out.stdout and "cartpole-balance" in out.stdout
    written = rows(tmp_path / "torch.csv")
    assert [list(r) for r in written] == [COLUMNS]
    (row,) = written
    final = rows(run / "eval.csv")[-1]  # the run's evaluation at the checkpoint's step
    assert row["task"] == "cartpole-balance" and row["suite"] == "dmcontrol"
    for key in ("episode_reward", "episode_success", "episode_length"):
        assert float(row[key]) == float(final[key]), key
    assert float(row["normalised_score"]) == pytest.approx(float(final["episode_reward"]) / 10)
    doc = json.loads((tmp_path / "torch.json").read_text())
    assert doc["checkpoint"] == str(stem) and doc["backend"] == "torch"
    assert (doc["planner"], doc["episodes"], doc["seed"], doc["step"]) == ("policy", 1, 1, 510)
    assert doc["per_task"]["cartpole-balance"]["episode_reward"] == float(final["episode_reward"])
    assert doc["summary"]["normalised_score"] == pytest.approx(float(row["normalised_score"]))
    assert doc["suites"]["dmcontrol"]["tasks"] == 1


@pytest.mark.slow
def test_jax_scores_the_torch_checkpoint_and_films_it(run, tmp_path):
    pytest.importorskip("mbdpo_jax.agent")
    out = run_app(
        "evaluate",
        "--backend",
        "jax",
        f"checkpoint={run}",
        f"out={tmp_path / 'jax'}",
        "save_video=true",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = rows(tmp_path / "jax.csv")
    final = rows(run / "eval.csv")[-1]
    assert row["task"] == "cartpole-balance"
    # same policy, other rounding: the episode follows the same path
    assert float(row["episode_reward"]) == pytest.approx(float(final["episode_reward"]), rel=1e-3)
    doc = json.loads((tmp_path / "jax.json").read_text())
    assert (doc["backend"], doc["checkpoint_backend"]) == ("jax", "torch")
    assert doc["checkpoint"] == str(latest_checkpoint(run))
    assert "os.fork" not in out.stderr  # ffmpeg's fork-exec does not alarm JAX's users

    import imageio.v2 as imageio

    video = tmp_path / "jax.videos" / "cartpole-balance.mp4"
    assert doc["videos"] == {"cartpole-balance": str(video)}
    reader = imageio.get_reader(video)
    try:
        assert reader.count_frames() == 501  # the reset and 500 steps
        assert reader.get_data(0).shape == (384, 384, 3)
    finally:
        reader.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["task=walker-walk"], "task=walker-walk is not a task of the checkpoint"),
        (["task=mt30"], "29 of its 30 tasks"),
        (["task=cartpole-balanc"], "Did you mean: cartpole-balance"),
        (["eval_episode=3"], "Did you mean: eval_episodes"),
        (["planner=cem"], "Valid choices: diffusion, mppi, policy"),
        (["eval_episodes=0"], "eval_episodes=0"),
        (["save_video=yes"], "save_video='yes'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run, tmp_path, args, message):
    before = listing(run, tmp_path)
    out = run_app("evaluate", f"checkpoint={run}", f"out={tmp_path / 'out' / 'x'}", *args)
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert listing(run, tmp_path) == before


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    out = run_app("evaluate", f"checkpoint={tmp_path / 'step_9'}")
    assert out.returncode == 2 and "checkpoint not found" in out.stderr
    out = run_app("evaluate", "task=walker-walk")
    assert out.returncode == 2 and "checkpoint=PATH is required" in out.stderr


def test_existing_outputs_are_kept_unless_overwrite(run, tmp_path):
    (tmp_path / "old.json").write_text("keep me")
    out = run_app("evaluate", f"checkpoint={run}", f"out={tmp_path / 'old'}")
    assert out.returncode == 2
    assert f"{tmp_path / 'old.json'} exists" in out.stderr and "overwrite=true" in out.stderr
    assert (tmp_path / "old.json").read_text() == "keep me"
    assert not (tmp_path / "old.csv").exists()


def test_a_checkpoint_of_other_shapes_than_its_config_is_one_line(run, tmp_path):
    pytest.importorskip("mbdpo_torch.agent")
    arrays, meta = load_checkpoint(latest_checkpoint(run))
    meta.pop("format_version")
    meta["config"]["mlp_dim"] = 64  # the arrays are of mlp_dim 32
    save_checkpoint(tmp_path / "step_510", arrays, meta)
    before = listing(tmp_path)
    out = run_app("evaluate", f"checkpoint={tmp_path / 'step_510'}")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "do not match the agent" in out.stderr and "mlp_dim" not in out.stdout
    assert len(out.stderr.strip().splitlines()) == 1
    assert listing(tmp_path) == before


@pytest.mark.slow
def test_tasks_of_a_multitask_checkpoint_in_two_workers(tmp_path, tiny):
    """Two tasks of an mt30 agent, each in its own worker process, in the order named."""
    torch_backend = pytest.importorskip("mbdpo_torch")
    cfg = load_config([*tiny, "task=mt30", "planner=policy", "eval_episodes=1"], backend="torch")
    torch_backend.Agent(cfg).save(tmp_path / "step_0")
    tasks = "pendulum-swingup cartpole-balance"
    out = run_app(
        "evaluate", f"checkpoint={tmp_path / 'step_0'}", f"task={tasks}", "eval_workers=2"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    written = rows(tmp_path / "step_0.eval.csv")
    assert [r["task"] for r in written] == tasks.split()
    doc = json.loads((tmp_path / "step_0.eval.json").read_text())
    assert (doc["workers"], doc["step"], doc["task"]) == (2, 0, "mt30")
    assert set(doc["summary"]) >= {"episode_reward", "normalised_score"}
