"""Random-shift augmentation of rgb observations (docs/method.md#augmentation; oracle:
mbdpo_core.reference.augment).

Replicate-pad by SHIFT_PAD pixels and crop at an integer offset (dx, dy) in [0, 2 SHIFT_PAD]
per image. The update applies it to every encoded observation of the batch
(UpdateNoise.obs_shift); the agent's act shifts its observation too (the plan bundle's
obs_shift) unless obs_shift=update (`acting_obs`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from mbdpo_core.config.schema import Config
from mbdpo_core.noise import SHIFT_PAD


def random_shift(obs: jax.Array, shift: jax.Array, pad: int = SHIFT_PAD) -> jax.Array:
    """out[..., c, i, j] = obs[..., c, clip(i + dy - pad), clip(j + dx - pad)], (dx, dy) = shift.

    Two gathers on the original dtype (uint8 stays uint8); (pad, pad) is the identity.
    Shapes: obs [..., C, S, S], shift [..., 2] int in [0, 2 pad] -> [..., C, S, S].
    """
    h, w = obs.shape[-2:]
    shift = shift.astype(jnp.int32)
    rows = jnp.clip(jnp.arange(h) + shift[..., 1:2] - pad, 0, h - 1)  # [..., S]
    cols = jnp.clip(jnp.arange(w) + shift[..., 0:1] - pad, 0, w - 1)  # [..., S]
    out = jnp.take_along_axis(obs, rows[..., None, :, None], axis=-2, mode="clip")
    return jnp.take_along_axis(out, cols[..., None, None, :], axis=-1, mode="clip")


def acting_obs(cfg: Config, obs: jax.Array, shift: Any) -> jax.Array:
    """The observation act encodes: shifted by the plan bundle's obs_shift when obs=rgb and
    obs_shift=always (training and evaluation alike, as published), else obs as it is.

    Shapes: obs [O] (rgb: [C, S, S]), shift [2] int or None -> obs's shape.
    """
    if not cfg.shifts_when_acting:
        return obs
    if shift is None:
        raise ValueError("obs=rgb with obs_shift=always needs the plan bundle's obs_shift [2].")
    return random_shift(obs, shift)
