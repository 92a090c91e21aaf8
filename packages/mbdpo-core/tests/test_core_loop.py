"""The online loop composed of parts: any batch source, exact resume, evaluation, progress.

A small numpy agent and a short deterministic environment stand in for a backend and a
simulator (tests/apps runs the real ones), so these runs take well under a second.
"""

import csv
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.buffer import EpisodeRecorder, ReplayBuffer
from mbdpo_core.checkpoint import latest_checkpoint, load_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.errors import CheckpointError, DataFormatError
from mbdpo_core.logger import Logger
from mbdpo_core.loops import (
    EVAL_METRICS,
    BatchSource,
    Checkpointer,
    EpisodeEvaluator,
    Interrupted,
    OnlineTrainer,
    Progress,
    Replay,
    Schedule,
    Stateful,
    StopRequest,
    make_replay,
)
from mbdpo_core.loops.checkpointing import TEMPORARY_GLOB
from mbdpo_core.replay_snapshots import load_snapshot, snapshot_steps

EPISODE = 12  # steps of a ToyEnv episode
OVERRIDES = [
    "task=cartpole-balance",  # O = 5, A = 1
    "preset=cpu",
    "eval_freq=24",
    "eval_episodes=2",
    "save_every=24",
    "batch_size=4",
    "horizon=3",
]


def toy_config(*overrides: str, seed_steps: int = 24, backend: str = "none"):
    """The config of a ToyEnv run: cartpole's shapes, with seed_steps below cartpole's episode
    length (which load_config rightly refuses for cartpole itself)."""
    return dataclasses.replace(
        load_config([*OVERRIDES, *overrides], backend=backend), seed_steps=seed_steps
    )


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
    """An agent whose action depends on what it learnt and on its own seeded noise (in both
    modes, like the planners); records its batches."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.w = np.zeros(cfg.obs_shape[0], np.float32)
        self.rng = np.random.default_rng(cfg.seed)
        self.batches: list[Batch] = []

    def act(self, obs, t0, eval_mode, task=None):
        noise = 0.1 * self.rng.standard_normal()
        return np.tanh([float(self.w @ obs) + noise]).astype(np.float32)

    def update(self, batch: Batch) -> dict[str, float]:
        self.batches.append(batch)
        self.w = (0.99 * self.w + 0.01 * batch.obs.mean(axis=(0, 1))).astype(np.float32)
        return {"value_loss": float(np.abs(batch.reward).mean()), "w_norm": float(self.w @ self.w)}

    def state_dict(self):
        return {"w": self.w.copy()}, {"backend": "numpy", "rng": self.rng.bit_generator.state}

    def load_state_dict(self, arrays, meta):
        self.w = arrays["w"].copy()
        self.rng.bit_generator.state = meta["rng"]


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


def make_trainer(cfg, run_dir: Path, replay, agent=None, env=None, stop=None) -> OnlineTrainer:
    obs_dim = cfg.obs_shape[0]
    return OnlineTrainer(
        cfg,
        agent or NumpyAgent(cfg),
        env or ToyEnv(obs_dim, cfg.seed),
        replay=replay,
        evaluator=EpisodeEvaluator({cfg.tasks[0]: ToyEnv(obs_dim, cfg.seed + 1)}, 2, cfg.seed),
        logger=Logger(run_dir, console=False, tensorboard=False),
        checkpoints=Checkpointer(run_dir, keep=cfg.keep_checkpoints),
        progress=Progress(Schedule.from_config(cfg), bar=False, every_s=1e9),
        stop=stop,
    )


TIMING = ("wall_time_s", "steps_per_s")


def read_csv(path: Path, timing: bool = False) -> list[dict[str, str]]:
    """The rows of a CSV; without the wall-clock columns unless `timing`."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return rows if timing else [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_the_online_loop_trains_on_batches_of_a_source_that_is_not_the_replay(tmp_path):
    cfg = toy_config("steps=72")
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
    for name in ("train.csv", "eval.csv"):  # wall-clock seconds since the start, and speed
        rows = read_csv(tmp_path / name, timing=True)
        assert list(rows[0])[-2:] == list(TIMING)
        times = [float(r["wall_time_s"]) for r in rows]
        assert times == sorted(times) and times[-1] > 0
        assert all(float(r["steps_per_s"]) > 0 for r in rows[1:])
    assert result["episode_reward"] == pytest.approx(float(evals[-1]["episode_reward"]))

    # checkpoints hold agent and counters; a source without state leaves no replay snapshot
    arrays, meta = load_checkpoint(latest_checkpoint(tmp_path))
    np.testing.assert_array_equal(arrays["w"], agent.w)
    assert meta["loop"]["step"] == 72 and meta["loop"]["updates"] == 71
    assert meta["last_eval"]["step"] == 72
    assert not list((tmp_path / "checkpoints").glob("replay_step_*"))


def test_a_restored_run_continues_exactly_as_the_uninterrupted_one(tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    make_trainer(toy_config("steps=96"), full, make_replay_for(96)).run()
    make_trainer(toy_config("steps=48"), split, make_replay_for(48)).run()
    resumed = make_trainer(toy_config("steps=96"), split, make_replay_for(96))
    resumed.restore()
    assert resumed.state.step == 48
    resumed.run()
    times = [float(r["wall_time_s"]) for r in read_csv(split / "train.csv", timing=True)]
    assert times == sorted(times)  # the clock goes on from the first session's time

    assert_same_run(full, split, 96)


def make_replay_for(steps: int) -> ReplayBuffer:
    replay = make_replay(toy_config(f"steps={steps}"))
    assert isinstance(replay, BatchSource | Replay) and isinstance(replay, Stateful)
    return replay


def test_the_evaluator_reports_each_task_and_their_mean():
    agent = NumpyAgent(toy_config())
    agent.w[:] = 0.3

    def scored(evaluate, step):  # each evaluation with the same agent noise
        agent.rng = np.random.default_rng(0)
        return evaluate(agent, step=step)

    single = EpisodeEvaluator({"a": ToyEnv(5, 0)}, episodes=2, seed=7)
    row = scored(single.evaluate, 24)
    assert list(row) == list(EVAL_METRICS) and row["episode_length"] == EPISODE
    assert row == scored(single.evaluate, 24) != scored(single.evaluate, 48)

    tasks = EpisodeEvaluator({"a": ToyEnv(5, 0), "b": ToyEnv(5, 1)}, 2, 7, {"a": 0, "b": 1})
    per_task = scored(tasks.per_task, 24)
    both = scored(tasks.evaluate, 24)
    assert per_task["a"] == row  # the same seeds in every task's environment
    for key in EVAL_METRICS:
        assert both[f"a/{key}"] == per_task["a"][key] and both[f"b/{key}"] == per_task["b"][key]
        assert both[key] == pytest.approx((per_task["a"][key] + per_task["b"][key]) / 2)


@pytest.mark.parametrize(
    "backend",
    ["torch", pytest.param("jax", marks=pytest.mark.slow)],  # jax: compiles first
)
def test_a_backend_agent_trains_on_the_recorded_episodes(tmp_path, tiny, backend):
    pytest.importorskip(f"mbdpo_{backend}.agent")
    from mbdpo_core.backends import load_backend

    overrides = [*tiny, "eval_freq=36", "eval_episodes=1", "steps=36"]
    cfg = toy_config(*overrides, seed_steps=12, backend=backend)
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


# --- faults: stop requests, kept checkpoints, exact stop, NaN, interrupted writes --------------

FAULT = ["steps=72", "eval_freq=24", "save_every=36"]


def send_signal_after_call(obj, method: str, call: int, sig: signal.Signals) -> None:
    """Make obj.method send `sig` to this process right after its `call`-th call."""
    original, calls = getattr(obj, method), itertools.count(1)

    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        if next(calls) == call:
            os.kill(os.getpid(), sig)
        return out

    setattr(obj, method, wrapped)


def assert_same_run(a: Path, b: Path, step: int) -> None:
    """Same CSV rows (wall-clock aside), same checkpoint at `step`, same replay afterwards."""
    for name in ("eval.csv", "train.csv"):
        assert read_csv(a / name) == read_csv(b / name), name
    arrays_a, meta_a = load_checkpoint(a / "checkpoints" / f"step_{step}")
    arrays_b, meta_b = load_checkpoint(b / "checkpoints" / f"step_{step}")
    for meta in (meta_a, meta_b):
        meta["loop"].pop("elapsed_s")
    assert meta_a == meta_b and arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)
    replays = [make_replay_for(72), make_replay_for(72)]
    for replay, run in zip(replays, (a, b), strict=True):
        load_snapshot(replay, run / "checkpoints", step)
    for _ in range(3):
        x, y = (r.sample(4, 3) for r in replays)
        np.testing.assert_array_equal(x.obs, y.obs)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("full")
    make_trainer(toy_config(*FAULT), run, make_replay_for(72)).run()
    return run


@pytest.mark.parametrize(
    "part, method, call, sig",
    [
        ("env", "step", 5, signal.SIGINT),  # seeding, mid-episode
        ("agent", "update", 3, signal.SIGTERM),  # inside the burst of 24 updates
        ("agent", "update", 40, signal.SIGINT),  # training, mid-episode
        ("eval_env", "step", 30, signal.SIGTERM),  # inside the evaluation at step 24
        ("agent", "state_dict", 3, signal.SIGINT),  # while a checkpoint is written
        ("env", "step", 72, signal.SIGTERM),  # the last step, before its update and final eval
    ],
)
def test_a_stopped_run_checkpoints_and_resumes_exactly(
    tmp_path, uninterrupted, part, method, call, sig
):
    cfg = toy_config(*FAULT)
    trainer = make_trainer(cfg, tmp_path, make_replay_for(72), stop=StopRequest())
    target = {"env": trainer.env, "agent": trainer.agent}.get(part)
    send_signal_after_call(target or trainer.evaluator.envs[cfg.tasks[0]], method, call, sig)
    with trainer.stop, pytest.raises(Interrupted) as stopped:
        trainer.run()
    assert stopped.value.signal == sig.name
    step = trainer.state.step
    assert 0 < step <= 72 and Checkpointer(tmp_path).steps()[-1] == step

    resumed = make_trainer(cfg, tmp_path, make_replay_for(72))
    resumed.restore()
    assert resumed.state.step == step and not resumed.finished
    resumed.run()
    assert resumed.finished
    assert_same_run(uninterrupted, tmp_path, 72)


def test_evaluation_leaves_the_agent_state_as_it_was(tmp_path):
    often, never = tmp_path / "often", tmp_path / "never"
    make_trainer(toy_config(*FAULT), often, make_replay_for(72)).run()
    make_trainer(toy_config("steps=72", "eval_freq=0"), never, make_replay_for(72)).run()
    assert [r["step"] for r in read_csv(often / "eval.csv")] == ["0", "24", "48", "72"]
    assert [r["step"] for r in read_csv(never / "eval.csv")] == ["72"]
    assert read_csv(often / "train.csv") == read_csv(never / "train.csv")


def test_a_run_stops_at_exactly_steps_and_extends_exactly(tmp_path, uninterrupted):
    short = make_trainer(toy_config("steps=30", *FAULT[1:]), tmp_path, make_replay_for(72))
    short.run()
    assert short.state.step == 30  # mid-episode: 2.5 episodes of 12 steps
    assert [r["step"] for r in read_csv(tmp_path / "eval.csv")] == ["0", "24", "30"]
    arrays, _ = load_checkpoint(tmp_path / "checkpoints" / "step_30")
    assert arrays["loop/episode/action"].shape == (6, 1)  # the running episode, 6 steps in

    longer = make_trainer(toy_config(*FAULT), tmp_path, make_replay_for(72))
    longer.restore()
    longer.run()
    (tmp_path / "eval.csv").write_text(  # the extra evaluation at 30 is the only difference
        "".join(line for line in (tmp_path / "eval.csv").open() if not line.startswith("30,"))
    )
    assert_same_run(uninterrupted, tmp_path, 72)


def test_every_kept_checkpoint_resumes_and_a_corrupt_one_names_the_others(tmp_path, uninterrupted):
    cfg = toy_config("steps=72", "eval_freq=24", "save_every=12", "keep_checkpoints=2")
    make_trainer(cfg, tmp_path, make_replay_for(72)).run()
    checkpoints = Checkpointer(tmp_path, keep=2)
    assert checkpoints.steps() == [60, 72] and snapshot_steps(tmp_path / "checkpoints") == [60, 72]

    newest = tmp_path / "checkpoints" / "step_72.safetensors"
    newest.write_bytes(newest.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="resume_from=step_N: step_60"):
        make_trainer(cfg, tmp_path, make_replay_for(72)).restore()

    assert checkpoints.discard_after(60) == [72]
    resumed = make_trainer(cfg, tmp_path, make_replay_for(72))
    resumed.restore(60)
    resumed.run()
    for name in ("eval.csv", "train.csv"):
        assert read_csv(uninterrupted / name) == read_csv(tmp_path / name), name


class NaNEnv(ToyEnv):
    """A simulator that blows up: NaN observations from global step `at` on."""

    def __init__(self, obs_dim: int, seed: int, at: int) -> None:
        super().__init__(obs_dim, seed)
        self.steps, self.at = 0, at

    def step(self, action):
        obs, *rest = super().step(action)
        self.steps += 1
        return (obs * np.nan if self.steps >= self.at else obs), *rest


def test_a_nan_episode_is_refused_and_the_last_checkpoint_still_resumes(tmp_path):
    cfg = toy_config(*FAULT)
    env = NaNEnv(cfg.obs_shape[0], cfg.seed, at=42)
    with pytest.raises(DataFormatError, match="obs"):
        make_trainer(cfg, tmp_path, make_replay_for(72), env=env).run()
    resumed = make_trainer(cfg, tmp_path, make_replay_for(72))
    resumed.restore()
    assert resumed.state.step == 36
    resumed.run()  # the replay holds no NaN: sampling and updates go on
    assert np.isfinite(resumed.agent.w).all()


WRITER = """
import sys, numpy as np
from mbdpo_core.checkpoint import save_checkpoint
arrays = {"x": np.ones(4_000_000, np.float32)}
for i in range(10_000):
    save_checkpoint(sys.argv[1] + f"/checkpoints/step_{i}", arrays, {"i": i})
"""


def test_temporary_files_of_a_killed_write_are_removed_at_the_next_start(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        first = tmp_path / "checkpoints" / "step_0.json"
        while time.monotonic() < deadline:  # one complete checkpoint, and a write under way
            if first.exists() and list(tmp_path.rglob(TEMPORARY_GLOB)):
                break
            time.sleep(0.002)
        child.kill()  # SIGKILL while a temporary file exists: nothing can clean up
    finally:
        child.wait()
    left = list(tmp_path.rglob(TEMPORARY_GLOB))
    assert left, "the writer was not killed inside a write"
    checkpoints = Checkpointer(tmp_path)
    assert sorted(checkpoints.clean()) == sorted(left)
    assert not list(tmp_path.rglob(TEMPORARY_GLOB))
    arrays, meta = load_checkpoint(tmp_path / "checkpoints" / f"step_{checkpoints.steps()[-1]}")
    assert arrays["x"].shape == (4_000_000,)


def acts_and_updates(run_dir: Path, seed_steps: int) -> tuple[list[int], list[int]]:
    """The env steps done when the agent acted (training only) and when each update ran, in a
    40-step ToyEnv run."""
    cfg = toy_config("steps=40", "eval_freq=0", seed_steps=seed_steps)
    events: list[tuple[str, int]] = []  # (what, env steps done when it happened)
    trainer = make_trainer(cfg, run_dir, make_replay_for(40))
    env, agent = trainer.env, trainer.agent
    count = itertools.count(1)
    env_step, act, update = env.step, agent.act, agent.update

    def counted_step(action):
        events.append(("step", next(count)))
        return env_step(action)

    def logged_act(obs, t0, eval_mode, task=None):
        if not eval_mode:
            events.append(("act", len([e for e in events if e[0] == "step"])))
        return act(obs, t0, eval_mode, task)

    def logged_update(batch):
        events.append(("update", len([e for e in events if e[0] == "step"])))
        return update(batch)

    env.step, agent.act, agent.update = counted_step, logged_act, logged_update
    trainer.run()
    acts = [n for what, n in events if what == "act"]
    return acts, [n for what, n in events if what == "update"]


def test_the_online_schedule_is_the_published_one(tmp_path):
    """Random actions up to and including step seed_steps, where a burst of seed_steps updates
    follows; then one act and one update per step (anatomy: `act if step > seed_steps`)."""
    acts, updates = acts_and_updates(tmp_path, seed_steps=24)
    assert acts == list(range(25, 40))  # the agent first acts for the step after seed_steps
    assert updates == [25] * 24 + list(range(26, 41))  # after step 25 (index 24): the burst


def test_without_seeding_the_agent_acts_from_the_start_and_updates_after_an_episode(tmp_path):
    """seed_steps=0 (fine-tuning, as published): no random step, no burst; one update per step
    from the first step of episode 2, when the replay holds episode 1."""
    acts, updates = acts_and_updates(tmp_path, seed_steps=0)
    assert acts == list(range(40))
    assert updates == list(range(EPISODE + 1, 41))
