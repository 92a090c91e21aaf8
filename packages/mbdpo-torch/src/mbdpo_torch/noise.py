"""The torch sampler of mbdpo_core.noise.draw, and numpy bundles moved to the device
(docs/design.md#noise-bundles).

The agent draws every bundle with `mbdpo_core.noise.draw(kind, cfg, Sampler(generator))`;
parity tests instead build a bundle with numpy and move it here with `to_device`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch


class Sampler:
    """The laws of mbdpo_core.noise.Sampler drawn from one torch.Generator, on its device."""

    def __init__(self, rng: torch.Generator) -> None:
        self.rng = rng

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """N(0, 1) float32."""
        return torch.randn(shape, generator=self.rng, device=self.rng.device)

    def uniform(self, shape: tuple[int, ...]) -> torch.Tensor:
        """U(-1, 1) float32."""
        return torch.rand(shape, generator=self.rng, device=self.rng.device) * 2.0 - 1.0

    def bernoulli(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        """1.0 with probability p, else 0.0 (float32)."""
        return (torch.rand(shape, generator=self.rng, device=self.rng.device) < p).float()

    def pairs(self, lead: tuple[int, ...], n: int) -> torch.Tensor:
        """Two distinct ints in [0, n) per row (the first two of a random permutation).

        Shapes: -> [*lead, 2] int64.
        """
        keys = torch.rand((*lead, n), generator=self.rng, device=self.rng.device)
        return torch.argsort(keys, dim=-1)[..., :2]

    def gumbel(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard Gumbel float32."""
        u = torch.rand(shape, generator=self.rng, device=self.rng.device)
        return -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))

    def integers(self, shape: tuple[int, ...], low: int, high: int) -> torch.Tensor:
        """Uniform ints in [low, high) (int64)."""
        return torch.randint(low, high, shape, generator=self.rng, device=self.rng.device)


def to_device(bundle: Any, device: torch.device) -> Any:
    """A noise bundle (numpy or torch arrays, nested bundles, None fields) as torch tensors on
    device: integer fields (member pairs, tau, shifts) int64, float fields float32."""
    if bundle is None:
        return None
    values = {}
    for field in dataclasses.fields(bundle):
        value = getattr(bundle, field.name)
        if value is None or dataclasses.is_dataclass(value):
            values[field.name] = to_device(value, device)
        elif isinstance(value, torch.Tensor):
            values[field.name] = value.to(device)
        else:
            arr = np.asarray(value)
            dtype = torch.long if arr.dtype.kind in "iu" else torch.float32
            values[field.name] = torch.as_tensor(arr, dtype=dtype, device=device)
    return dataclasses.replace(bundle, **values)
