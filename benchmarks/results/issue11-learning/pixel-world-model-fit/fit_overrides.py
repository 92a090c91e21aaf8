"""Fit a fresh CPU-preset torch world model to the JAX pixel run's replay at step 7,500 with extra
overrides; print the mean reward and consistency losses of every 100 updates, and the share of
the learnable reward information explained (../../../reward_fit.py: for this replay the best
constant prediction scores 0.587 and a perfect model 0.255).

Usage: python fit_overrides.py UPDATES [key=value ...]   (enc-lr-scale-1.log: 1500 enc_lr_scale=1;
batch-256.log: 1000 batch_size=256)
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
MARGINAL, FLOOR = 0.587, 0.255
torch.set_num_threads(1)
updates, extra = int(sys.argv[1]), sys.argv[2:]
cfg = load_config(
    ["task=cartpole-swingup", "obs=rgb", "preset=cpu", "seed=1", *extra], backend="torch"
)
saved = json.load(open(f"{RUN}/config.json"))
replay = make_replay(dataclasses.replace(cfg, buffer_size=saved["buffer_size"]))
load_snapshot(replay, f"{RUN}/checkpoints", 7500)
agent = Agent(cfg)
print("overrides", extra, flush=True)
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
