"""Random-shift augmentation of rgb observations (docs/method.md#augmentation);
mbdpo_core.reference.augment is the oracle. losses.world_model_loss shifts every observation of
the batch; the agent's act shifts its observation too unless obs_shift=update (`acting_obs`).
Shapes: C channels, S image side."""

from __future__ import annotations

from typing import Any

import torch
from mbdpo_core.config.schema import Config
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


def acting_obs(cfg: Config, obs: torch.Tensor, shift: Any) -> torch.Tensor:
    """The observation act encodes: shifted by the plan bundle's obs_shift when obs=rgb and
    obs_shift=always (training and evaluation alike, as published), else obs as it is.

    Shapes: obs [O] (rgb: [C, S, S]), shift [2] int or None -> obs's shape.
    """
    if not cfg.shifts_when_acting:
        return obs
    if shift is None:
        raise ValueError("obs=rgb with obs_shift=always needs the plan bundle's obs_shift [2].")
    return random_shift(obs, shift)
