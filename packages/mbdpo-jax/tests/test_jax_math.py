"""mbdpo_jax.math against the numpy oracle (mbdpo_core.reference)."""

import jax.numpy as jnp
import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.reference import math as ref
from mbdpo_core.reference import scale as ref_scale
from mbdpo_core.reference import schedule as ref_schedule
from mbdpo_jax import math as jm

CFG = load_config(["preset=cpu"])
RNG = np.random.default_rng(0)
X = np.concatenate([RNG.standard_normal(64) * 30, [0.0, 1e-6, -1e-6, 1e5, -1e5]]).astype(np.float32)


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=tol, atol=tol)


def test_symlog_symexp():
    close(jm.symlog(X), ref.symlog(X))
    y = np.clip(X, -20, 20)
    close(jm.symexp(y), ref.symexp(y), tol=1e-4)


def test_two_hot_and_inverse():
    x = X[:, None]
    close(jm.two_hot(CFG, x), ref.two_hot(x, cfg=CFG))
    edges = np.array([[np.expm1(10.0)], [-np.expm1(10.0)], [0.0]], np.float32)
    close(jm.two_hot(CFG, edges), ref.two_hot(edges, cfg=CFG))
    logits = RNG.standard_normal((7, 3, CFG.num_bins)).astype(np.float32) * 3
    close(jm.two_hot_inv(CFG, logits), ref.two_hot_inv(logits, cfg=CFG), tol=1e-4)
    target = RNG.standard_normal((7, 3, 1)).astype(np.float32) * 5
    close(jm.soft_ce(CFG, logits, target), ref.soft_ce(logits, target, cfg=CFG), tol=1e-4)


def test_elementwise_layers():
    x = RNG.standard_normal((5, 16)).astype(np.float32) * 3
    close(jm.mish(x), ref.mish(x))
    close(jm.simnorm(x, 8), ref.simnorm(x, 8))
    w, b = RNG.standard_normal(16).astype(np.float32), RNG.standard_normal(16).astype(np.float32)
    close(jm.layer_norm(x, w, b), ref.layer_norm(x, w, b), tol=1e-4)
    close(jm.bce_with_logits(x, 1.0), ref.bce_with_logits(x, 1.0))


@pytest.mark.parametrize("steps", [1, 5, 20])
def test_noise_schedule_and_time_embedding(steps):
    cfg = load_config(["preset=cpu", f"diffusion_steps={steps}"])
    mine = jm.noise_schedule(cfg)
    theirs = ref_schedule.noise_schedule(steps, cfg.diffusion_beta0, cfg.diffusion_betaT)
    for a, b in zip(mine, theirs, strict=True):
        close(a, b, tol=1e-6)
    tau = np.arange(max(steps, 2))
    for dim in (64, 7):
        close(jm.time_embedding(jnp.asarray(tau), dim), ref_schedule.time_embedding(tau, dim))


@pytest.mark.parametrize("n", [1, 2, 8, 33])
def test_running_scale(n):
    x = (RNG.standard_normal((n, 1)) * 4).astype(np.float32)
    close(jm.percentile(jnp.asarray(x[:, 0]), 5.0), ref_scale.percentile(x[:, 0], 5.0))
    oracle = ref_scale.RunningScale(0.01, 1.3)
    oracle.update(x)
    close(jm.running_scale_update(jnp.float32(1.3), jnp.asarray(x), 0.01), oracle.value)
