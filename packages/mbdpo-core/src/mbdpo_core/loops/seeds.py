"""Reset seeds of episodes: a function of (run seed, stream, index), never of history
(docs/design.md#loops), so a resumed run resets its environments exactly as an uninterrupted
one would have."""

from __future__ import annotations

import numpy as np

__all__ = ["TRAIN", "EVAL", "episode_seed"]

TRAIN, EVAL = 0, 1
"""Streams: training episodes and evaluation episodes."""


def episode_seed(seed: int, stream: int, index: int) -> int:
    """The reset seed of episode `index` of `stream` (TRAIN or EVAL) in a run seeded `seed`."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])
