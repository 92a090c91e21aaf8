"""How often the cart is in the camera's view in the JAX pixel run's replay (cartpole-swingup,
rgb: DMControl's fixed camera 0, as published, sees only the middle of the rail), and the mean
reward with the cart in view and out of it, per block of replay rows.

The cart is "in view" when the newest frame of a stack has at least 6 of the cart's orange
pixels in the rows around the rail (rows 10-40 of 64). The check is first run on frames
rendered here: the cart starting in the middle, then driven right at full force (in view at
0 and 20 steps, leaving the view by 40-60).

Usage: python cart_in_view.py [RUN_DIR]   (default /work/learning/cartpole-swingup-rgb-jax-seed1)
"""

import sys
from pathlib import Path

import numpy as np
from mbdpo_envs import make
from safetensors.numpy import load_file

RUN = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/learning/cartpole-swingup-rgb-jax-seed1")


def cart_in_view(frames: np.ndarray) -> np.ndarray:
    """frames [N, 3, 64, 64] uint8 (RGB, channel-first) -> [N] bool."""
    r, g, b = (frames[:, c].astype(np.int16) for c in range(3))
    orange = (r > 150) & (g > 80) & (g < 200) & (b < 120)
    return orange[:, 10:40, :].sum((1, 2)) >= 6


env = make("cartpole-swingup", seed=1, obs="rgb")
obs, _ = env.reset(seed=1)
rendered = [obs[-3:]]
for t in range(1, 61):
    obs, *_ = env.step(np.ones(1, np.float32))
    if t % 20 == 0:
        rendered.append(obs[-3:])
print("rendered, full force right, at 0/20/40/60 steps: in view", cart_in_view(np.stack(rendered)))

blocks = sorted(
    (RUN / "checkpoints" / "replay").glob("rows_*.safetensors"),
    key=lambda p: int(p.name.split("_")[1]),
)
views, rewards = [], []
for path in blocks:
    arrays = load_file(path)
    view = cart_in_view(arrays["obs"][:, -3:])
    reward = arrays["reward"].astype(np.float64).ravel()  # NaN on an episode's first row
    views.append(view)
    rewards.append(reward)
    first, last = path.name.split("_")[1:3]
    print(
        f"rows {first:>5}-{last:>5}: cart in view {view.mean():.2f}, mean reward in view "
        f"{np.nanmean(reward[view]):.3f}, out of view {np.nanmean(reward[~view]):.3f}"
    )
view, reward = np.concatenate(views), np.concatenate(rewards)
print(
    f"all {len(view)} rows: cart in view {view.mean():.2f}, mean reward in view "
    f"{np.nanmean(reward[view]):.3f}, out of view {np.nanmean(reward[~view]):.3f}"
)
