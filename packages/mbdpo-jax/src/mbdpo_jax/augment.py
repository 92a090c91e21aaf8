"""Random-shift augmentation of rgb observations (mbdpo_core.reference.augment is the oracle).

Replicate-pad by 3 pixels and crop 64 x 64 at an integer offset (dx, dy) in [0, 6] per image,
given by UpdateNoise.obs_shift. Applied in the update only (to every encoded observation of the
batch: obs[0] and obs[1:], independently per sample and time step), never when acting.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from mbdpo_core.noise import SHIFT_PAD


def random_shift(obs: jax.Array, shift: jax.Array, pad: int = SHIFT_PAD) -> jax.Array:
    """out[..., c, i, j] = obs[..., c, clip(i + dy - pad), clip(j + dx - pad)], (dx, dy) = shift.

    Two gathers on the original dtype (uint8 stays uint8). (pad, pad) is the identity.
    Shapes: obs [..., C, S, S], shift [..., 2] int in [0, 2 pad] -> [..., C, S, S].
    """
    h, w = obs.shape[-2:]
    shift = shift.astype(jnp.int32)
    rows = jnp.clip(jnp.arange(h) + shift[..., 1:2] - pad, 0, h - 1)  # [..., S]
    cols = jnp.clip(jnp.arange(w) + shift[..., 0:1] - pad, 0, w - 1)  # [..., S]
    out = jnp.take_along_axis(obs, rows[..., None, :, None], axis=-2, mode="clip")
    return jnp.take_along_axis(out, cols[..., None, None, :], axis=-1, mode="clip")


def draw_shift(key: jax.Array, *lead: int) -> jax.Array:
    """Random-shift offsets (dx, dy) in [0, 2 SHIFT_PAD]. Shapes: -> [*lead, 2] int32."""
    return jax.random.randint(key, (*lead, 2), 0, 2 * SHIFT_PAD + 1, dtype=jnp.int32)
