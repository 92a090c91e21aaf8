"""Numpy oracle of the pixel path: random-shift augmentation and the convolutional encoder.

Random shift (DrQ / TD-MPC2 style): replicate-pad every image by SHIFT_PAD = 3 pixels, then crop
the original size at an integer offset (dx, dy) in [0, 6], one offset per image. This equals the
published bilinear `grid_sample` formulation at its integer shifts. The update shifts every
encoded observation of its batch (UpdateNoise.obs_shift); acting shifts its observation too
(the plan bundle's obs_shift) unless obs_shift=update (docs/method.md#augmentation).

Shapes: N leading image dims, C channels (9 = 3 stacked RGB frames), S = 64 image side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config.schema import Config
from ..noise import SHIFT_PAD

CONV_STRIDES = (2, 2, 2, 1)
"""Strides of the 4 conv layers (kernels 7, 5, 3, 3 come from the weights)."""


def random_shift(obs: Any, shift: Any, pad: int = SHIFT_PAD) -> np.ndarray:
    """Replicate-pad by `pad` and crop at offset (dx, dy) = shift[..., 0], shift[..., 1].

    out[..., c, i, j] = obs[..., c, clip(i + dy - pad, 0, S-1), clip(j + dx - pad, 0, S-1)]:
    dx moves along the width (last axis), dy along the height; (pad, pad) is the identity.
    The dtype is kept (uint8 stays uint8).

    Shapes: obs [..., C, S, S], shift [..., 2] int in [0, 2 pad] -> [..., C, S, S].
    """
    obs, shift = np.asarray(obs), np.asarray(shift, dtype=np.int64)
    h, w = obs.shape[-2:]
    rows = np.clip(np.arange(h) + shift[..., 1:2] - pad, 0, h - 1)  # [..., S]
    cols = np.clip(np.arange(w) + shift[..., 0:1] - pad, 0, w - 1)  # [..., S]
    out = np.take_along_axis(obs, rows[..., None, :, None], axis=-2)
    return np.take_along_axis(out, cols[..., None, None, :], axis=-1)


def acting_obs(cfg: Config, obs: Any, shift: Any) -> Any:
    """The observation that acting encodes: obs=rgb with obs_shift=always shifts it by the plan
    bundle's obs_shift (training and evaluation alike, as published); otherwise obs as it is.

    Shapes: obs [O] (rgb: [C, S, S]), shift [2] int or None -> obs's shape.
    """
    if not cfg.shifts_when_acting:
        return obs
    if shift is None:
        raise ValueError("obs=rgb with obs_shift=always needs the plan bundle's obs_shift [2].")
    return random_shift(obs, shift)


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """'VALID' convolution, channel-last. Shapes: x [N, h, w, in], weight [k, k, in, out] (HWIO),
    bias [out] -> [N, (h - k) // stride + 1, (w - k) // stride + 1, out]."""
    k = weight.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # [N, oh, ow, in, k, k]
    return np.einsum("nhwcij,ijco->nhwo", windows, weight) + bias


def conv_features(params: dict[str, np.ndarray], obs: Any) -> np.ndarray:
    """x / 255 - 0.5, conv k7s2 ReLU, k5s2 ReLU, k3s2 ReLU, k3s1, flatten channel-first
    [c, h, w] as the published encoder does (no SimNorm): feature c * 16 + h * 4 + w, so each
    SimNorm group of 8 is one channel over 8 consecutive positions.

    Shapes: obs [..., C, 64, 64] (uint8 or float) -> [..., 16 num_channels]
    (spatial 64 -> 29 -> 13 -> 6 -> 4).
    """
    obs = np.asarray(obs)
    lead = obs.shape[:-3]
    x = obs.reshape(-1, *obs.shape[-3:]).astype(np.float64) / 255.0 - 0.5
    x = np.transpose(x, (0, 2, 3, 1))
    for i, stride in enumerate(CONV_STRIDES):
        w = np.asarray(params[f"encoder.{i}.weight"], dtype=np.float64)
        b = np.asarray(params[f"encoder.{i}.bias"], dtype=np.float64)
        x = conv2d(x, w, b, stride)
        if i < len(CONV_STRIDES) - 1:
            x = np.maximum(x, 0.0)
    return np.transpose(x, (0, 3, 1, 2)).reshape(*lead, -1)
