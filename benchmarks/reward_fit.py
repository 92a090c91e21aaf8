"""How much of the learnable reward information has a run's world model fitted?

The logged reward loss (docs/method.md#world-model-loss) is a soft cross-entropy against
two-hot targets, weighted over the horizon. Two reference levels follow from the replay's own
rewards alone:
- `marginal`: the loss of the best constant prediction (the mean two-hot target), which a model
  that ignores its input reaches;
- `floor`: the mean entropy of the two-hot targets, which a perfect model reaches.
`explained = (marginal - loss) / (marginal - floor)` is 0 for a model that sees nothing of the
state and 1 for a perfect one. Both levels use the rewards stored up to each logged step, so
they move as the replay grows.

Usage: python benchmarks/reward_fit.py RUN_DIR [RUN_DIR...]   (reads config.json, train.csv and
the newest replay snapshot under checkpoints/; prints one table per run)
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from mbdpo_core.checkpoint import latest_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.reference import math as ref
from safetensors import safe_open


def replay_rewards(run: Path) -> np.ndarray:
    """Rewards of the newest replay snapshot, in row order (NaN in each episode's first row)."""
    step = int(latest_checkpoint(run).name.removeprefix("step_"))
    index = json.loads((run / "checkpoints" / f"replay_step_{step}.json").read_text())
    parts = []
    for name, _, _ in index["meta"]["segments"]:
        with safe_open(run / "checkpoints" / "replay" / f"{name}.safetensors", "np") as f:
            parts.append(f.get_tensor("reward"))
    return np.concatenate(parts).astype(np.float64)


def reference_levels(rewards: np.ndarray, cfg) -> tuple[float, float]:
    """(marginal, floor) per-step cross-entropies of finite rewards, in nats."""
    targets = ref.two_hot(rewards[np.isfinite(rewards)][:, None], cfg=cfg)
    mean = targets.mean(axis=0)
    marginal = -np.sum(mean * np.log(np.clip(mean, 1e-12, None)))
    floor = -np.mean(np.sum(targets * np.log(np.clip(targets, 1e-12, None)), axis=1))
    return float(marginal), float(floor)


def report(run: Path) -> None:
    saved = json.loads((run / "config.json").read_text())
    cfg = load_config([f"task={saved['task']}", f"obs={saved['obs']}", f"rho={saved['rho']}"])
    weight = float(np.mean(saved["rho"] ** np.arange(saved["horizon"])))  # horizon weighting
    rewards = replay_rewards(run)
    (length,) = saved["episode_lengths"]  # one task
    rows_per_step = (length + 1) / length  # an episode stores its first observation too
    print(f"\n{run.name}: step, logged reward loss, marginal, floor, explained")
    with open(run / "train.csv", newline="") as f:
        for row in csv.DictReader(f):
            if not row["reward_loss"]:
                continue
            step = int(row["step"])
            marginal, floor = reference_levels(rewards[: int(step * rows_per_step)], cfg)
            loss = float(row["reward_loss"])
            explained = (marginal * weight - loss) / ((marginal - floor) * weight)
            print(
                f"{step:>6}  {loss:.3f}  {marginal * weight:.3f}  {floor * weight:.3f}  "
                f"{explained:5.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    for run in parser.parse_args().runs:
        report(run)


if __name__ == "__main__":
    main()
