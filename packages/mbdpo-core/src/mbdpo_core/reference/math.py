"""Numpy oracle of the elementwise math of MBDPO (docs/method.md#math).

All functions compute in float64 and return float64 arrays. The regression helpers take the
bin layout either explicitly (num_bins, vmin, vmax) or from a Config (`cfg=`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..config.schema import Config


LOG_2PI = float(np.log(2.0 * np.pi))


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _bins(
    num_bins: int | None, vmin: float | None, vmax: float | None, cfg: Config | None
) -> tuple[int, float, float]:
    if cfg is not None:
        num_bins = cfg.num_bins if num_bins is None else num_bins
        vmin = cfg.vmin if vmin is None else vmin
        vmax = cfg.vmax if vmax is None else vmax
    if num_bins is None or vmin is None or vmax is None:
        raise ValueError("Give num_bins, vmin and vmax, or a Config via cfg=.")
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2 for two-hot regression, got {num_bins}.")
    return int(num_bins), float(vmin), float(vmax)


def symlog(x: Any) -> np.ndarray:
    """sign(x) log(1 + |x|), elementwise."""
    x = _f64(x)
    return np.sign(x) * np.log1p(np.abs(x))


def symexp(x: Any) -> np.ndarray:
    """sign(x) (exp|x| - 1), elementwise; the inverse of symlog."""
    x = _f64(x)
    return np.sign(x) * np.expm1(np.abs(x))


def softmax(x: Any, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along `axis`."""
    x = _f64(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: Any, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) along `axis`, computed stably."""
    x = _f64(x)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def two_hot(
    x: Any,
    num_bins: int | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    cfg: Config | None = None,
) -> np.ndarray:
    """Two-hot encoding of scalars in symlog space.

    y = clip(symlog(x), vmin, vmax); i = floor((y - vmin) / bin_size); w = frac; weight 1 - w
    at bin i and w at bin i + 1 (clamped to Kb - 1; at the top edge w = 0).

    Shapes: x [..., 1] -> [..., Kb].
    """
    K, lo, hi = _bins(num_bins, vmin, vmax, cfg)
    bin_size = (hi - lo) / (K - 1)
    y = np.clip(symlog(x), lo, hi)[..., 0]
    pos = (y - lo) / bin_size
    i = np.clip(np.floor(pos), 0, K - 1).astype(np.int64)
    w = pos - i
    j = np.minimum(i + 1, K - 1)
    eye = np.eye(K)
    return (1.0 - w)[..., None] * eye[i] + w[..., None] * eye[j]


def bin_centres(num_bins: int, vmin: float, vmax: float) -> np.ndarray:
    """Bin centres linspace(vmin, vmax, Kb) in symlog space. Shapes: [Kb]."""
    return np.linspace(vmin, vmax, num_bins, dtype=np.float64)


def two_hot_inv(
    logits: Any,
    num_bins: int | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    cfg: Config | None = None,
) -> np.ndarray:
    """Decode logits to a scalar: symexp(sum softmax(logits) * centres).

    Shapes: logits [..., Kb] -> [..., 1].
    """
    K, lo, hi = _bins(num_bins, vmin, vmax, cfg)
    probs = softmax(logits)
    return symexp(np.sum(probs * bin_centres(K, lo, hi), axis=-1, keepdims=True))


def soft_ce(
    logits: Any,
    target: Any,
    num_bins: int | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    cfg: Config | None = None,
) -> np.ndarray:
    """Cross-entropy of logits against the two-hot encoding of a scalar target.

    Shapes: logits [..., Kb], target [..., 1] -> [..., 1].
    """
    K, lo, hi = _bins(num_bins, vmin, vmax, cfg)
    enc = two_hot(target, K, lo, hi)
    return -np.sum(enc * log_softmax(logits), axis=-1, keepdims=True)


def simnorm(x: Any, group: int = 8) -> np.ndarray:
    """Softmax within consecutive groups of `group` features of the last axis.

    Shapes: [..., Z] -> [..., Z] (Z a multiple of group).
    """
    x = _f64(x)
    if x.shape[-1] % group:
        raise ValueError(f"simnorm: last axis {x.shape[-1]} is not a multiple of {group}.")
    g = x.reshape(*x.shape[:-1], x.shape[-1] // group, group)
    return softmax(g).reshape(x.shape)


def softplus(x: Any) -> np.ndarray:
    """log(1 + exp(x)), stable for large |x|."""
    return np.logaddexp(0.0, _f64(x))


def mish(x: Any) -> np.ndarray:
    """x tanh(softplus(x))."""
    x = _f64(x)
    return x * np.tanh(softplus(x))


def sigmoid(x: Any) -> np.ndarray:
    """1 / (1 + exp(-x)), stable for large |x|."""
    x = _f64(x)
    return np.exp(-np.logaddexp(0.0, -x))


def layer_norm(x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis (population variance). Shapes: x [..., D], weight/bias [D]."""
    x = _f64(x)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * _f64(weight) + _f64(bias)


def bce_with_logits(logits: Any, target: Any) -> np.ndarray:
    """Elementwise binary cross-entropy of logits: softplus(x) - target x."""
    logits = _f64(logits)
    return softplus(logits) - _f64(target) * logits


def squash_log_std(raw: Any, lo: float, hi: float) -> np.ndarray:
    """lo + 0.5 (hi - lo)(tanh(raw) + 1): maps the raw head output into (lo, hi)."""
    return lo + 0.5 * (hi - lo) * (np.tanh(_f64(raw)) + 1.0)


def gaussian_logprob(eps: Any, log_std: Any) -> np.ndarray:
    """Log-density of mean + eps exp(log_std) under N(mean, exp(log_std)^2), pre-squash.

    sum_dims(-0.5 eps^2 - log_std) - 0.5 log(2 pi) A. Shapes: eps, log_std [..., A] -> [..., 1].
    """
    eps, log_std = _f64(eps), _f64(log_std)
    residual = np.sum(-0.5 * eps**2 - log_std, axis=-1, keepdims=True)
    return residual - 0.5 * LOG_2PI * eps.shape[-1]


def tanh_squash(mean: Any, eps: Any, log_std: Any) -> tuple[np.ndarray, np.ndarray]:
    """Squashed sample and the log-det of the tanh Jacobian.

    action = tanh(mean + eps exp(log_std)); log_det = sum_dims log(relu(1 - action^2) + 1e-6),
    so log p(action) = gaussian_logprob - log_det.

    Shapes: mean, eps, log_std [..., A] -> action [..., A], log_det [..., 1].
    """
    action = np.tanh(_f64(mean) + _f64(eps) * np.exp(_f64(log_std)))
    log_det = np.sum(np.log(np.maximum(1.0 - action**2, 0.0) + 1e-6), axis=-1, keepdims=True)
    return action, log_det
