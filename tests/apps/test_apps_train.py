"""apps/train end to end: a short real run per backend, exact resume, stops by signal, and
clear errors before anything is written."""

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from app_runs import ROOT, TINY_MODEL, run_app
from mbdpo_core.checkpoint import latest_checkpoint, load_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.logger import TIMING_COLUMNS
from mbdpo_core.rundir import write_config

TINY = [
    "task=cartpole-balance",
    *TINY_MODEL,
    "seed_steps=500",
    "eval_freq=500",
    "eval_episodes=1",
    "save_every=500",
]


def command(backend: str, *overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "apps" / "train"), "--backend", backend, *overrides]


ENV = {**os.environ, "MUJOCO_GL": "egl"}


def train(backend: str, *overrides: str) -> subprocess.CompletedProcess:
    return run_app("train", "--backend", backend, *overrides)


def digest(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under folder."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV without its wall-clock columns (which differ between any two runs)."""
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_short_run_writes_every_output(tmp_path, backend):
    pytest.importorskip(f"mbdpo_{backend}.agent")
    run = tmp_path / "run"
    out = train(backend, *TINY, "steps=1000", f"run_dir={run}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "preset=cpu" in out.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "cpu" and config["backend"] == backend
    rows = read_csv(run / "eval.csv")
    assert [int(float(r["step"])) for r in rows] == [0, 500, 1000]
    assert list(rows[0])[:4] == ["step", "episode_reward", "episode_success", "episode_length"]
    assert all(np.isfinite(float(r["episode_reward"])) for r in rows)
    train_rows = read_csv(run / "train.csv")
    assert len(train_rows) == 2 and "value_loss" in train_rows[-1]
    assert list(run.glob("events.out.tfevents.*"))
    assert latest_checkpoint(run).name == "step_1000"


@pytest.mark.slow
def test_resume_gives_the_same_run_as_an_uninterrupted_one(tmp_path):
    pytest.importorskip("mbdpo_torch.agent")
    full, split = tmp_path / "full", tmp_path / "split"
    assert train("torch", *TINY, "steps=1000", f"run_dir={full}").returncode == 0
    first = train("torch", *TINY, "steps=750", f"run_dir={split}")  # ends mid-episode
    assert first.returncode == 0, first.stderr[-3000:]
    second = train("torch", *TINY, "steps=1000", f"run_dir={split}", "resume=true")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from step 750" in second.stdout
    assert read_csv(full / "train.csv") == read_csv(split / "train.csv")
    first_end = [row for row in read_csv(split / "eval.csv") if row["step"] == "750"]
    assert len(first_end) == 1  # the evaluation that ended the first part, the only extra row
    assert read_csv(full / "eval.csv") == [
        row for row in read_csv(split / "eval.csv") if row["step"] != "750"
    ]
    a, _ = load_checkpoint(latest_checkpoint(full))
    b, _ = load_checkpoint(latest_checkpoint(split))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize(
    "args, message",
    [
        (["stpes=10"], "Did you mean: steps"),
        (["task=cartpole-balanc"], "Did you mean: cartpole-balance"),
        (["model_size=6"], "Valid choices: 1, 5, 19, 48, 317"),
        (["checkpoint=/no/such.safetensors"], "checkpoint is read by mode=finetune only"),
        (
            ["mode=finetune", "checkpoint=/no/such.safetensors"],
            "checkpoint not found: /no/such.json does not exist",
        ),
        (["run_dir=a,b"], "run_dir=a,b"),
        (["num_q=1"], "num_q=1"),
        (["lr=-1"], "lr=-1"),
        (["device=cuda"], "device=cuda"),
        (["task=mw-reach", "obs=rgb"], "obs=rgb"),
        (["buffer_size=100"], "buffer_size=100"),
        (["seed_steps=100"], "seed_steps=100"),
        (["resume=true"], "needs run_dir"),
    ],
)
def test_bad_input_is_a_clear_error_before_anything_is_written(tmp_path, args, message):
    run = tmp_path / "run"
    given = any(a.startswith(("run_dir=", "resume=")) for a in args)
    explicit_dir = [] if given else [f"run_dir={run}"]
    before = sorted(p.name for p in ROOT.iterdir())
    out = train("torch", *args, *explicit_dir)
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not run.exists() and sorted(p.name for p in ROOT.iterdir()) == before


def test_a_run_dir_that_is_a_file_is_a_clear_error(tmp_path):
    file = tmp_path / "file"
    file.write_text("keep me")
    out = train("torch", f"run_dir={file}")
    assert out.returncode == 2 and "is a file, not a directory" in out.stderr
    assert file.read_text() == "keep me"


def test_a_new_run_never_touches_an_existing_run(tmp_path):
    run = tmp_path / "run"
    write_config(run, load_config(["preset=cpu", "task=walker-walk"], backend="torch"))
    (run / "eval.csv").write_text("step,episode_reward\n0,1.0\n")
    before = digest(run)
    out = train("torch", *TINY, f"run_dir={run}")
    assert out.returncode == 2
    assert "is not empty" in out.stderr and f"resume=true run_dir={run}" in out.stderr
    assert digest(run) == before


def test_resume_without_a_checkpoint_says_so_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    write_config(run, load_config(TINY, backend="torch"))
    before = digest(run)
    out = train("torch", f"run_dir={run}", "resume=true")
    assert out.returncode == 2 and "has no complete checkpoint" in out.stderr
    assert digest(run) == before


def test_resuming_with_the_other_backend_needs_to_be_asked(tmp_path):
    pytest.importorskip("mbdpo_jax")
    run = tmp_path / "run"
    write_config(run, load_config(TINY, backend="torch"))
    refused = train("jax", f"run_dir={run}", "resume=true")
    assert refused.returncode == 2
    assert "is a torch run" in refused.stderr and "allow_backend_switch=true" in refused.stderr
    asked = train("jax", f"run_dir={run}", "resume=true", "allow_backend_switch=true")
    assert "has no complete checkpoint" in asked.stderr  # past the guard, to the next check


def test_help_and_list_show_keys_presets_planners_and_tasks():
    help_text = subprocess.run(
        [*command("torch"), "--help"], capture_output=True, text=True, env=ENV, timeout=120
    ).stdout
    for expected in ("diffusion_num_samples", "keep_checkpoints", "cpu", "paper", "mppi"):
        assert expected in help_text, expected
    tasks = train("torch", "list", "tasks")
    assert tasks.returncode == 0
    for expected in ("walker-walk", "mw-reach", "mt30", "mt80"):
        assert expected in tasks.stdout, expected
    unknown = train("torch", "list", "everything")
    assert unknown.returncode == 2 and "keys" in unknown.stderr


LONG_SEEDING = ("eval_freq=0", "save_every=0", "seed_steps=20000", "steps=100000")
"""No evaluation or checkpoint before 20,000 random steps (tens of seconds): a signal's doing."""


def start_and_signal(run: Path, sig: signal.Signals, *overrides: str) -> tuple[int, str, str]:
    """Start a run, send `sig` once it is seeding; (exit status, stdout, stderr)."""
    proc = subprocess.Popen(
        command("torch", *TINY, *overrides, f"run_dir={run}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    lines = []
    for line in proc.stdout:  # status lines name the phase when there is no terminal
        lines.append(line)
        if "seeding" in line:
            time.sleep(0.5)
            proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=300)
    return proc.returncode, "".join(lines) + out, err


def test_sigint_checkpoints_mid_episode_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    code, out, err = start_and_signal(run, signal.SIGINT, *LONG_SEEDING)
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and f"run_dir={run} resume=true" in err
    steps = sorted(int(p.name[5:-5]) for p in (run / "checkpoints").glob("step_*.json"))
    assert len(steps) == 1 and 0 < steps[0] < 20_000 and steps[0] % 500  # seeding, mid-episode
    events = [json.loads(line)["event"] for line in (run / "history.jsonl").open()]
    assert events == ["start", "stopped"]


@pytest.mark.slow
def test_sigterm_stops_and_the_run_resumes_and_switches_backend_when_asked(tmp_path):
    run = tmp_path / "run"
    code, _, err = start_and_signal(run, signal.SIGTERM, *LONG_SEEDING)
    assert code == 143 and "resume=true" in err
    (step,) = sorted(int(p.name[5:-5]) for p in (run / "checkpoints").glob("step_*.json"))
    resumed = train("torch", f"run_dir={run}", "resume=true", f"steps={step + 20}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from step {step:,}" in resumed.stdout
    assert read_csv(run / "eval.csv")[-1]["step"] == str(step + 20)

    pytest.importorskip("mbdpo_jax")
    switched = train(
        "jax", f"run_dir={run}", "resume=true", "allow_backend_switch=true", f"steps={step + 40}"
    )
    assert switched.returncode == 0, switched.stderr[-3000:]
    assert "not bit-exactly" in switched.stdout
    assert json.loads((run / "config.json").read_text())["backend"] == "jax"
    history = [json.loads(line) for line in (run / "history.jsonl").open()]
    assert [(h["event"], h.get("backend")) for h in history] == [
        ("start", "torch"),
        ("stopped", None),
        ("resume", "torch"),
        ("finished", None),
        ("resume", "jax"),
        ("finished", None),
    ]


def test_resume_refuses_a_changed_hyperparameter(tmp_path):
    run = tmp_path / "run"
    write_config(run, load_config(["preset=cpu"], backend="torch"))
    out = train("torch", f"run_dir={run}", "resume=true", "lr=0.1")
    assert out.returncode == 2
    assert "Cannot resume" in out.stderr and "lr=0.0003" in out.stderr
