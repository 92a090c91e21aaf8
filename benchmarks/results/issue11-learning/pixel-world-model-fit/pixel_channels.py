"""Does a wider pixel encoder fit cartpole-swingup's rewards sooner? Torch updates (1 thread) of a
fresh CPU-preset agent on the replay of the JAX pixel run at step 7,500
(/work/learning/cartpole-swingup-rgb-jax-seed1, the run of ../cartpole-swingup-rgb-jax-seed1-*),
latent_dim 128 (num_channels 8, the CPU preset) against 512 (num_channels 32, the published
encoder); the mean reward, consistency and value losses of every 100 updates.

Usage: python pixel_channels.py LATENT_DIM UPDATES   (channels-8.log: 128 1500, channels-32.log:
512 1500)
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

torch.set_num_threads(1)
latent, updates = int(sys.argv[1]), int(sys.argv[2])
overrides = ["task=cartpole-swingup", "obs=rgb", "preset=cpu", f"latent_dim={latent}", "seed=1"]
cfg = load_config(overrides, backend="torch")
saved = json.load(open(f"{RUN}/config.json"))
replay = make_replay(dataclasses.replace(cfg, buffer_size=saved["buffer_size"]))
load_snapshot(replay, f"{RUN}/checkpoints", 7500)
agent = Agent(cfg)
print("num_channels", cfg.num_channels, "latent", cfg.latent_dim, flush=True)
start, rows = time.time(), []
for i in range(1, updates + 1):
    m = agent.update(replay.sample(cfg.batch_size, cfg.horizon))
    rows.append((m["reward_loss"], m["consistency_loss"], m["value_loss"]))
    if i % 100 == 0:
        r = np.mean(rows[-100:], axis=0)
        seconds = time.time() - start
        print(
            f"{i} train reward {r[0]:.4f} consistency {r[1]:.5f} value {r[2]:.4f}  {seconds:.0f}s",
            flush=True,
        )
