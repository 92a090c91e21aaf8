"""W&B tracking through the Logger: real offline W&B runs read back from their files (the rows,
the config, the artefacts, a resumed run that never logs a step twice) and the errors of a
missing package or bad keys."""

import json
import math
import sys

import numpy as np
import pytest
import wandb
from mbdpo_core.checkpoint import checkpoint_path, save_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.errors import ConfigError, MbdpoError, MissingExtraError
from mbdpo_core.logger import Logger
from mbdpo_core.rundir import write_config
from mbdpo_core.tracking import WANDB_FILE, WandbRun
from wandb_records import csv_history, offline_runs  # tests/apps, on pytest's pythonpath

OFFLINE = ["preset=cpu", "task=mw-reach", "wandb=true", "wandb_mode=offline"]


@pytest.fixture(autouse=True, scope="module")
def wandb_env(tmp_path_factory):
    """W&B's staging, cache and settings in a temporary folder; no login, no W&B variables of
    the caller (W&B reads them once per process, hence one folder per module)."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("DATA", "CACHE", "CONFIG", "ARTIFACT"):
            mp.setenv(f"WANDB_{name}_DIR", str(home / name.lower()))
        mp.setenv("WANDB_SILENT", "true")
        for name in ("WANDB_DIR", "WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY"):
            mp.delenv(name, raising=False)
        yield


def finish(tracking: WandbRun, exit_code: int, upload: bool) -> None:
    """End the W&B run and wait until its files are written (wandb-core writes the .wandb log
    after `finish` returns; `teardown` waits for it, as the end of a process does)."""
    tracking.finish(exit_code, upload)
    wandb.teardown()


def same(a, b) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_every_row_goes_to_wandb_with_its_step_tags_and_the_artefacts(tmp_path):
    run_dir = tmp_path / "runs" / "walk"
    cfg = load_config([*OFFLINE, "wandb_group=g", f"run_dir={run_dir}"], backend="none")
    tracking = WandbRun(cfg, run_dir)
    log = Logger(run_dir, console=False, tensorboard=False, wandb=tracking)
    tracking.start()
    write_config(run_dir, cfg)
    log.log("eval", 0, {"episode_reward": 1.5, "episode_success": 0.0, "episode_length": 100})
    log.log("train", 100, {"episode": 1, "episode_reward": 2.25, "value_loss": float("nan")})
    log.log("eval", 100, {"episode_reward": 3.0, "episode_success": 1.0, "episode_length": 100})
    log.log("eval", 100, {"episode_reward": 4.0, "task": "mw-reach"}, scalars="eval/mw-reach")
    save_checkpoint(checkpoint_path(run_dir, 100), {"params/w": np.ones((2, 3), np.float32)}, {})
    finish(tracking, 0, upload=True)

    (run,) = offline_runs(run_dir)
    assert (run.id, run.name, run.group, run.project) == (tracking.id, "runs/walk", "g", "mbdpo")
    assert run.exit_code == 0 and run.job_type == "online"
    assert json.loads((run_dir / WANDB_FILE).read_text()) == {
        "id": run.id,
        "logged_through": None,
    }
    assert run.config == json.loads((run_dir / "config.json").read_text())
    expected = csv_history(run_dir)
    assert sorted(run.history) == sorted(expected) == [0, 100]
    for step, values in expected.items():
        logged = {k: v for k, v in run.history[step].items() if not k.startswith("_")}
        assert logged.keys() == values.keys(), step
        assert all(same(logged[k], values[k]) for k in values), (step, logged)
    assert all(same(run.summary[k], v) for k, v in expected[100].items())  # the last values
    assert "eval/mw-reach/episode_reward" in expected[100]  # the labelled row's number

    (files, kind, _, staged), (model, model_kind, aliases, weights) = run.artifacts
    assert (files, kind) == (f"{run.id}-files", "run-files")
    assert sorted(staged) == ["config.json", "eval.csv", "train.csv"]
    assert (model, model_kind) == (f"{run.id}-model", "model") and "step_100" in aliases
    assert sorted(weights) == ["step_100.json", "step_100.safetensors"]
    for name, copy in {**staged, **weights}.items():
        origin = run_dir / name if name in staged else run_dir / "checkpoints" / name
        assert copy.read_bytes() == origin.read_bytes(), name


def test_a_resumed_run_continues_the_same_wandb_run_without_logging_a_step_twice(tmp_path):
    run_dir = tmp_path / "run"
    cfg = load_config(OFFLINE, backend="none")

    def session(resume_from: int | None, steps: list[int], exit_code: int) -> None:
        tracking = WandbRun(cfg, run_dir)
        log = Logger(run_dir, console=False, tensorboard=False, wandb=tracking)
        if resume_from is not None:
            log.truncate_after(resume_from)
        tracking.start()
        for step in steps:
            log.log("train", step, {"loss": step / 10})
        finish(tracking, exit_code, upload=False)

    session(None, [10, 20, 30], 130)  # stopped; its checkpoint was at step 10
    session(10, [20], 1)  # failed before reaching step 30 again; no checkpoint after 10
    session(10, [20, 30, 40], 0)
    runs = offline_runs(run_dir)
    assert len({r.id for r in runs}) == 1 and [r.exit_code for r in runs] == [130, 1, 0]
    assert [sorted(r.history) for r in runs] == [[10, 20, 30], [], [40]]
    assert sorted(csv_history(run_dir)) == [10, 20, 30, 40]
    assert json.loads((run_dir / WANDB_FILE).read_text())["logged_through"] == 30


def test_an_artefact_that_cannot_be_added_is_a_one_line_error(tmp_path):
    run_dir = tmp_path / "run"
    tracking = WandbRun(load_config(OFFLINE, backend="none"), run_dir)
    tracking.start()
    stem = checkpoint_path(run_dir, 5)
    stem.parent.mkdir(parents=True)
    stem.with_suffix(".json").write_text("{}")
    stem.with_suffix(".safetensors").mkdir()  # a folder where the weights file should be
    with pytest.raises(MbdpoError) as err:
        tracking.finish(0, upload=True)
    (line,) = str(err.value).splitlines()
    assert line.startswith(
        f"W&B could not finish run {tracking.id} (ValueError: Path is not a file"
    )
    assert line.endswith(f"the run directory {run_dir} is complete.")
    wandb.teardown()


def test_a_missing_package_is_a_clear_error_naming_the_extra(tmp_path, monkeypatch):
    cfg = load_config(OFFLINE, backend="none")
    monkeypatch.setitem(sys.modules, "wandb", None)  # what an absent package looks like
    with pytest.raises(MissingExtraError, match=r"wandb=true .* `uv sync --extra wandb`"):
        load_config(OFFLINE, backend="none")
    with pytest.raises(MissingExtraError, match=r"mbdpo-core\[wandb\]"):
        WandbRun(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert not load_config(["preset=cpu"], backend="none").wandb  # off: wandb never needed


def test_online_without_a_login_is_a_clear_error_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("NETRC", raising=False)
    cfg = load_config([*OFFLINE[:-1], "wandb_mode=online"], backend="none")
    with pytest.raises(MbdpoError) as err:
        WandbRun(cfg, tmp_path / "run")
    (line,) = str(err.value).splitlines()
    assert line.startswith("W&B cannot log in (") and "`wandb login`" in line
    assert "wandb_mode=offline" in line and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["wandb_group=g"], "wandb_group is read with wandb=true only"),
        (["wandb_mode=offline"], "wandb_mode is read with wandb=true only"),
        (["wandb=true", "wandb_mode=cloud"], "Invalid wandb_mode='cloud'. Valid choices: online"),
        (["wandb=true", "wandb_project=a/b"], "Invalid wandb_project='a/b'"),
        (["wandb=true", "wandb_entity=''"], "Invalid wandb_entity=''"),
    ],
)
def test_bad_wandb_keys_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(["preset=cpu", *overrides], backend="none")
    assert "\n" not in str(err.value)
