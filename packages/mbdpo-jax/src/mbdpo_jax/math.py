"""Elementwise math in jnp (docs/method.md#math; oracle: mbdpo_core.reference.math).

Shapes: Kb value/reward bins, B batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from mbdpo_core.config.schema import Config

_LN_EPS = 1e-5


def symlog(x: jax.Array) -> jax.Array:
    """sign(x) log(1 + |x|)."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: jax.Array) -> jax.Array:
    """sign(x) (exp|x| - 1)."""
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def two_hot(x: jax.Array, cfg: Config) -> jax.Array:
    """Two-hot encoding in symlog space. Shapes: x [..., 1] -> [..., Kb]."""
    Kb = cfg.num_bins
    y = jnp.clip(symlog(x), cfg.vmin, cfg.vmax)[..., 0]
    pos = (y - cfg.vmin) / cfg.bin_size
    i = jnp.clip(jnp.floor(pos), 0, Kb - 1)
    w = pos - i
    i = i.astype(jnp.int32)
    j = jnp.minimum(i + 1, Kb - 1)
    return jax.nn.one_hot(i, Kb) * (1.0 - w)[..., None] + jax.nn.one_hot(j, Kb) * w[..., None]


def two_hot_inv(logits: jax.Array, cfg: Config) -> jax.Array:
    """symexp of the softmax-weighted bin centres. Shapes: [..., Kb] -> [..., 1]."""
    centres = jnp.linspace(cfg.vmin, cfg.vmax, cfg.num_bins, dtype=jnp.float32)
    probs = jax.nn.softmax(logits, axis=-1)
    return symexp(jnp.sum(probs * centres, axis=-1, keepdims=True))


def soft_ce(logits: jax.Array, target: jax.Array, cfg: Config) -> jax.Array:
    """Cross-entropy against two_hot(target). Shapes: logits [..., Kb], target [..., 1] ->
    [..., 1]."""
    enc = two_hot(target, cfg)
    return -jnp.sum(enc * jax.nn.log_softmax(logits, axis=-1), axis=-1, keepdims=True)


def bce_with_logits(logits: jax.Array, target: jax.Array | float) -> jax.Array:
    """Elementwise binary cross-entropy of logits: softplus(x) - target x."""
    return jax.nn.softplus(logits) - target * logits


@jax.custom_jvp
def mish(x: jax.Array) -> jax.Array:
    """x tanh(softplus(x)), computed as x n / (n + 2) with n = e^x (e^x + 2).

    One exp instead of exp, log1p and tanh and their derivatives: those passes took about 15%
    of the model_size 5 update on CPU (docs/design.md#speed). e^x is capped at x = 20, where
    n / (n + 2) is 1 in float32. With u = e^x the derivative is
    (n + 4 x u (u + 1) / (n + 2)) / (n + 2) (_mish_jvp).
    """
    u = jnp.exp(jnp.minimum(x, 20.0))
    n = u * (u + 2.0)
    return x * (n * (1.0 / (n + 2.0)))


@mish.defjvp
def _mish_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Mish and its derivative from the same exp (x capped at 20 in the second term, which is
    below 1e-15 there)."""
    (x,), (dx,) = primals, tangents
    xc = jnp.minimum(x, 20.0)
    u = jnp.exp(xc)
    n = u * (u + 2.0)
    r = 1.0 / (n + 2.0)
    slope = (n + 4.0 * xc * u * (u + 1.0) * r) * r
    return x * (n * r), slope * dx


def simnorm(x: jax.Array, group: int) -> jax.Array:
    """Softmax within consecutive groups of `group` features. Shapes: [..., Z] -> [..., Z]."""
    g = x.reshape(*x.shape[:-1], x.shape[-1] // group, group)
    return jax.nn.softmax(g, axis=-1).reshape(x.shape)


@jax.custom_jvp
def layer_norm(x: jax.Array, weight: jax.Array, bias: jax.Array) -> jax.Array:
    """LayerNorm over the last axis (population variance, eps 1e-5).

    Its derivative is written out (_layer_norm_jvp), as torch's fused layer_norm kernel has it:
    differentiating the mean and the variance op by op left XLA more passes over each
    activation in the update (docs/design.md#speed).

    Shapes: x [..., D], weight/bias broadcastable to x (e.g. [D]).
    """
    xhat, _ = _normalized(x)
    return xhat * weight + bias


def _normalized(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(x - mean) / sqrt(var + eps) [..., D] and 1 / sqrt(var + eps) [..., 1]."""
    xc = x - jnp.mean(x, axis=-1, keepdims=True)
    rstd = jax.lax.rsqrt(jnp.mean(jnp.square(xc), axis=-1, keepdims=True) + _LN_EPS)
    return xc * rstd, rstd


@layer_norm.defjvp
def _layer_norm_jvp(
    primals: tuple[jax.Array, ...], tangents: tuple[jax.Array, ...]
) -> tuple[jax.Array, jax.Array]:
    """d xhat = rstd (dx - mean(dx) - xhat mean(xhat dx)): the variance's derivative through the
    centred input, whose mean is zero."""
    (x, weight, bias), (dx, dweight, dbias) = primals, tangents
    xhat, rstd = _normalized(x)
    mean = lambda v: jnp.mean(v, axis=-1, keepdims=True)  # noqa: E731
    dxhat = rstd * (dx - mean(dx) - xhat * mean(xhat * dx))
    return xhat * weight + bias, dxhat * weight + xhat * dweight + dbias


def time_embedding(tau: jax.Array, dim: int) -> jax.Array:
    """Sinusoidal embedding [sin(tau f), cos(tau f)] of integer noise levels, zero-padded when
    dim is odd; f_k = exp(-k ln(10000) / max(half - 1, 1)), half = dim // 2.

    Shapes: tau [...] -> [..., dim].
    """
    half = dim // 2
    freqs = jnp.exp(-jnp.arange(half, dtype=jnp.float32) * (np.log(10000.0) / max(half - 1, 1)))
    args = jnp.asarray(tau, jnp.float32)[..., None] * freqs
    emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
    if dim % 2:
        emb = jnp.concatenate([emb, jnp.zeros((*emb.shape[:-1], 1), emb.dtype)], axis=-1)
    return emb


def _percentile(x: jax.Array, p: float) -> jax.Array:
    """Linear interpolation at position p (N - 1) / 100 of sorted x. Shapes: [N] -> []."""
    xs = jnp.sort(x)
    n = xs.shape[0]
    pos = p * (n - 1) / 100.0
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def running_scale_update(scale: jax.Array, x: jax.Array, tau: float) -> jax.Array:
    """RunningScale: S <- S + tau (max(p95 - p5, 1) - S) (docs/method.md#policy-objective).

    Shapes: scale [], x [B, 1] -> [].
    """
    flat = jax.lax.stop_gradient(x[..., 0])
    spread = _percentile(flat, 95.0) - _percentile(flat, 5.0)
    return scale + tau * (jnp.maximum(spread, 1.0) - scale)
