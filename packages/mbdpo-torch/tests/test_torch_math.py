"""Torch math vs the numpy oracle (mbdpo_core.reference.math / schedule)."""

from __future__ import annotations

import numpy as np
import torch
from mbdpo_core.reference import math as ref
from mbdpo_core.reference.scale import RunningScale
from mbdpo_core.reference.schedule import time_embedding
from mbdpo_torch import math as tm
from mbdpo_torch.value import clean_values


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
    np.testing.assert_allclose(tm.simnorm(t(x), 8).numpy(), ref.simnorm(x, 8), atol=1e-6)


def test_time_embedding(tiny):
    tau = np.arange(20)
    for dim in (64, 9, 2, 3):  # 2 and 3: half = 1, the max(half - 1, 1) guard
        np.testing.assert_allclose(
            tm.time_embedding(torch.as_tensor(tau), dim).numpy(),
            time_embedding(tau, dim),
            atol=2e-5,
        )


def test_bce_layer_norm_running_scale():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 5, (7, 3)), (rng.random((7, 3)) < 0.5).astype(np.float64)
    np.testing.assert_allclose(
        tm.bce_with_logits(t(x), t(y)).numpy(), ref.bce_with_logits(x, y), rtol=1e-5, atol=1e-6
    )
    w, b = rng.normal(1, 0.2, 5), rng.normal(0, 0.2, 5)
    h = rng.normal(0, 3, (4, 5))
    np.testing.assert_allclose(
        tm.layer_norm(t(h), t(w), t(b)).numpy(), ref.layer_norm(h, w, b), rtol=1e-5, atol=1e-5
    )
    q = rng.normal(0, 10, (64, 1))
    want = RunningScale(0.01, 1.3)
    want.update(q)
    got = tm.running_scale_update(torch.tensor(1.3), t(q), 0.01)
    np.testing.assert_allclose(float(got), want.value, rtol=1e-6)


def test_clean_values_is_numpy_nan_to_num():
    v = np.array([1.0, np.nan, np.inf, -np.inf, -2.0], np.float32)
    np.testing.assert_array_equal(
        clean_values(torch.as_tensor(v)).numpy(), np.nan_to_num(v, nan=0.0)
    )
