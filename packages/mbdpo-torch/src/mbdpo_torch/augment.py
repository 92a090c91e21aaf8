"""Random-shift augmentation of rgb observations (docs/method.md#augmentation);
mbdpo_core.reference.augment is the oracle. Applied by losses.world_model_loss only, never when
acting. Shapes: C channels, S image side."""

from __future__ import annotations

import torch
from mbdpo_core.noise import SHIFT_PAD


def random_shift(obs: torch.Tensor, shift: torch.Tensor, pad: int = SHIFT_PAD) -> torch.Tensor:
    """Replicate-pad by `pad` and crop at offset (dx, dy) = shift, per image:
    out[..., c, i, j] = obs[..., c, clip(i + dy - pad), clip(j + dx - pad)].

    Two gathers on the original dtype (uint8 stays uint8); (pad, pad) is the identity.
    Shapes: obs [..., C, S, S], shift [..., 2] int in [0, 2 pad] -> [..., C, S, S].
    """
    *lead, c, h, w = obs.shape
    shift = shift.to(device=obs.device, dtype=torch.long)
    rows = torch.clamp(torch.arange(h, device=obs.device) + shift[..., 1:2] - pad, 0, h - 1)
    cols = torch.clamp(torch.arange(w, device=obs.device) + shift[..., 0:1] - pad, 0, w - 1)
    out = torch.gather(obs, -2, rows[..., None, :, None].expand(*lead, c, h, w))
    return torch.gather(out, -1, cols[..., None, None, :].expand(*lead, c, h, w))
