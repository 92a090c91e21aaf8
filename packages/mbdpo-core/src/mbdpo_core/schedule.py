"""The diffusion noise schedule that runs in production (docs/method.md#noise-schedule).

The numpy oracle (mbdpo_core.reference.schedule) computes the same schedule in float64 for tests.
"""

from __future__ import annotations

import numpy as np

from .config.schema import Config
from .noise import noise_levels


def noise_schedule(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Linear beta from diffusion_beta0 to diffusion_betaT over T levels, alpha = 1 - beta,
    alpha_bar = cumprod(alpha), computed in float64. Shapes: -> (alpha [T], alpha_bar [T]) float32.
    """
    beta = np.linspace(cfg.diffusion_beta0, cfg.diffusion_betaT, noise_levels(cfg))
    alpha = 1.0 - beta
    return alpha.astype(np.float32), np.cumprod(alpha).astype(np.float32)
