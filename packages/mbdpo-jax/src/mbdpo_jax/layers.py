"""Layers as pure functions over the canonical parameter dict (spec "Layers").

A module `m` with layers 0..n-1 reads `m.i.weight` [in, out], `m.i.bias`, `m.i.ln.*`; a stacked
ensemble (the Q heads) reads the same names with a leading member axis [Nq, ...] and returns
[Nq, ..., out]. Shapes: Nq members, D features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from .math import layer_norm, mish, simnorm

Params = Mapping[str, jax.Array]


def _members(v: jax.Array, ndim: int) -> jax.Array:
    """Per-member vector [Nq, D] -> [Nq, 1, ..., 1, D] for an activation of rank ndim."""
    return v.reshape(v.shape[0], *([1] * (ndim - 2)), v.shape[-1])


def dense(
    x: jax.Array, w: jax.Array, b: jax.Array | None = None, per_member: bool = False
) -> jax.Array:
    """x @ w + b, also for stacked members.

    Shapes: w [in, out]: x [..., in] -> [..., out]. w [Nq, in, out]: x [..., in] shared by every
    member, or x [Nq, ..., in] when per_member -> [Nq, ..., out]; b [out] or [Nq, out].
    """
    if w.ndim == 2:
        y = x @ w
        return y if b is None else y + b
    y = jnp.einsum("q...i,qio->q...o" if per_member else "...i,qio->q...o", x, w)
    return y if b is None else y + _members(b, y.ndim)


def input_dense(parts: Sequence[jax.Array], w: jax.Array, b: jax.Array) -> jax.Array:
    """The first Linear of a module on the concatenation of `parts` (spec order [z, e, a]).

    When every part has the same leading shape, the parts are concatenated and multiplied once.
    Otherwise (e.g. one latent z [1, Z] against many actions [N, A]) each part multiplies its own
    row block of w and the results broadcast: the shared part is computed once, not N times.

    Shapes: parts [..., D_i] (broadcastable leading dims), w [(Nq,) sum D_i, out]
    -> [(Nq,) ..., out].
    """
    lead = {p.shape[:-1] for p in parts}
    if len(lead) == 1:
        return dense(jnp.concatenate(list(parts), axis=-1), w, b)
    rank = max(p.ndim for p in parts)
    out, start = None, 0
    for p in parts:
        p = p.reshape((1,) * (rank - p.ndim) + p.shape)  # align leading dims (member axis)
        rows = w[..., start : start + p.shape[-1], :]
        y = dense(p, rows)
        out = y if out is None else out + y
        start += p.shape[-1]
    return out + (b if w.ndim == 2 else _members(b, out.ndim))


def num_layers(params: Params, module: str) -> int:
    """Number of layers of `module` present in params."""
    n = 0
    while f"{module}.{n}.weight" in params:
        n += 1
    return n


def mlp(
    params: Params,
    module: str,
    parts: Sequence[jax.Array],
    last: str = "linear",
    keep: jax.Array | None = None,
    dropout: float = 0.0,
    simnorm_dim: int = 8,
) -> jax.Array:
    """Run module `module`: NormedLinear+Mish hidden layers, then the last layer.

    Args:
        params: canonical parameters (or a member-sliced copy of an ensemble's).
        module: canonical module name, e.g. "dynamics" or "q".
        parts: inputs concatenated along the last axis in this order.
        last: "linear" (plain Linear) or "simnorm" (NormedLinear + SimNorm).
        keep: dropout keep mask of layer 0 (0/1), applied after the Linear, before LayerNorm.
        dropout: drop rate; kept activations are divided by 1 - dropout.
        simnorm_dim: SimNorm group size.

    Shapes: parts [..., D_i] -> [..., out] ([Nq, ..., out] for an ensemble).
    """
    n = num_layers(params, module)
    x = input_dense(parts, params[f"{module}.0.weight"], params[f"{module}.0.bias"])
    for i in range(n):
        p = f"{module}.{i}"
        if i > 0:
            x = dense(x, params[f"{p}.weight"], params[f"{p}.bias"], per_member=True)
        if i == 0 and keep is not None:
            x = x * keep / (1.0 - dropout)
        if i == n - 1 and last == "linear":
            break
        w, b = params[f"{p}.ln.weight"], params[f"{p}.ln.bias"]
        if w.ndim == 2:
            w, b = _members(w, x.ndim), _members(b, x.ndim)
        x = layer_norm(x, w, b)
        x = simnorm(x, simnorm_dim) if i == n - 1 else mish(x)
    return x


def conv_encoder(params: Params, obs: jax.Array, simnorm_dim: int = 8) -> jax.Array:
    """rgb encoder: x/255 - 0.5, 4 convs (ReLU between), flatten [h, w, c], SimNorm.

    Shapes: obs [..., C, 64, 64] (uint8 or float) -> [..., 512] for 32 channels.
    """
    lead = obs.shape[:-3]
    x = obs.reshape(-1, *obs.shape[-3:]).astype(jnp.float32) / 255.0 - 0.5
    x = jnp.transpose(x, (0, 2, 3, 1))
    strides = (2, 2, 2, 1)
    for i, s in enumerate(strides):
        x = (
            jax.lax.conv_general_dilated(
                x,
                params[f"encoder.{i}.weight"],
                (s, s),
                "VALID",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
            + params[f"encoder.{i}.bias"]
        )
        if i < len(strides) - 1:
            x = jax.nn.relu(x)
    return simnorm(x.reshape(*lead, -1), simnorm_dim)


def task_embedding(params: Params, task: jax.Array) -> jax.Array:
    """Rows of task_emb.weight rescaled to L2 norm <= 1 (functional max_norm=1).

    Shapes: task [...] int -> [..., task_dim].
    """
    e = params["task_emb.weight"][task]
    norm = jnp.linalg.norm(e, axis=-1, keepdims=True)
    return e * jnp.minimum(1.0, 1.0 / (norm + 1e-7))
