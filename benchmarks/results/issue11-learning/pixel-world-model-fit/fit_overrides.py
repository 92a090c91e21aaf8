"""Fit a fresh CPU-preset torch world model to the JAX pixel run's replay (at step 7,500 or
20,000) with extra overrides; print the mean reward and consistency losses of every 100 updates
and the share of the learnable reward information explained (../../../reward_fit.py; `LEVELS`).

Usage: python fit_overrides.py [--no-shift] UPDATES [SNAPSHOT_STEP] [key=value ...]
(the replay at 7,500 steps by default; enc-lr-scale-1.log: 1500 enc_lr_scale=1; batch-256.log:
1000 batch_size=256). `--no-shift` trains on unshifted observations (the update's random shift
replaced by the identity): a diagnostic, not a setting of the project (no-shift-20k.log:
`--no-shift 3000 20000`, beside shift-20k.log: `3000 20000`).
"""

import dataclasses
import json
import sys
import time

import numpy as np
import torch
from mbdpo_core.config import load_config
from mbdpo_core.loops import make_replay
from mbdpo_core.replay_snapshots import load_snapshot
from mbdpo_torch import Agent

RUN = "/work/learning/cartpole-swingup-rgb-jax-seed1"
LEVELS = {7500: (0.587, 0.255), 20000: (0.660, 0.258)}
"""Snapshot step -> (best constant prediction, perfect model), ../reward-fit.txt."""
torch.set_num_threads(1)
args = sys.argv[1:]
no_shift = args[0] == "--no-shift"
args = args[1:] if no_shift else args
snapshot = int(args.pop(1)) if len(args) > 1 and args[1].isdigit() else 7500
updates, extra = int(args[0]), args[1:]
MARGINAL, FLOOR = LEVELS[snapshot]
if no_shift:
    import mbdpo_torch.losses

    mbdpo_torch.losses.random_shift = lambda obs, shift: obs
cfg = load_config(
    ["task=cartpole-swingup", "obs=rgb", "preset=cpu", "seed=1", *extra], backend="torch"
)
saved = json.load(open(f"{RUN}/config.json"))
replay = make_replay(dataclasses.replace(cfg, buffer_size=saved["buffer_size"]))
load_snapshot(replay, f"{RUN}/checkpoints", snapshot)
agent = Agent(cfg)
print("snapshot", snapshot, "overrides", extra, "no shift" if no_shift else "", flush=True)
start, rows = time.time(), []
for i in range(1, updates + 1):
    m = agent.update(replay.sample(cfg.batch_size, cfg.horizon))
    rows.append((m["reward_loss"], m["consistency_loss"]))
    if i % 100 == 0:
        r = np.mean(rows[-100:], axis=0)
        explained = (MARGINAL - r[0]) / (MARGINAL - FLOOR)
        seconds = time.time() - start
        print(
            f"{i} reward {r[0]:.4f} explained {explained:.2f}",
            f"consistency {r[1]:.5f} {seconds:.0f}s",
            flush=True,
        )
