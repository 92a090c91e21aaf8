"""Evaluation videos: mp4s written atomically, their TensorBoard GIFs read back from the event
file, which evaluations are filmed (online and offline loops), and a resumed run dropping the
videos of later steps. A short numpy environment that draws its state stands in for a
simulator (tests/apps films cartpole)."""

from __future__ import annotations

import dataclasses
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.config import load_config
from mbdpo_core.errors import ConfigError, MissingExtraError
from mbdpo_core.logger import Logger
from mbdpo_core.loops import (
    EVAL,
    Checkpointer,
    EpisodeEvaluator,
    OfflineTrainer,
    OnlineTrainer,
    Progress,
    Schedule,
    episode_seed,
    make_replay,
)
from mbdpo_core.loops.offline import offline_schedule
from mbdpo_core.video import (
    EpisodeVideo,
    discard_videos_after,
    preview_gif,
    video_due,
    video_path,
    video_steps,
)

imageio = pytest.importorskip("imageio.v2")

EPISODE = 12
SIZE = 384
SQUARE = 64


def square_at(x: int, size: int = SIZE) -> np.ndarray:
    """A dark frame with a bright SQUARE x SQUARE square whose left edge is at column x."""
    frame = np.full((size, size, 3), 40, np.uint8)
    frame[size // 2 - SQUARE // 2 : size // 2 + SQUARE // 2, x : x + SQUARE] = (230, 180, 60)
    return frame


def square_column(frame: np.ndarray) -> int:
    """The left edge of the bright square in a (decoded) frame."""
    return int(np.argmax(frame[frame.shape[0] // 2, :, 0] > 135))


class FilmedEnv:
    """Episodes of EPISODE steps; the observation drifts with the action plus seeded noise, and
    render() draws obs[0] as the square's position."""

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
        return self.obs.copy(), float(-abs(self.obs[0])), False, self.t == EPISODE, {}

    def render(self, width: int, height: int) -> np.ndarray:
        assert width == height == SIZE
        return square_at(self.column(self.obs))

    def close(self) -> None:
        """Nothing to release."""

    @staticmethod
    def column(obs: np.ndarray) -> int:
        return int((np.tanh(obs[0]) + 1) / 2 * (SIZE - SQUARE))


class NumpyAgent:
    """Acts from a learnt weight vector plus its own seeded noise; learns batch means."""

    def __init__(self, cfg) -> None:
        self.w = np.zeros(cfg.obs_shape[0], np.float32)
        self.rng = np.random.default_rng(cfg.seed)

    def act(self, obs, t0, eval_mode, task=None):
        return np.tanh([float(self.w @ obs) + 0.5 * self.rng.standard_normal()]).astype(np.float32)

    def update(self, batch: Batch) -> dict[str, float]:
        self.w = (0.99 * self.w + 0.01 * batch.obs.mean(axis=(0, 1))).astype(np.float32)
        return {"w_norm": float(self.w @ self.w)}

    def state_dict(self):
        return {"w": self.w.copy()}, {"backend": "numpy", "rng": self.rng.bit_generator.state}

    def load_state_dict(self, arrays, meta):
        self.w = arrays["w"].copy()
        self.rng.bit_generator.state = meta["rng"]


def read_video(path: Path) -> np.ndarray:
    """Every frame of an mp4, decoded by imageio's own ffmpeg reader."""
    reader = imageio.get_reader(path)
    try:
        return np.stack(list(reader.iter_data()))
    finally:
        reader.close()


def video_images(run_dir: Path) -> dict[str, list]:
    """TensorBoard image events of a run directory: tag -> [(step, image proto)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"images": 0}).Reload()
    return {tag: [(e.step, e) for e in events.Images(tag)] for tag in events.Tags()["images"]}


def gif_frames(data: bytes) -> tuple[list[np.ndarray], dict]:
    from PIL import Image, ImageSequence

    image = Image.open(io.BytesIO(data))
    frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)]
    return frames, image.info


# ----- the mp4 and its preview ----------------------------------------------------------------
def test_an_episode_video_is_published_whole_or_not_at_all(tmp_path):
    columns = [8 * i for i in range(20)]
    with EpisodeVideo(tmp_path / "videos" / "a.mp4") as film:
        for x in columns:
            film.add(square_at(x))
    frames = read_video(tmp_path / "videos" / "a.mp4")
    assert frames.shape == (20, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert [square_column(f) for f in frames] == pytest.approx(columns, abs=2)
    assert [p.name for p in (tmp_path / "videos").iterdir()] == ["a.mp4"]  # no temporary left

    with pytest.raises(RuntimeError, match="stopped"), EpisodeVideo(tmp_path / "b.mp4") as film:
        film.add(square_at(0))
        raise RuntimeError("stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["videos"]


def test_the_tensorboard_preview_is_a_small_gif_at_the_videos_speed(tmp_path):
    with EpisodeVideo(tmp_path / "a.mp4") as film:
        for i in range(101):
            film.add(square_at(3 * i))
    data, height, width = preview_gif(tmp_path / "a.mp4")
    frames, info = gif_frames(data)
    assert data[:6] == b"GIF89a" and (height, width) == (96, 96)
    assert len(frames) == 26  # frames 0, 4, ..., 100
    assert all(f.shape == (96, 96, 3) for f in frames)
    assert info["duration"] == 130 and info["loop"] == 0  # 4/30 s, in hundredths
    # the square (16 preview pixels wide) moved 12 preview pixels per kept frame
    assert [square_column(f) for f in frames] == pytest.approx([3 * i for i in range(26)], abs=1)


def test_which_evaluations_are_filmed_and_where():
    filmed = [
        s
        for s, prev in ((0, None), (5, 0), (10, 5), (15, 10), (20, 15))
        if video_due(10, s, prev, 20)
    ]
    assert filmed == [0, 10, 20]
    assert video_due(10, 13, 7, 100)  # the first evaluation after passing 10
    assert not video_due(10, 17, 13, 100)
    assert video_due(10, 17, 13, 17)  # the run's last evaluation
    assert not video_due(0, 0, None, 10)
    assert video_path("v", 300) == Path("v/step_300.mp4")
    assert video_path("v", 300, "walker-walk") == Path("v/step_300-walker-walk.mp4")


def test_discarding_the_videos_after_a_step_keeps_the_rest(tmp_path):
    names = ["step_0.mp4", "step_10.mp4", "step_10-mw-reach.mp4", "step_20-mw-reach.mp4"]
    for name in [*names, "notes.txt", "step_30.gif"]:
        (tmp_path / name).write_bytes(b"x")
    assert set(video_steps(tmp_path).values()) == {0, 10, 20}
    removed = discard_videos_after(tmp_path, 10)
    assert [p.name for p in removed] == ["step_20-mw-reach.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["step_0.mp4", "step_10.mp4", "step_10-mw-reach.mp4", "notes.txt", "step_30.gif"]
    )
    assert discard_videos_after(tmp_path / "missing", 0) == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["video_every=-1"], "Invalid video_every=-1: must be >= 0 (0 = never)."),
        (
            ["eval_freq=10000", "video_every=15000"],
            "Invalid video_every=15000: must be a multiple of eval_freq=10000 (videos film "
            "evaluation episodes), e.g. video_every=20000, or 0 (no videos).",
        ),
        (["eval_freq=0", "video_every=5000"], "Invalid video_every=5000 with eval_freq=0"),
        (["video_every=yes"], "video_every must be an integer, got 'yes'."),
    ],
)
def test_a_bad_video_every_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_videos_without_their_extra_are_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed
    with pytest.raises(MissingExtraError) as err:
        load_config(["eval_freq=5000", "video_every=5000"])
    assert str(err.value) == (
        "video_every=5000 writes mp4 videos with the extra mbdpo-core[video], whose "
        "imageio_ffmpeg is not installed: `uv sync` (pip: `pip install 'mbdpo-core[video]'`)."
    )
    assert load_config(["eval_freq=5000"]).video_every == 0  # no videos, no need


def test_the_logger_writes_the_video_as_a_tensorboard_gif(tmp_path):
    with EpisodeVideo(tmp_path / "a.mp4") as film:
        for i in range(9):
            film.add(square_at(10 * i))
    log = Logger(tmp_path / "run", console=False)
    log.log_video("eval/video", 250, tmp_path / "a.mp4")
    log.close()
    ((step, image),) = video_images(tmp_path / "run")["eval/video"]
    frames, _ = gif_frames(image.encoded_image_string)
    assert step == 250 and (image.height, image.width) == (96, 96)
    assert len(frames) == 3 and square_column(frames[2]) == pytest.approx(20, abs=1)
    quiet = Logger(tmp_path / "quiet", console=False, tensorboard=False)
    quiet.log_video("eval/video", 1, tmp_path / "a.mp4")
    assert not list((tmp_path / "quiet").iterdir())


# ----- the loops ------------------------------------------------------------------------------
ONLINE = [
    "task=cartpole-balance",  # O = 5, A = 1
    "preset=cpu",
    "steps=72",
    "eval_freq=24",
    "video_every=48",
    "eval_episodes=2",
    "save_every=24",
    "keep_checkpoints=0",
    "batch_size=4",
    "horizon=3",
]


def online_trainer(cfg, run_dir: Path) -> OnlineTrainer:
    obs_dim = cfg.obs_shape[0]
    return OnlineTrainer(
        cfg,
        NumpyAgent(cfg),
        FilmedEnv(obs_dim, cfg.seed),
        replay=make_replay(cfg),
        evaluator=EpisodeEvaluator({cfg.task: FilmedEnv(obs_dim, cfg.seed + 1)}, 2, cfg.seed),
        logger=Logger(run_dir, console=False),
        checkpoints=Checkpointer(run_dir, keep=0),
        progress=Progress(Schedule.from_config(cfg), bar=False, every_s=1e9),
        videos=run_dir / "videos",
    )


def first_eval_column(cfg, step: int) -> int:
    """Where the square is at the reset of the first evaluation episode at loop step `step`."""
    env = FilmedEnv(cfg.obs_shape[0], 0)
    obs, _ = env.reset(seed=episode_seed(episode_seed(cfg.seed, EVAL, step), EVAL, 0))
    return FilmedEnv.column(obs)


def test_the_online_loop_films_every_video_every_steps_and_the_end(tmp_path):
    # seed_steps below cartpole's episode length, which load_config rightly refuses for it
    cfg = dataclasses.replace(load_config(ONLINE), seed_steps=24)
    online_trainer(cfg, tmp_path).run()

    evaluated = [
        int(line.split(",")[0]) for line in (tmp_path / "eval.csv").read_text().split()[1:]
    ]
    assert evaluated == [0, 24, 48, 72]
    videos = tmp_path / "videos"
    assert sorted(p.name for p in videos.iterdir()) == ["step_0.mp4", "step_48.mp4", "step_72.mp4"]
    for step in (0, 48, 72):
        frames = read_video(videos / f"step_{step}.mp4")
        assert frames.shape == (EPISODE + 1, SIZE, SIZE, 3)  # the reset and every step
        assert square_column(frames[0]) == pytest.approx(first_eval_column(cfg, step), abs=2)
        assert len({square_column(f) for f in frames}) > 1  # the square moves
    images = video_images(tmp_path)
    assert list(images) == ["eval/video"]
    assert [step for step, _ in images["eval/video"]] == [0, 48, 72]


def test_a_resumed_run_drops_the_videos_after_its_checkpoint_and_films_them_again(tmp_path):
    cfg = dataclasses.replace(load_config(ONLINE), seed_steps=24)
    online_trainer(cfg, tmp_path).run()
    videos = tmp_path / "videos"
    before = {name: read_video(videos / name) for name in ("step_48.mp4", "step_72.mp4")}

    resumed = online_trainer(cfg, tmp_path)
    resumed.restore(24)
    assert sorted(p.name for p in videos.iterdir()) == ["step_0.mp4"]
    resumed.run()
    assert sorted(p.name for p in videos.iterdir()) == ["step_0.mp4", "step_48.mp4", "step_72.mp4"]
    for name, frames in before.items():  # an exact resumption films the same episodes
        np.testing.assert_array_equal(read_video(videos / name), frames, err_msg=name)
    steps = [step for step, _ in video_images(tmp_path)["eval/video"]]
    assert steps == [0, 48, 72]  # the first session's later GIFs are purged on reading


class SeededBatches:
    """Batch k drawn from default_rng((seed, k))."""

    def __init__(self, cfg) -> None:
        self.cfg, self.drawn = cfg, 0

    def sample(self, batch_size: int, horizon: int) -> Batch:
        rng = np.random.default_rng((0, self.drawn))
        self.drawn += 1
        H, B, A = horizon, batch_size, self.cfg.action_dim
        return Batch(
            obs=rng.standard_normal((H + 1, B, self.cfg.obs_shape[0])).astype(np.float32),
            action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
            reward=rng.standard_normal((H, B, 1)).astype(np.float32),
            terminated=np.zeros((H, B, 1), np.float32),
            task=rng.integers(0, 80, B),
        )


def test_the_offline_loop_films_each_evaluated_task(tmp_path):
    cfg = load_config(
        [
            "task=mt80",
            "mode=offline",
            "data_dir=unused",
            "preset=cpu",
            "steps=10",
            "log_freq=5",
            "eval_freq=5",
            "video_every=10",
            "eval_episodes=1",
            "batch_size=4",
            "horizon=3",
            "eval_tasks='walker-walk mw-reach'",
        ]
    )
    obs_dim = cfg.obs_shape[0]
    envs = {task: FilmedEnv(obs_dim, i) for i, task in enumerate(cfg.evaluated_tasks)}
    ids = {task: cfg.tasks.index(task) for task in cfg.evaluated_tasks}
    OfflineTrainer(
        cfg,
        NumpyAgent(cfg),
        SeededBatches(cfg),
        EpisodeEvaluator(envs, 1, cfg.seed, ids),
        Logger(tmp_path, console=False),
        Checkpointer(tmp_path),
        progress=Progress(offline_schedule(cfg), bar=False, every_s=1e9),
        videos=tmp_path / "videos",
    ).run()

    names = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert names == [f"step_{s}-{t}.mp4" for s in (0, 10) for t in ("mw-reach", "walker-walk")]
    for name in names:
        assert read_video(tmp_path / "videos" / name).shape == (EPISODE + 1, SIZE, SIZE, 3)
    images = video_images(tmp_path)
    assert sorted(images) == ["eval/mw-reach/video", "eval/walker-walk/video"]
    assert all([s for s, _ in events] == [0, 10] for events in images.values())


@pytest.mark.slow  # a worker process importing torch; 2 x 501 cartpole frames rendered on a CPU
def test_a_worker_process_films_the_episode_this_process_films(tmp_path, tiny):
    pytest.importorskip("mbdpo_torch")
    pytest.importorskip("mbdpo_envs.dmc")
    from mbdpo_core.loops import TaskEvaluator
    from mbdpo_envs import make_agent_env
    from mbdpo_torch import Agent

    cfg = load_config([*tiny, "task=cartpole-balance", "planner=policy"], backend="torch")
    agent = Agent(cfg)
    results = {}
    for workers in (1, 2):  # 2: one spawned process (there is one task)
        path = tmp_path / f"{workers}.mp4"
        with TaskEvaluator(cfg, [cfg.task], 1, make_agent_env, workers) as evaluator:
            results[workers] = evaluator.per_task(agent, 7, videos={cfg.task: path})
    assert results[1] == results[2]
    here, there = read_video(tmp_path / "1.mp4"), read_video(tmp_path / "2.mp4")
    assert here.shape == (results[1][cfg.task]["episode_length"] + 1, SIZE, SIZE, 3)
    np.testing.assert_array_equal(here, there)
