"""LayerNorm with its derivative written out (math.layer_norm) equals LayerNorm differentiated op
by op: values against the float64 oracle, derivatives against jax's own derivative of the plain
formula, for per-feature and per-member (ensemble) gains."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from mbdpo_core.reference import math as ref
from mbdpo_jax.math import layer_norm


def _plain(x: jax.Array, weight: jax.Array, bias: jax.Array) -> jax.Array:
    """The textbook formula, differentiated by jax op by op."""
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + 1e-5) * weight + bias


# x, weight/bias shapes: one gain per feature; one per ensemble member ([Nq, 1, D])
SHAPES = [((64, 48), (48,)), ((3, 16, 48), (3, 1, 48))]


@pytest.mark.parametrize("x_shape, w_shape", SHAPES)
def test_value_and_gradients_equal_the_plain_formula(x_shape, w_shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32) * 3 + 1
    w = rng.uniform(0.5, 1.5, w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape).astype(np.float32)
    g = rng.standard_normal(x_shape).astype(np.float32)
    y, vjp = jax.vjp(layer_norm, x, w, b)
    y_plain, vjp_plain = jax.vjp(_plain, x, w, b)
    np.testing.assert_allclose(y, ref.layer_norm(x, w, b), rtol=0, atol=1e-5)
    np.testing.assert_allclose(y, y_plain, rtol=0, atol=1e-5)
    for ours, plain in zip(vjp(g), vjp_plain(g), strict=True):
        scale = np.abs(plain).max()
        np.testing.assert_allclose(ours, plain, rtol=0, atol=1e-5 * max(scale, 1.0))


def test_derivatives_to_second_order_in_float64():
    """A wrong formula would fail this check of the chain through two normalised layers."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        x = jnp.asarray(rng.standard_normal((16, 12)) * 2)
        w = jnp.asarray(rng.uniform(0.5, 1.5, 12))
        b = jnp.asarray(rng.standard_normal(12))
        m = jnp.asarray(rng.standard_normal((12, 12)))

        def f(x, w, b):
            return layer_norm(jnp.tanh(layer_norm(x, w, b) @ m), w, b).sum(axis=0) @ m[0]

        check_grads(f, (x, w, b), order=2, modes=("fwd", "rev"))
