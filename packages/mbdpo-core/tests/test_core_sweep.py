"""mbdpo_core.sweep: the command line, the jobs and their budgets, what a rerun does with each
run directory, and the table, on run directories written with the project's own file writers."""

import csv
from pathlib import Path

import numpy as np
import pytest
from mbdpo_core.checkpoint import checkpoint_path, save_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.errors import ConfigError
from mbdpo_core.rundir import record, write_config
from mbdpo_core.sweep import (
    TABLE_COLUMNS,
    Job,
    check_jobs,
    last_exit,
    next_action,
    parse_sweep_args,
    plan_jobs,
    record_exit,
    step_budget,
    sweep_table,
    train_overrides,
    write_table,
)


def test_tasks_come_from_a_task_set_a_suite_or_a_list():
    mt30 = parse_sweep_args(["task_set=mt30"])
    assert len(mt30.tasks) == 30 and mt30.tasks[0] == "walker-stand"
    assert mt30.seeds == [1, 2, 3] and mt30.sweep_dir == Path("runs/sweep-mt30")
    assert len(parse_sweep_args(["suite=metaworld"]).tasks) == 50
    spec = parse_sweep_args(["tasks=[mw-reach,walker-walk]", "seeds=4,5", "backend=jax"])
    assert spec.tasks == ["mw-reach", "walker-walk"] and spec.seeds == [4, 5]
    assert parse_sweep_args(["tasks=walker-walk"]).tasks == ["walker-walk"]


def test_arguments_go_to_the_sweep_to_hydra_or_to_every_training():
    spec = parse_sweep_args(
        ["tasks=[walker-walk]", "lr=1e-3", "hydra.launcher.partition=gpu", "parallel=4"]
    )
    assert spec.overrides == ["lr=1e-3"]
    assert spec.hydra == ["hydra.launcher.partition=gpu"]
    assert spec.parallel == 4 and spec.launcher == "joblib"


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Give exactly one of task_set=NAME"),
        (["task_set=mt30", "suite=dmcontrol"], "got task_set, suite"),
        (["task_set=mt31"], "Did you mean: mt30"),
        (["suite=dmc"], "Valid: dmcontrol, metaworld"),
        (["tasks=[walker-wlak]"], "Did you mean: walker-walk"),
        (["tasks=[walker-walk,walker-walk]"], "distinct tasks"),
        (["tasks=walker-walk", "seeds=[1,1]"], "distinct seeds"),
        (["tasks=walker-walk", "seeds=[-1]"], "seeds=-1"),
        (["tasks=walker-walk", "seed=1"], "the sweep sets seed"),
        (["tasks=walker-walk", "run_dir=x"], "the sweep sets run_dir"),
        (["tasks=walker-walk", "launcher=slurm"], "Valid: joblib, submitit_local"),
        (["tasks=walker-walk", "backend=tf"], "Valid: torch, jax"),
        (["tasks=walker-walk", "steps=0"], "steps=0"),
        (["tasks=walker-walk", "lr"], "not of the form key=value"),
        (["tasks=walker-walk", "sweep_dir=a,b"], "give one folder; quote a path"),
    ],
)
def test_bad_arguments_are_one_clear_error(args, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweep_args(args)


def test_budgets_follow_the_published_launcher():
    assert step_budget("mw-reach") == 2_000_000
    assert step_budget("walker-walk") == 4_000_000  # mt30
    assert step_budget("pendulum-spin") == 4_000_000  # mt30, one of the 11 custom tasks
    assert step_budget("quadruped-walk") == 2_000_000  # DMControl outside mt30
    assert step_budget("myo-reach") == 2_000_000
    spec = parse_sweep_args(["tasks=[mw-reach,walker-walk,dog-run]", "mt30_steps=7"])
    assert [job.steps for job in plan_jobs(spec)[::3]] == [2_000_000, 7, 2_000_000]
    spec = parse_sweep_args(["tasks=[mw-reach,walker-walk]", "steps=9", "seeds=[1]"])
    assert [job.steps for job in plan_jobs(spec)] == [9, 9]


def test_jobs_are_task_major_with_a_run_directory_and_a_log_each():
    spec = parse_sweep_args(["tasks=[mw-reach,walker-walk]", "seeds=[1,2]", "sweep_dir=/s"])
    jobs = plan_jobs(spec)
    assert [(j.task, j.seed) for j in jobs] == [
        ("mw-reach", 1),
        ("mw-reach", 2),
        ("walker-walk", 1),
        ("walker-walk", 2),
    ]
    assert jobs[1].run_dir == Path("/s/mw-reach/torch-seed2")
    assert jobs[1].log == Path("/s/mw-reach/torch-seed2.log")
    assert train_overrides(jobs[1], ["lr=1e-3"], "resume") == [
        "lr=1e-3",
        "task=mw-reach",
        "seed=2",
        "steps=2000000",
        "run_dir='/s/mw-reach/torch-seed2'",
        "resume=true",
    ]


def test_every_job_is_validated_before_anything_is_written(tmp_path):
    spec = parse_sweep_args(["tasks=[mw-reach,walker-walk]", f"sweep_dir={tmp_path / 's'}"])
    jobs = plan_jobs(spec)
    starts = ["start"] * len(jobs)
    with pytest.raises(ConfigError, match="mw-reach seed 1: Unknown config key 'stpes'"):
        check_jobs(jobs, ["stpes=3"], starts, gpu_available=False)
    with pytest.raises(ConfigError, match="lr=-1"):
        check_jobs(jobs, ["lr=-1"], starts, gpu_available=False)
    with pytest.raises(ConfigError, match="mode=offline"):
        check_jobs(jobs, ["mode=offline"], starts, gpu_available=False)
    check_jobs(jobs, ["lr=1e-3"], starts, gpu_available=False)
    assert not (tmp_path / "s").exists()


def make_run(
    sweep_dir: Path,
    task: str,
    seed: int,
    steps: int,
    at: int | None,
    evaluated_at: int | None = None,
    reward: float = 0.0,
    success: float = 0.0,
) -> Job:
    """A run directory as apps/train leaves it: config.json, history.jsonl, eval.csv and, when
    `at` is given, a checkpoint at step `at` whose last evaluation was at `evaluated_at`."""
    run_dir = sweep_dir / task / f"torch-seed{seed}"
    cfg = load_config({"task": task, "seed": seed, "steps": steps, "preset": "cpu"})
    write_config(run_dir, cfg)
    record(run_dir, "start", step=0, backend="torch")
    evaluated_at = at if evaluated_at is None else evaluated_at
    with open(run_dir / "eval.csv", "w") as f:
        f.write("step,episode_reward,episode_success,episode_length\n")
        f.write(f"0,1.0,0.0,100\n{evaluated_at},{reward},{success},100\n")
    if at is not None:
        meta = {
            "loop": {"step": at, "updates_due": 0},
            "last_eval": {"step": evaluated_at, "episode_reward": reward},
        }
        save_checkpoint(checkpoint_path(run_dir, at), {"w": np.zeros(2, np.float32)}, meta)
    log = run_dir.with_name(run_dir.name + ".log")
    return Job(task, seed, "torch", steps, run_dir, log)


def test_a_rerun_skips_finished_runs_resumes_checkpointed_ones_and_starts_the_rest(tmp_path):
    done = make_run(tmp_path, "walker-walk", 1, steps=110, at=110)
    assert next_action(done) == "skip"
    longer = Job(done.task, done.seed, "torch", 200, done.run_dir, done.log)
    assert next_action(longer) == "resume"  # a finished run trained further
    cut = make_run(tmp_path, "walker-walk", 2, steps=110, at=110, evaluated_at=100)
    assert next_action(cut) == "resume"  # the final evaluation was not done
    half = make_run(tmp_path, "walker-walk", 3, steps=110, at=50)
    assert next_action(half) == "resume"
    early = make_run(tmp_path, "walker-walk", 4, steps=110, at=None)
    assert next_action(early) == "start"
    fresh = Job("mw-reach", 1, "torch", 110, tmp_path / "mw-reach" / "torch-seed1", tmp_path / "x")
    assert next_action(fresh) == "start"


def test_the_table_is_rebuilt_from_run_directories_and_logs_alone(tmp_path):
    make_run(tmp_path, "walker-walk", 1, steps=110, at=110, reward=812.0)
    make_run(tmp_path, "mw-reach", 2, steps=110, at=110, reward=40.0, success=0.7)
    failed = make_run(tmp_path, "mw-reach", 1, steps=110, at=50, reward=3.0)
    failed.log.write_text("[sweep] first try\n")
    record_exit(failed.log, 0)
    record_exit(failed.log, 137)  # the second attempt was killed
    stopped = make_run(tmp_path, "walker-walk", 2, steps=110, at=60, reward=5.0)
    record(stopped.run_dir, "stopped", step=60, signal="SIGTERM")
    blocked = tmp_path / "walker-walk" / "torch-seed3"
    blocked.write_text("not a run")
    record_exit(blocked.with_name("torch-seed3.log"), 2)
    (tmp_path / ".sweep").mkdir()  # the sweep's own state is not a task

    rows = sweep_table(tmp_path)
    got = {(r["task"], r["seed"]): r for r in rows}
    assert [(r["task"], r["seed"]) for r in rows] == [
        ("mw-reach", 1),
        ("mw-reach", 2),
        ("walker-walk", 1),
        ("walker-walk", 2),
        ("walker-walk", 3),
    ]
    assert [got[k]["status"] for k in got] == [
        "failed",
        "finished",
        "finished",
        "interrupted",
        "failed",
    ]
    assert got["walker-walk", 1]["normalised_score"] == pytest.approx(81.2)  # 812 / 10
    assert got["mw-reach", 2]["normalised_score"] == pytest.approx(70.0)  # 0.7 x 100
    assert got["mw-reach", 1]["step"] == 50 and got["mw-reach", 1]["eval_step"] == "50"
    assert got["walker-walk", 3]["step"] == 0 and got["walker-walk", 3]["steps"] == ""
    assert got["walker-walk", 3]["log"] == "walker-walk/torch-seed3.log"
    assert got["walker-walk", 1]["run_dir"] == "walker-walk/torch-seed1"

    path = write_table(tmp_path, rows)
    with open(path, newline="") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == list(TABLE_COLUMNS)
    assert [(r["task"], r["status"]) for r in written] == [(r["task"], r["status"]) for r in rows]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sweep", "mw-reach", "sweep.csv"] + [
        "walker-walk"
    ]
    with pytest.raises(ConfigError, match="is not a directory"):
        sweep_table(tmp_path / "none")


def test_the_last_attempt_of_a_log_gives_its_exit_status(tmp_path):
    log = tmp_path / "a.log"
    assert last_exit(log) is None
    log.write_text("training...\n")
    assert last_exit(log) is None  # running, or killed with its launcher
    record_exit(log, 1)
    record_exit(log, 0)
    assert last_exit(log) == 0
