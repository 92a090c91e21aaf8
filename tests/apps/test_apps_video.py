"""Videos during training, end to end: a short cartpole run with video_every films its
evaluations into `<run_dir>/videos/step_<N>.mp4` (384x384, the task's camera) and TensorBoard,
and a bad video_every is one line before anything is written."""

from pathlib import Path

import numpy as np
import pytest
from app_runs import TINY_MODEL, rows, run_app

RUN = [
    "task=cartpole-balance",
    *TINY_MODEL,
    "planner=policy",  # cheap episodes
    "seed_steps=500",  # the least cartpole allows (one episode)
    "steps=510",
    "eval_freq=510",
    "video_every=510",  # evaluations at steps 0 and 510, both filmed
    "eval_episodes=1",
    "save_every=0",
]


def read_video(path: Path) -> np.ndarray:
    import imageio.v2 as imageio

    reader = imageio.get_reader(path)
    try:
        return np.stack(list(reader.iter_data()))
    finally:
        reader.close()


@pytest.mark.slow  # 2 x 501 frames rendered at 384x384: about 25 s each on a CPU-only machine
def test_training_films_its_evaluations_into_mp4_and_tensorboard(tmp_path):
    pytest.importorskip("mbdpo_torch.agent")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    out = run_app("train", "--backend", "torch", *RUN, f"run_dir={run}")
    assert out.returncode == 0, out.stderr[-3000:]
    evaluations = rows(run / "eval.csv")
    assert [int(r["step"]) for r in evaluations] == [0, 510]
    assert sorted(p.name for p in (run / "videos").iterdir()) == ["step_0.mp4", "step_510.mp4"]
    for row in evaluations:
        frames = read_video(run / "videos" / f"step_{row['step']}.mp4")
        # the reset and every step of the filmed episode, the one whose return was logged
        assert len(frames) == float(row["episode_length"]) + 1 == 501
        assert frames.shape[1:] == (384, 384, 3)
        assert frames[0].std() > 10  # a scene, not a blank image
        assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 0.5  # the cart or pole moved

    events = EventAccumulator(str(run), size_guidance={"images": 0}).Reload()
    assert events.Tags()["images"] == ["eval/video"]
    images = events.Images("eval/video")
    assert [image.step for image in images] == [0, 510]
    for image in images:
        assert image.encoded_image_string[:6] == b"GIF89a"
        assert (image.height, image.width) == (96, 96)
        assert len(image.encoded_image_string) < 200_000  # a small event file


def test_a_bad_video_every_is_one_line_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    bad = [*RUN[:-3], "video_every=700", "eval_episodes=1", "save_every=0"]
    out = run_app("train", "--backend", "torch", *bad, f"run_dir={run}")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: Invalid video_every=700: must be a multiple of eval_freq=510 (videos film "
        "evaluation episodes), e.g. video_every=510, or 0 (no videos)."
    )
    assert not run.exists()
