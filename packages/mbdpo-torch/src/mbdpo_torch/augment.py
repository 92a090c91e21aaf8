"""Random-shift augmentation of rgb observations (mbdpo_core.reference.augment is the oracle).

Replicate-pad by 3 pixels and crop 64 x 64 at an integer offset (dx, dy) in [0, 6] per image,
given by UpdateNoise.obs_shift. Applied in the update only (to every encoded observation of the
batch: obs[0] and obs[1:], independently per sample and time step), never when acting.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from mbdpo_core.noise import SHIFT_PAD

if TYPE_CHECKING:
    from mbdpo_core.config.schema import Config

    from .losses import TorchBatch


def random_shift(obs: torch.Tensor, shift: torch.Tensor, pad: int = SHIFT_PAD) -> torch.Tensor:
    """out[..., c, i, j] = obs[..., c, clip(i + dy - pad), clip(j + dx - pad)], (dx, dy) = shift.

    Two gathers on the original dtype (uint8 stays uint8). (pad, pad) is the identity.
    Shapes: obs [..., C, S, S], shift [..., 2] int in [0, 2 pad] -> [..., C, S, S].
    """
    *lead, c, h, w = obs.shape
    shift = shift.to(device=obs.device, dtype=torch.long)
    ar_h = torch.arange(h, device=obs.device)
    ar_w = torch.arange(w, device=obs.device)
    rows = torch.clamp(ar_h + shift[..., 1:2] - pad, 0, h - 1)  # [..., S]
    cols = torch.clamp(ar_w + shift[..., 0:1] - pad, 0, w - 1)  # [..., S]
    out = torch.gather(obs, -2, rows[..., None, :, None].expand(*lead, c, h, w))
    return torch.gather(out, -1, cols[..., None, None, :].expand(*lead, c, h, w))


def shift_batch(cfg: Config, batch: TorchBatch, shift: torch.Tensor | None) -> TorchBatch:
    """The batch with every observation shifted (obs=rgb); unchanged for state observations.

    Shapes: batch.obs [H+1, B, C, S, S], shift [H+1, B, 2].
    """
    if cfg.obs != "rgb":
        return batch
    if shift is None:
        raise ValueError("obs=rgb needs UpdateNoise.obs_shift [H+1, B, 2] (random shift).")
    return dataclasses.replace(batch, obs=random_shift(batch.obs, shift))
