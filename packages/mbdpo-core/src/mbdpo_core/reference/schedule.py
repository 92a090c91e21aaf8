"""Noise schedule, proposal std and time embedding of the diffusion planner
(docs/method.md#noise-schedule)."""

from __future__ import annotations

from typing import Any

import numpy as np


def noise_schedule(
    steps: int, beta0: float, betaT: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear beta schedule over T = max(steps, 2) levels.

    beta = linspace(beta0, betaT, T); alpha = 1 - beta; alpha_bar = cumprod(alpha).

    Shapes: -> (beta [T], alpha [T], alpha_bar [T]), float64.
    """
    T = max(int(steps), 2)
    beta = np.linspace(beta0, betaT, T, dtype=np.float64)
    alpha = 1.0 - beta
    return beta, alpha, np.cumprod(alpha)


def proposal_std(alpha_bar: Any) -> np.ndarray:
    """Std of the clean-action proposal at each level: sqrt((1 - alpha_bar) / alpha_bar)."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    return np.sqrt((1.0 - alpha_bar) / alpha_bar)


def time_embedding(tau: Any, dim: int) -> np.ndarray:
    """Sinusoidal embedding of the noise level: [sin(tau f), cos(tau f)], zero-padded if dim odd.

    f_k = exp(-k ln(10000) / (half - 1)), k = 0..half-1, half = dim // 2.

    Shapes: tau [...] (integer levels as float) -> [..., dim].
    """
    half = dim // 2
    tau = np.asarray(tau, dtype=np.float64)
    freqs = np.exp(-np.arange(half) * np.log(10000.0) / max(half - 1, 1))
    angles = tau[..., None] * freqs
    emb = np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)
    if dim % 2:
        emb = np.concatenate([emb, np.zeros((*emb.shape[:-1], 1))], axis=-1)
    return emb
