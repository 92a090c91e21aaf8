"""Torch math vs the numpy oracle (mbdpo_core.reference.math / schedule)."""

from __future__ import annotations

import numpy as np
import torch
from mbdpo_core.reference import math as ref
from mbdpo_core.reference.schedule import noise_schedule, time_embedding
from mbdpo_torch import math as tm
from mbdpo_torch.layers import simnorm


def t(x):
    return torch.as_tensor(np.asarray(x, np.float32))


def test_symlog_symexp(tiny):
    x = np.linspace(-50, 50, 101)
    np.testing.assert_allclose(tm.symlog(t(x)).numpy(), ref.symlog(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tm.symexp(t(x / 10)).numpy(), ref.symexp(x / 10), rtol=1e-5)


def test_two_hot_and_inverse(tiny):
    cfg = tiny()
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 30, (50, 1)), [[0.0], [1e6], [-1e6], [22025.0]]])
    np.testing.assert_allclose(tm.two_hot(t(x), cfg).numpy(), ref.two_hot(x, cfg=cfg), atol=2e-5)
    logits = rng.normal(0, 3, (7, 5, cfg.num_bins))
    np.testing.assert_allclose(
        tm.two_hot_inv(t(logits), cfg).numpy(),
        ref.two_hot_inv(logits, cfg=cfg),
        rtol=1e-5,
        atol=1e-5,
    )
    y = rng.normal(0, 5, (7, 5, 1))
    np.testing.assert_allclose(
        tm.soft_ce(t(logits), t(y), cfg).numpy(),
        ref.soft_ce(logits, y, cfg=cfg),
        rtol=1e-5,
        atol=1e-5,
    )


def test_simnorm():
    x = np.random.default_rng(1).normal(0, 2, (4, 3, 24))
    np.testing.assert_allclose(simnorm(t(x), 8).numpy(), ref.simnorm(x, 8), atol=1e-6)


def test_schedule_and_time_embedding(tiny):
    cfg = tiny("diffusion_steps=20")
    alpha, ab = tm.noise_schedule(cfg, torch.device("cpu"))
    _, alpha_ref, ab_ref = noise_schedule(20, cfg.diffusion_beta0, cfg.diffusion_betaT)
    np.testing.assert_allclose(alpha.numpy(), alpha_ref, rtol=1e-7)
    np.testing.assert_allclose(ab.numpy(), ab_ref, rtol=1e-7)
    tau = np.arange(20)
    for dim in (64, 9):
        np.testing.assert_allclose(
            tm.time_embedding(torch.as_tensor(tau), dim).numpy(),
            time_embedding(tau, dim),
            atol=2e-5,
        )
