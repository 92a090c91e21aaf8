"""Elementwise math of MBDPO in jnp (spec "Math"; oracle: mbdpo_core.reference.math).

Shapes: K num_bins, T noise levels, B batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from mbdpo_core.config.schema import Config

LOG_2PI = float(np.log(2.0 * np.pi))


def symlog(x: jax.Array) -> jax.Array:
    """sign(x) log(1 + |x|)."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: jax.Array) -> jax.Array:
    """sign(x) (exp|x| - 1)."""
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def two_hot(cfg: Config, x: jax.Array) -> jax.Array:
    """Two-hot encoding in symlog space. Shapes: x [..., 1] -> [..., K]."""
    K = cfg.num_bins
    y = jnp.clip(symlog(x), cfg.vmin, cfg.vmax)[..., 0]
    pos = (y - cfg.vmin) / cfg.bin_size
    i = jnp.clip(jnp.floor(pos), 0, K - 1)
    w = pos - i
    i = i.astype(jnp.int32)
    j = jnp.minimum(i + 1, K - 1)
    return jax.nn.one_hot(i, K) * (1.0 - w)[..., None] + jax.nn.one_hot(j, K) * w[..., None]


def bin_centres(cfg: Config) -> jax.Array:
    """linspace(vmin, vmax, K). Shapes: [K]."""
    return jnp.linspace(cfg.vmin, cfg.vmax, cfg.num_bins, dtype=jnp.float32)


def two_hot_inv(cfg: Config, logits: jax.Array) -> jax.Array:
    """symexp(sum softmax(logits) * centres). Shapes: [..., K] -> [..., 1]."""
    probs = jax.nn.softmax(logits, axis=-1)
    return symexp(jnp.sum(probs * bin_centres(cfg), axis=-1, keepdims=True))


def soft_ce(cfg: Config, logits: jax.Array, target: jax.Array) -> jax.Array:
    """Cross-entropy against two_hot(target).

    Shapes: logits [..., K], target [..., 1] -> [..., 1].
    """
    enc = two_hot(cfg, target)
    return -jnp.sum(enc * jax.nn.log_softmax(logits, axis=-1), axis=-1, keepdims=True)


def bce_with_logits(logits: jax.Array, target: jax.Array | float) -> jax.Array:
    """Elementwise binary cross-entropy of logits: softplus(x) - target x."""
    return jax.nn.softplus(logits) - target * logits


def mish(x: jax.Array) -> jax.Array:
    """x tanh(softplus(x))."""
    return x * jnp.tanh(jax.nn.softplus(x))


def simnorm(x: jax.Array, group: int = 8) -> jax.Array:
    """Softmax within groups of `group` features. Shapes: [..., Z] -> [..., Z]."""
    g = x.reshape(*x.shape[:-1], x.shape[-1] // group, group)
    return jax.nn.softmax(g, axis=-1).reshape(x.shape)


def layer_norm(x: jax.Array, weight: jax.Array, bias: jax.Array, eps: float = 1e-5) -> jax.Array:
    """LayerNorm over the last axis (population variance). Shapes: x [..., D], weight/bias [D]."""
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps) * weight + bias


def noise_schedule(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beta, alpha, alpha_bar), each float32 [T] with T = max(diffusion_steps, 2)."""
    T = max(cfg.diffusion_steps, 2)
    beta = np.linspace(cfg.diffusion_beta0, cfg.diffusion_betaT, T, dtype=np.float64)
    alpha = 1.0 - beta
    return beta.astype(np.float32), alpha.astype(np.float32), np.cumprod(alpha).astype(np.float32)


def time_embedding(tau: jax.Array, dim: int) -> jax.Array:
    """Sinusoidal embedding of integer levels. Shapes: tau [...] -> [..., dim]."""
    half = dim // 2
    freqs = jnp.exp(-jnp.arange(half, dtype=jnp.float32) * (np.log(10000.0) / (half - 1)))
    args = jnp.asarray(tau, jnp.float32)[..., None] * freqs
    emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
    if dim % 2:
        emb = jnp.concatenate([emb, jnp.zeros((*emb.shape[:-1], 1), emb.dtype)], axis=-1)
    return emb


def percentile(x: jax.Array, p: float) -> jax.Array:
    """Percentile by linear interpolation at position p (N-1)/100 of sorted x. Shapes: [N] -> []."""
    xs = jnp.sort(x)
    n = xs.shape[0]
    pos = p * (n - 1) / 100.0
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def running_scale_update(value: jax.Array, x: jax.Array, tau: float) -> jax.Array:
    """RunningScale: S <- S + tau (max(p95 - p5, 1) - S). Shapes: value [], x [B, 1] -> []."""
    flat = jax.lax.stop_gradient(x[..., 0])
    spread = percentile(flat, 95.0) - percentile(flat, 5.0)
    return value + tau * (jnp.maximum(spread, 1.0) - value)
