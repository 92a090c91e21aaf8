"""Reset seeds of episodes: a function of (run seed, stream, index), never of history
(docs/design.md#loops), so a resumed run resets its environments exactly as an uninterrupted
one would have."""

from __future__ import annotations

import numpy as np

__all__ = ["TRAIN", "EVAL", "ENVS", "episode_seed", "env_seed"]

TRAIN, EVAL, ENVS = 0, 1, 2
"""Streams: training episodes, evaluation episodes, construction of vectorised environments."""


def episode_seed(seed: int, stream: int, index: int) -> int:
    """The reset seed of episode `index` of `stream` (TRAIN or EVAL) in a run seeded `seed`."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def env_seed(seed: int, index: int) -> int:
    """The construction seed of environment `index` of a vectorised run seeded `seed` (its
    episodes are reset with their own `episode_seed`s; docs/design.md#vectorised-acting)."""
    return episode_seed(seed, ENVS, index)
