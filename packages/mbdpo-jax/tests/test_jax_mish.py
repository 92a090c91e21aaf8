"""The one-exp Mish (math.mish) equals x tanh(softplus(x)), value and derivative, incl. large
|x|, against the float64 oracle and an exact derivative written from tanh and the sigmoid."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads
from mbdpo_core.reference import math as ref
from mbdpo_jax.math import mish

EXTREME = [-1e30, -1e5, -200.0, -103.0, -20.0, 0.0, 19.9999, 20.0, 20.0001, 200.0, 1e5, 1e30]


def _inputs() -> np.ndarray:
    return np.concatenate([np.linspace(-120.0, 120.0, 100_001), EXTREME]).astype(np.float32)


def _exact_derivative(x: np.ndarray) -> np.ndarray:
    """d/dx x tanh(softplus(x)) = tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x), in float64."""
    x = x.astype(np.float64)
    t = np.tanh(np.logaddexp(0.0, x))
    with np.errstate(over="ignore", invalid="ignore"):
        slope = t + np.nan_to_num(x * (1.0 - t * t)) * ref.sigmoid(x)
    return slope


def test_mish_value_and_derivative_match_the_oracle():
    x = _inputs()
    g = np.random.default_rng(0).uniform(0.5, 1.5, x.shape).astype(np.float32)
    y, vjp = jax.vjp(mish, jnp.asarray(x))
    (dx,) = vjp(jnp.asarray(g))
    y, dx = np.asarray(y, np.float64), np.asarray(dx, np.float64)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    exact = ref.mish(x)
    assert (np.abs(y - exact) / np.maximum(np.abs(exact), 1.0)).max() <= 1e-6
    assert np.abs(dx - _exact_derivative(x) * g).max() <= 1e-6
    # the planning path (jit, no derivative) computes the same values up to fused rounding
    np.testing.assert_allclose(np.asarray(jax.jit(mish)(x), np.float64), y, rtol=1e-6, atol=0)


def test_mish_derivative_is_used_in_training_graphs():
    """A wrong derivative formula would fail this check of the chain through two layers."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((64, 32)) * 3)
        w = jnp.asarray(rng.standard_normal((32, 32)) * 2)
        check_grads(lambda v: mish(mish(v) @ w).sum(), (x,), order=2, modes=("fwd", "rev"))
