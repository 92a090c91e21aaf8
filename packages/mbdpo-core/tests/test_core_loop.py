"""The online loop composed of parts: any batch source, exact resume, evaluation, progress.

A small numpy agent and a short deterministic environment stand in for a backend and a
simulator (tests/apps runs the real ones), so these runs take well under a second.
"""

import csv
from pathlib import Path

import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.buffer import EpisodeRecorder, ReplayBuffer
from mbdpo_core.checkpoint import latest_checkpoint, load_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.logger import Logger
from mbdpo_core.loops import (
    EVAL_METRICS,
    BatchSource,
    Checkpointer,
    EpisodeEvaluator,
    OnlineTrainer,
    Progress,
    Replay,
    Stateful,
    make_replay,
)

EPISODE = 12  # steps of a ToyEnv episode
OVERRIDES = [
    "task=cartpole-balance",  # O = 5, A = 1
    "preset=cpu",
    "seed_steps=24",
    "eval_freq=24",
    "eval_episodes=2",
    "save_every=24",
    "batch_size=4",
    "horizon=3",
]


class ToyEnv:
    """Episodes of EPISODE steps; the observation drifts with the action plus seeded noise."""

    def __init__(self, obs_dim: int, seed: int) -> None:
        self.obs_dim, self.rng, self.t, self.obs = obs_dim, np.random.default_rng(seed), 0, None

    def reset(self, seed: int):
        self.rng, self.t = np.random.default_rng(seed), 0
        self.obs = self.rng.standard_normal(self.obs_dim).astype(np.float32)
        return self.obs.copy(), {}

    def step(self, action):
        self.t += 1
        noise = 0.1 * self.rng.standard_normal(self.obs_dim)
        self.obs = (0.9 * self.obs + float(action[0]) + noise).astype(np.float32)
        reward = float(-abs(self.obs[0]))
        return self.obs.copy(), reward, False, self.t == EPISODE, {"success": float(reward > -1)}


class NumpyAgent:
    """A deterministic agent whose action depends on what it learnt; records its batches."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.w = np.zeros(cfg.obs_shape[0], np.float32)
        self.batches: list[Batch] = []

    def act(self, obs, t0, eval_mode, task=None):
        return np.tanh([float(self.w @ obs)]).astype(np.float32)

    def update(self, batch: Batch) -> dict[str, float]:
        self.batches.append(batch)
        self.w = (0.99 * self.w + 0.01 * batch.obs.mean(axis=(0, 1))).astype(np.float32)
        return {"value_loss": float(np.abs(batch.reward).mean()), "w_norm": float(self.w @ self.w)}

    def state_dict(self):
        return {"w": self.w.copy()}, {"backend": "numpy"}

    def load_state_dict(self, arrays, meta):
        self.w = arrays["w"].copy()


class RecordedEpisodes:
    """Serves batches from a fixed set of recorded episodes, in order (not a ReplayBuffer).

    It keeps the episodes the loop adds apart, and records every batch it serves.
    """

    def __init__(self, episodes: list[dict]) -> None:
        self.episodes, self.added, self.served, self._next = episodes, [], [], 0

    def add(self, episode) -> None:
        self.added.append(episode)

    def sample(self, batch_size: int, horizon: int) -> Batch:
        slices = []
        for _ in range(batch_size):
            ep = self.episodes[self._next % len(self.episodes)]
            start = (self._next // len(self.episodes)) % (len(ep["obs"]) - horizon)
            slices.append({k: v[start : start + horizon + 1] for k, v in ep.items()})
            self._next += 1
        batch = Batch(
            obs=np.stack([s["obs"] for s in slices], axis=1),
            action=np.stack([s["action"][1:] for s in slices], axis=1),
            reward=np.stack([s["reward"][1:, None] for s in slices], axis=1),
            terminated=np.stack([s["terminated"][1:, None] for s in slices], axis=1),
        )
        self.served.append(batch)
        return batch


def recorded_episodes(obs_dim: int, count: int) -> list[dict]:
    """`count` episodes of ToyEnv under random actions, shifted by -100 to tell them apart."""
    env, rng, episodes = ToyEnv(obs_dim, 0), np.random.default_rng(1), []
    for i in range(count):
        obs, _ = env.reset(seed=1000 + i)
        recorder = EpisodeRecorder(obs - 100)
        for _ in range(EPISODE):
            action = rng.uniform(-1, 1, 1).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            recorder.add(action, reward, terminated, obs - 100, info)
        episode = recorder.finish()
        episodes.append({k: episode[k] for k in ("obs", "action", "reward", "terminated")})
    return episodes


def make_trainer(cfg, run_dir: Path, replay, agent=None) -> OnlineTrainer:
    obs_dim = cfg.obs_shape[0]
    return OnlineTrainer(
        cfg,
        agent or NumpyAgent(cfg),
        ToyEnv(obs_dim, cfg.seed),
        replay=replay,
        evaluator=EpisodeEvaluator({cfg.tasks[0]: ToyEnv(obs_dim, cfg.seed + 1)}, 2, cfg.seed),
        logger=Logger(run_dir, console=False, tensorboard=False),
        checkpoints=Checkpointer(run_dir),
        progress=Progress(cfg.steps, bar=False, every=10**9),
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_the_online_loop_trains_on_batches_of_a_source_that_is_not_the_replay(tmp_path):
    cfg = load_config([*OVERRIDES, "steps=72"])
    source = RecordedEpisodes(recorded_episodes(cfg.obs_shape[0], 3))
    assert isinstance(source, Replay) and not isinstance(source, Stateful | ReplayBuffer)
    trainer = make_trainer(cfg, tmp_path, source)
    result = trainer.run()

    agent = trainer.agent
    # one burst of seed_steps updates at step seed_steps, then one per step: steps - 1 in all
    assert trainer.state.step == 72 and trainer.state.updates == 71
    assert len(agent.batches) == len(source.served) == 71
    assert all(got is served for got, served in zip(agent.batches, source.served, strict=True))
    for batch in agent.batches:
        assert batch.obs.shape == (4, 4, 5) and batch.action.shape == (3, 4, 1)
        assert batch.reward.shape == batch.terminated.shape == (3, 4, 1)
        assert batch.obs.max() < -50  # every row comes from the recorded episodes
    assert not np.array_equal(agent.w, 0)

    # the loop handed every collected episode to the source, and logged a row for each
    assert len(source.added) == 72 // EPISODE
    assert all(len(ep["obs"]) == EPISODE + 1 and ep["obs"].min() > -50 for ep in source.added)
    train = read_csv(tmp_path / "train.csv")
    assert [int(r["step"]) for r in train] == [12, 24, 36, 48, 60, 72]
    assert [int(r["episode"]) for r in train] == [1, 2, 3, 4, 5, 6]
    assert train[1]["value_loss"] == "" and train[2]["value_loss"] != ""  # updates from step 24
    assert float(train[-1]["episode_reward"]) == pytest.approx(
        float(np.nansum(source.added[-1]["reward"])), rel=1e-6
    )
    evals = read_csv(tmp_path / "eval.csv")
    assert [int(r["step"]) for r in evals] == [0, 24, 48, 72]
    assert list(evals[0]) == ["step", *EVAL_METRICS]
    assert result["episode_reward"] == pytest.approx(float(evals[-1]["episode_reward"]))

    # checkpoints hold agent and counters; a source without state leaves no replay snapshot
    arrays, meta = load_checkpoint(latest_checkpoint(tmp_path))
    np.testing.assert_array_equal(arrays["w"], agent.w)
    assert meta["loop"]["step"] == 72 and meta["loop"]["updates"] == 71
    assert meta["last_eval"]["step"] == 72
    assert not list((tmp_path / "checkpoints").glob("replay_step_*"))


def test_a_restored_run_continues_exactly_as_the_uninterrupted_one(tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    make_trainer(load_config([*OVERRIDES, "steps=96"]), full, make_replay_for(96)).run()
    make_trainer(load_config([*OVERRIDES, "steps=48"]), split, make_replay_for(48)).run()
    resumed = make_trainer(load_config([*OVERRIDES, "steps=96"]), split, make_replay_for(96))
    assert resumed.restore() and resumed.state.step == 48
    resumed.run()

    for name in ("eval.csv", "train.csv"):
        assert read_csv(full / name) == read_csv(split / name), name
    for stem in ("step_96", "replay_step_96"):
        a, meta_a = load_checkpoint(full / "checkpoints" / stem)
        b, meta_b = load_checkpoint(split / "checkpoints" / stem)
        assert a.keys() == b.keys() and meta_a == meta_b
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{stem}/{key}")
    assert sorted(p.name for p in (split / "checkpoints").glob("replay_step_*")) == [
        "replay_step_96.json",
        "replay_step_96.safetensors",
    ]


def make_replay_for(steps: int) -> ReplayBuffer:
    replay = make_replay(load_config([*OVERRIDES, f"steps={steps}"]))
    assert isinstance(replay, BatchSource | Replay) and isinstance(replay, Stateful)
    return replay


def test_the_evaluator_reports_each_task_and_their_mean():
    cfg = load_config(OVERRIDES)
    agent = NumpyAgent(cfg)
    agent.w[:] = 0.3
    single = EpisodeEvaluator({"a": ToyEnv(5, 0)}, episodes=2, seed=7)
    row = single.evaluate(agent, step=24)
    assert list(row) == list(EVAL_METRICS) and row["episode_length"] == EPISODE
    assert row == single.evaluate(agent, step=24) != single.evaluate(agent, step=48)

    tasks = EpisodeEvaluator({"a": ToyEnv(5, 0), "b": ToyEnv(5, 1)}, 2, 7, {"a": 0, "b": 1})
    per_task = tasks.per_task(agent, step=24)
    both = tasks.evaluate(agent, step=24)
    assert per_task["a"] == row  # the same seeds in every task's environment
    for key in EVAL_METRICS:
        assert both[f"a/{key}"] == per_task["a"][key] and both[f"b/{key}"] == per_task["b"][key]
        assert both[key] == pytest.approx((per_task["a"][key] + per_task["b"][key]) / 2)


def test_progress_without_a_terminal_prints_status_lines(capsys):
    progress = Progress(total=100, bar=False, every=40)
    progress.start(20, last_return=3.0)
    for step in range(21, 101):
        progress.step(step)
        if step == 50:
            progress.evaluated(12.5)
    progress.close()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["40/100", "80/100"]
    assert lines[0].endswith("last eval 3.0") and lines[1].endswith("last eval 12.5")
    assert Progress(total=100_000).every == 5000 and Progress(total=100).every == 500


@pytest.mark.parametrize(
    "backend",
    ["torch", pytest.param("jax", marks=pytest.mark.slow)],  # jax: compiles first
)
def test_a_backend_agent_trains_on_the_recorded_episodes(tmp_path, tiny, backend):
    pytest.importorskip(f"mbdpo_{backend}.agent")
    from mbdpo_core.backends import load_backend

    overrides = [*OVERRIDES, "seed_steps=12", "eval_freq=36", "eval_episodes=1", "steps=36"]
    cfg = load_config([*tiny, *overrides], backend=backend)
    agent = load_backend(backend).Agent(cfg)
    before = agent.export_params()
    source = RecordedEpisodes(recorded_episodes(cfg.obs_shape[0], 3))
    trainer = make_trainer(cfg, tmp_path, source, agent)
    trainer.run()

    assert trainer.state.updates == len(source.served) == 35
    after = agent.export_params()
    assert any(not np.array_equal(before[k], after[k]) for k in before if k.startswith("dynamics"))
    train = read_csv(tmp_path / "train.csv")
    assert [int(r["step"]) for r in train] == [12, 24, 36]
    assert train[0]["value_loss"] == "" and np.isfinite(float(train[-1]["value_loss"]))
    assert [int(r["step"]) for r in read_csv(tmp_path / "eval.csv")] == [0, 36]
    restored = load_backend(backend).Agent(cfg)
    assert Checkpointer(tmp_path).restore(restored, source)[0].updates == 35
    for name, value in restored.export_params().items():
        np.testing.assert_array_equal(value, after[name], err_msg=name)
