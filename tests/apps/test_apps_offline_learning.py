"""apps/train mode=offline learns: on generated mt30 data whose reward is a known function of
the observation and the action, a short run lowers the reward and value losses and its reward
head ranks actions of held-out states correctly (the check of benchmarks/offline.py learning,
smaller: 300 updates of the CPU preset's model size 1, batch 64). One backend: the loop is core
code and the two backends' updates are parity-tested; benchmarks/offline.py learning runs both."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from offline import (  # noqa: E402
    LEARNING,
    heldout_ranking,
    loss_windows,
    reward_episodes,
    run_app,
    write_dataset,
)


@pytest.mark.slow
def test_a_short_offline_run_learns_a_reward_that_depends_on_the_action(tmp_path):
    backend = "torch"
    data = write_dataset(tmp_path, "mt30", episodes=40, seed=0)
    run_dir = tmp_path / "run"
    args = [f"--backend={backend}", *LEARNING, "steps=300", "log_freq=50"]
    run_app("train", [*args, f"data_dir={data}", f"run_dir={run_dir}"], tmp_path / "train.log")

    losses = loss_windows(run_dir)
    for name in ("reward_loss", "value_loss"):
        assert losses[name]["end"] < 0.85 * losses[name]["start"], losses
    ranks = heldout_ranking(run_dir, reward_episodes("mt30", 8, seed=1), 512, 16)
    assert ranks["reward"]["spearman"] > 0.3, ranks
    assert ranks["reward"]["top1"] > 2 * ranks["chance_top1"], ranks
