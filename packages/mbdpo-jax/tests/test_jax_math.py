"""mbdpo_jax.math and value.clean_values against the numpy oracle (mbdpo_core.reference)."""

import jax.numpy as jnp
import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.reference import math as ref
from mbdpo_core.reference import scale as ref_scale
from mbdpo_core.reference import schedule as ref_schedule
from mbdpo_jax import math as jm
from mbdpo_jax.value import clean_values

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
    close(jm.two_hot(x, CFG), ref.two_hot(x, cfg=CFG))
    edges = np.array([[np.expm1(10.0)], [-np.expm1(10.0)], [0.0]], np.float32)
    close(jm.two_hot(edges, CFG), ref.two_hot(edges, cfg=CFG))
    logits = RNG.standard_normal((7, 3, CFG.num_bins)).astype(np.float32) * 3
    close(jm.two_hot_inv(logits, CFG), ref.two_hot_inv(logits, cfg=CFG), tol=1e-4)
    target = RNG.standard_normal((7, 3, 1)).astype(np.float32) * 5
    close(jm.soft_ce(logits, target, CFG), ref.soft_ce(logits, target, cfg=CFG), tol=1e-4)


def test_elementwise_layers():
    x = RNG.standard_normal((5, 16)).astype(np.float32) * 3
    close(jm.mish(x), ref.mish(x))
    close(jm.simnorm(x, 8), ref.simnorm(x, 8))
    w, b = RNG.standard_normal(16).astype(np.float32), RNG.standard_normal(16).astype(np.float32)
    close(jm.layer_norm(x, w, b), ref.layer_norm(x, w, b), tol=1e-4)
    close(jm.bce_with_logits(x, 1.0), ref.bce_with_logits(x, 1.0))


@pytest.mark.parametrize("dim", [64, 7, 3, 2])
def test_time_embedding(dim):
    """dim 2 and 3 (half = 1) take the oracle's guard max(half - 1, 1)."""
    tau = np.arange(20)
    got = jm.time_embedding(jnp.asarray(tau), dim)
    assert np.all(np.isfinite(np.asarray(got)))
    close(got, ref_schedule.time_embedding(tau, dim))


def test_clean_values_is_nan_to_num():
    v = np.array([1.5, np.nan, np.inf, -np.inf, -2.0], np.float32)
    np.testing.assert_array_equal(
        np.asarray(clean_values(jnp.asarray(v))), np.nan_to_num(v, nan=0.0)
    )


@pytest.mark.parametrize("n", [1, 2, 8, 33])
def test_running_scale(n):
    x = (RNG.standard_normal((n, 1)) * 4).astype(np.float32)
    oracle = ref_scale.RunningScale(0.01, 1.3)
    oracle.update(x)
    close(jm.running_scale_update(jnp.float32(1.3), jnp.asarray(x), 0.01), oracle.value)
