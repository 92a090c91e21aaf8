"""A bad video_every is one line before anything is written. (A short filmed training run,
its mp4 files and TensorBoard GIFs, is README's video command, run and checked by
tests/docs_commands.)"""

from app_runs import TINY_MODEL, run_app

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
