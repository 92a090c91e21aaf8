"""Elementwise math of MBDPO in torch (mirrors mbdpo_core.reference.math, the oracle).

Two-hot regression over symlog space, soft cross-entropy, the diffusion noise schedule and the
score network's time embedding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mbdpo_core.config.schema import Config


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) log(1 + |x|)."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    """sign(x) (exp|x| - 1)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def two_hot(x: torch.Tensor, cfg: Config) -> torch.Tensor:
    """Two-hot encoding in symlog space. Shapes: x [..., 1] -> [..., K]."""
    K, lo = cfg.num_bins, cfg.vmin
    y = torch.clamp(symlog(x), cfg.vmin, cfg.vmax)
    pos = (y - lo) / cfg.bin_size
    i = torch.clamp(torch.floor(pos), 0, K - 1)
    w = pos - i
    i = i.long()
    out = torch.zeros(*x.shape[:-1], K, dtype=x.dtype, device=x.device)
    out.scatter_(-1, i, 1.0 - w)
    return out.scatter_add_(-1, torch.clamp(i + 1, max=K - 1), w)


def bin_centres(cfg: Config, device: torch.device) -> torch.Tensor:
    """linspace(vmin, vmax, K). Shapes: [K]."""
    return torch.linspace(cfg.vmin, cfg.vmax, cfg.num_bins, device=device)


def two_hot_inv(logits: torch.Tensor, cfg: Config) -> torch.Tensor:
    """symexp(sum softmax(logits) * centres). Shapes: [..., K] -> [..., 1]."""
    probs = torch.softmax(logits, dim=-1)
    return symexp(probs @ bin_centres(cfg, logits.device)[:, None])


def soft_ce(logits: torch.Tensor, target: torch.Tensor, cfg: Config) -> torch.Tensor:
    """-sum two_hot(target) log_softmax(logits). Shapes: [..., K], [..., 1] -> [..., 1]."""
    return -(two_hot(target, cfg) * F.log_softmax(logits, dim=-1)).sum(-1, keepdim=True)


def noise_schedule(cfg: Config, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha [T], alpha_bar [T]) of the linear beta schedule, computed in float64, as float32."""
    T = max(cfg.diffusion_steps, 2)
    beta = torch.linspace(cfg.diffusion_beta0, cfg.diffusion_betaT, T, dtype=torch.float64)
    alpha = 1.0 - beta
    return alpha.float().to(device), torch.cumprod(alpha, 0).float().to(device)


def time_embedding(tau: torch.Tensor, dim: int) -> torch.Tensor:
    """[sin(tau f), cos(tau f)] (zero pad if dim odd), f_k = exp(-k ln 1e4 / (half - 1)).

    Shapes: tau [...] -> [..., dim].
    """
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=tau.device)
    freqs = torch.exp(-k * math.log(10000.0) / max(half - 1, 1))
    angles = tau.float()[..., None] * freqs
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb
