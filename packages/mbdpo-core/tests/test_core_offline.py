"""The offline loop: one update per iteration on a batch source, train rows every log_freq
updates, per-task evaluation rows and a summary row per evaluation, checkpoints, and a resumed
run that continues exactly as the uninterrupted one."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.logger import Logger
from mbdpo_core.loops import Checkpointer, Interrupted, Progress, StopRequest
from mbdpo_core.loops.offline import OfflineTrainer, offline_schedule

OVERRIDES = [
    "task=mt80",
    "mode=offline",
    "data_dir=unused",
    "preset=cpu",
    "steps=10",
    "log_freq=4",
    "eval_freq=5",
    "save_every=5",
    "batch_size=4",
    "horizon=3",
    "eval_tasks='walker-walk mw-reach'",
]


class SeededBatches:
    """Batch k drawn from default_rng((seed, k)); its state is the number drawn (Stateful)."""

    def __init__(self, cfg, seed: int = 0) -> None:
        self.cfg, self.seed, self.drawn = cfg, seed, 0

    def sample(self, batch_size: int, horizon: int) -> Batch:
        rng = np.random.default_rng((self.seed, self.drawn))
        self.drawn += 1
        H, B, A = horizon, batch_size, self.cfg.action_dim
        return Batch(
            obs=rng.standard_normal((H + 1, B, self.cfg.obs_shape[0])).astype(np.float32),
            action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
            reward=rng.standard_normal((H, B, 1)).astype(np.float32),
            terminated=np.zeros((H, B, 1), np.float32),
            task=rng.integers(0, 80, B),
        )

    def state_dict(self):
        return {}, {"drawn": self.drawn}

    def load_state_dict(self, arrays, meta) -> None:
        self.drawn = meta["drawn"]


class MeanAgent:
    """Learns the running mean of its batches' observations; reports it as its losses."""

    def __init__(self, cfg) -> None:
        self.w = np.zeros(cfg.obs_shape[0], np.float64)
        self.updates = 0

    def update(self, batch: Batch) -> dict[str, float]:
        self.w = 0.9 * self.w + 0.1 * batch.obs.mean(axis=(0, 1))
        self.updates += 1
        return {"value_loss": float(self.w[0]), "reward_loss": float(self.updates)}

    def state_dict(self):
        return {"w": self.w.copy()}, {"backend": "numpy", "updates": self.updates}

    def load_state_dict(self, arrays, meta) -> None:
        self.w, self.updates = arrays["w"].copy(), meta["updates"]


class WeightEvaluator:
    """Per-task metrics that are functions of what the agent learnt (so resuming must match)."""

    def __init__(self, tasks) -> None:
        self.tasks, self.calls = tasks, 0

    def per_task(self, agent, step, on_step=None):
        self.calls += 1
        for _ in range(3):
            if on_step is not None:
                on_step()
        return {
            task: {
                "episode_reward": 100.0 * (i + 1) + float(agent.w[i]),
                "episode_success": float(step % 2),
                "episode_length": 500.0,
            }
            for i, task in enumerate(self.tasks)
        }


def make_trainer(cfg, run_dir: Path, stop=None) -> OfflineTrainer:
    return OfflineTrainer(
        cfg,
        MeanAgent(cfg),
        SeededBatches(cfg),
        WeightEvaluator(cfg.evaluated_tasks),
        Logger(run_dir, console=False, tensorboard=False),
        Checkpointer(run_dir),
        progress=Progress(offline_schedule(cfg), bar=False, every_s=1e9),
        stop=stop,
    )


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k not in ("wall_time_s", "steps_per_s")} for r in rows]


def test_the_offline_loop_logs_trains_evaluates_and_checkpoints(tmp_path):
    cfg = load_config(OVERRIDES)
    trainer = make_trainer(cfg, tmp_path)
    result = trainer.run()

    assert trainer.agent.updates == 10 and trainer.batches.drawn == 10
    train = read(tmp_path / "train.csv")
    assert [int(r["step"]) for r in train] == [4, 8, 10]
    assert [float(r["reward_loss"]) for r in train] == [2.5, 6.5, 9.5]  # means of 1..4, 5..8, 9..10
    rows = read(tmp_path / "eval.csv")
    assert [(int(r["step"]), r["task"]) for r in rows] == [
        (s, t) for s in (0, 5, 10) for t in ("walker-walk", "mw-reach")
    ]
    for row in rows:  # walker-walk: return / 10; mw-reach (Meta-World): success x 100
        reward, success = float(row["episode_reward"]), float(row["episode_success"])
        expected = reward / 10 if row["task"] == "walker-walk" else success * 100
        assert float(row["normalised_score"]) == pytest.approx(expected)
    summary = read(tmp_path / "eval_summary.csv")
    assert [int(r["step"]) for r in summary] == [0, 5, 10]
    last = [r for r in rows if r["step"] == "10"]
    mean_score = np.mean([float(r["normalised_score"]) for r in last])
    assert float(summary[-1]["normalised_score"]) == pytest.approx(mean_score)
    assert result["normalised_score"] == pytest.approx(mean_score)
    assert Checkpointer(tmp_path).steps() == [5, 10]
    assert trainer.finished


def test_a_stopped_offline_run_resumes_exactly(tmp_path):
    cfg = load_config(OVERRIDES)
    make_trainer(cfg, tmp_path / "whole").run()

    stop = StopRequest()
    stopped = make_trainer(cfg, tmp_path / "parts", stop)
    update = stopped.agent.update

    def update_then_stop(batch):
        metrics = update(batch)
        if stopped.agent.updates == 7:
            stop.signal = "SIGTERM"  # as the handler records a SIGTERM
        return metrics

    stopped.agent.update = update_then_stop
    with pytest.raises(Interrupted):
        stopped.run()
    assert Checkpointer(tmp_path / "parts").steps() == [5, 7]

    resumed = make_trainer(cfg, tmp_path / "parts")
    resumed.restore()
    assert resumed.state.step == 7 and resumed.batches.drawn == 7
    resumed.run()
    for name in ("train.csv", "eval.csv", "eval_summary.csv"):
        assert read(tmp_path / "parts" / name) == read(tmp_path / "whole" / name), name
    whole = Checkpointer(tmp_path / "whole")
    arrays = {}
    for run in (whole, Checkpointer(tmp_path / "parts")):
        agent = MeanAgent(cfg)
        run.restore(agent, SeededBatches(cfg), 10)
        arrays[run.run_dir.name] = agent.w
    np.testing.assert_array_equal(arrays["whole"], arrays["parts"])
