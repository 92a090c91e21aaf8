"""Native draws of the noise bundles of mbdpo_core.noise (same fields, shapes and laws).

The agent draws every bundle from its one torch.Generator (seeded from cfg.seed); parity tests
instead build a bundle with numpy (mbdpo_core.noise.draw_*) and move it here with `to_torch`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from mbdpo_core.config.schema import Config
from mbdpo_core.noise import (
    SHIFT_PAD,
    DiffusionNoise,
    MppiNoise,
    PolicyNoise,
    ScoreNoise,
    UpdateNoise,
    ValueNoise,
    diffusion_levels,
)


class Drawer:
    """Draws bundles from one generator on one device."""

    def __init__(self, cfg: Config, gen: torch.Generator, device: torch.device) -> None:
        self.cfg, self.gen, self.device = cfg, gen, device

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen, device=self.device)

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.gen, device=self.device) * 2.0 - 1.0

    def keep(self, *shape: int) -> torch.Tensor:
        u = torch.rand(shape, generator=self.gen, device=self.device)
        return (u < 1.0 - self.cfg.dropout).float()

    def pair(self, count: int | None = None) -> torch.Tensor:
        n = self.cfg.num_q
        if count is None:
            return torch.randperm(n, generator=self.gen, device=self.device)[:2]
        return torch.stack([self.pair() for _ in range(count)])

    def value(self, samples: int) -> ValueNoise:
        return ValueNoise(self.normal(samples, self.cfg.action_dim), self.pair())

    def diffusion(self) -> DiffusionNoise:
        cfg = self.cfg
        I, K, H, A = diffusion_levels(cfg), cfg.diffusion_num_samples, cfg.horizon, cfg.action_dim
        P = min(cfg.diffusion_num_pi_trajs, K)
        if cfg.score_only_inference:  # only action_eps is read; skip the large draws
            I = K = P = 0
        return DiffusionNoise(
            sample_eps=self.normal(I, K, H, A),
            pi_eps=self.normal(I, H, P, A),
            value_pi_eps=self.normal(I, K, A),
            value_q_pair=self.pair(I)
            if I
            else torch.zeros(0, 2, dtype=torch.long, device=self.device),
            action_eps=self.normal(A),
        )

    def mppi(self) -> MppiNoise:
        cfg = self.cfg
        I, K, H, A = cfg.iterations, cfg.num_samples, cfg.horizon, cfg.action_dim
        P = min(cfg.num_pi_trajs, K)
        u = torch.rand(cfg.num_elites, generator=self.gen, device=self.device)
        gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
        return MppiNoise(
            pi_eps=self.normal(H, P, A),
            sample_eps=self.normal(I, K - P, H, A),
            value_pi_eps=self.normal(I, K, A),
            value_q_pair=self.pair(I),
            gumbel=gumbel,
            action_eps=self.normal(A),
        )

    def policy(self) -> PolicyNoise:
        return PolicyNoise(self.normal(self.cfg.action_dim))

    def plan(self) -> DiffusionNoise | MppiNoise | PolicyNoise:
        """The bundle of cfg.planner."""
        return {"diffusion": self.diffusion, "mppi": self.mppi, "policy": self.policy}[
            self.cfg.planner
        ]()

    def score(self) -> ScoreNoise:
        cfg = self.cfg
        T, H, A = max(cfg.diffusion_steps, 2), cfg.horizon, cfg.action_dim
        S = cfg.diffusion_num_samples_mf
        tau = torch.randint(1, T, (), generator=self.gen, device=self.device)
        return ScoreNoise(tau, self.normal(H, A), self.normal(S, H, A), self.value(S))

    def update(self) -> UpdateNoise:
        cfg = self.cfg
        H, B, A, M, Nq = cfg.horizon, cfg.batch_size, cfg.action_dim, cfg.mlp_dim, cfg.num_q
        return UpdateNoise(
            target_pi_eps=self.normal(H, B, A),
            target_q_pair=self.pair(),
            q_keep=self.keep(Nq, H, B, M),
            energy_pi_eps=self.normal(H, B, A),
            energy_gauss=self.normal(H, B, A),
            energy_uniform=self.uniform(H, B, A),
            pi_eps=self.normal(H + 1, B, A),
            pi_q_pair=self.pair(),
            pi_q_keep=self.keep(2, H + 1, B, M),
            score=self.score() if cfg.use_score_network else None,
            obs_shift=self.shift(H + 1, B) if cfg.obs == "rgb" else None,
        )

    def shift(self, *lead: int) -> torch.Tensor:
        """Random-shift offsets (dx, dy) in [0, 2 SHIFT_PAD]. Shapes: -> [*lead, 2] int64."""
        high = 2 * SHIFT_PAD + 1
        return torch.randint(0, high, (*lead, 2), generator=self.gen, device=self.device)


def to_torch(bundle: Any, device: torch.device) -> Any:
    """A numpy noise bundle (any of mbdpo_core.noise) as torch tensors on device.

    Integer fields (member pairs, tau) become int64, float fields float32; nested bundles and
    None are handled.
    """
    if bundle is None:
        return None
    values = {}
    for field in dataclasses.fields(bundle):
        value = getattr(bundle, field.name)
        if value is None:
            values[field.name] = None
        elif dataclasses.is_dataclass(value):
            values[field.name] = to_torch(value, device)
        elif isinstance(value, torch.Tensor):
            values[field.name] = value.to(device)
        else:
            arr = np.asarray(value)
            dtype = torch.long if arr.dtype.kind in "iu" else torch.float32
            values[field.name] = torch.as_tensor(arr, dtype=dtype, device=device)
    return dataclasses.replace(bundle, **values)
