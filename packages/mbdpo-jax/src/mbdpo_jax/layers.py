"""Flax NNX modules of the world model (docs/method.md#layers).

Each parameter sits where its canonical name (mbdpo_core.params) says: an MLP is a list of
Linear, so `reward.1.ln.weight` is `nets["reward"][1].ln.weight`. Linear weights are [in, out]
(y = x @ W + b); the Q ensembles stack their members: weight [Nq, in, out], bias and LayerNorm
[Nq, out]. Modules start at zero: the agent imports core's numpy initialisation
(mbdpo_core.params.init_params), never a flax initialiser.

Matmul precision: every matmul of the model (dense layers and convs) is here. Under
`matmul_precision("bf16", device)`, entered by the agent's jitted act and update while they
trace (the config is their static argument, so bf16 programs compile apart), they take bfloat16
operands and accumulate and return float32 (preferred_element_type); everything else stays
float32. Outside it they are plain float32 (docs/design.md#runtime).

Shapes: Nq Q members, D features, C conv channels, Mt tasks, E task-embedding width.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from mbdpo_core.params import Layer

from .math import layer_norm, mish, simnorm

_BF16_MATMULS = contextvars.ContextVar("bf16_matmuls", default=False)
"""Whether the matmuls being traced take bfloat16 operands (set by matmul_precision)."""


@contextlib.contextmanager
def matmul_precision(precision: str, device: jax.Device | None) -> Iterator[None]:
    """Trace the model's matmuls at cfg.precision (float32 | bf16) inside this context.

    `device` is not read: the casts are part of the traced program on every device (torch's
    twin needs it for autocast).
    """
    token = _BF16_MATMULS.set(precision == "bf16")
    try:
        yield
    finally:
        _BF16_MATMULS.reset(token)


def _bf16_operands(*arrays: jax.Array) -> tuple[jax.Array, ...]:
    """The arrays as bfloat16 (the operands of a bf16 matmul)."""
    return tuple(a.astype(jnp.bfloat16) for a in arrays)


def _members(v: jax.Array, ndim: int) -> jax.Array:
    """A per-member vector [Nq, D] as [Nq, 1, ..., 1, D] for an activation of rank ndim."""
    return v.reshape(v.shape[0], *([1] * (ndim - 2)), v.shape[-1])


class LayerNorm(nnx.Module):
    """Affine LayerNorm (eps 1e-5): weight [*lead, D] ones, bias [*lead, D] zeros."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.weight = nnx.Param(jnp.ones(shape, jnp.float32))
        self.bias = nnx.Param(jnp.zeros(shape, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Shapes: [..., D] -> [..., D]; stacked ([Nq, D] weights): [Nq, ..., D]."""
        w, b = self.weight[...], self.bias[...]
        if w.ndim == 2:
            w, b = _members(w, x.ndim), _members(b, x.ndim)
        return layer_norm(x, w, b)


class Linear(nnx.Module):
    """x @ weight + bias, optionally followed by `ln` (a NormedLinear when layer.norm).

    weight [*lead, in, out] (a conv layer, layer.kernel > 0: [k, k, in, out], HWIO),
    bias [*lead, out], ln: LayerNorm([*lead, out]) or None. `lead` = (Nq,) for an ensemble.
    """

    def __init__(self, layer: Layer, lead: tuple[int, ...] = ()) -> None:
        kernel = (layer.kernel, layer.kernel) if layer.kernel else ()
        shape = (*lead, *kernel, layer.in_dim, layer.out_dim)
        self.weight = nnx.Param(jnp.zeros(shape, jnp.float32))
        self.bias = nnx.Param(jnp.zeros((*lead, layer.out_dim), jnp.float32))
        self.ln = LayerNorm((*lead, layer.out_dim)) if layer.norm else None

    def __call__(self, x: jax.Array) -> jax.Array:
        """Affine only. Shapes: [..., in] -> [..., out]; stacked: [Nq, ..., in] ->
        [Nq, ..., out]."""
        return _dense(x, self.weight[...], self.bias[...], per_member=True)


def _dense(
    x: jax.Array, w: jax.Array, b: jax.Array | None = None, per_member: bool = False
) -> jax.Array:
    """x @ w + b, also for stacked members.

    A shared input is broadcast over the members, so every ensemble layer is one batched matmul
    whose output is [Nq, ..., out] in memory: as one unbatched matmul, XLA laid the output out
    member-last and each consumer read it transposed (docs/design.md#speed).

    Shapes: w [in, out]: x [..., in] -> [..., out]. w [Nq, in, out]: x [..., in] shared by every
    member, or x [Nq, ..., in] when per_member -> [Nq, ..., out]; b [out] or [Nq, out].
    """
    bf16 = _BF16_MATMULS.get()
    if w.ndim == 2:
        y = jnp.matmul(*_bf16_operands(x, w), preferred_element_type=jnp.float32) if bf16 else x @ w
        return y if b is None else y + b
    if not per_member:
        x = jnp.broadcast_to(x, (w.shape[0], *x.shape))
    spec = "q...i,qio->q...o"
    if bf16:
        y = jnp.einsum(spec, *_bf16_operands(x, w), preferred_element_type=jnp.float32)
    else:
        y = jnp.einsum(spec, x, w)
    return y if b is None else y + _members(b, y.ndim)


def _input_dense(parts: Sequence[jax.Array], w: jax.Array, b: jax.Array) -> jax.Array:
    """The first Linear of a module on the concatenation of `parts` (order [z, e, a, ...]).

    Parts of one leading shape are concatenated and multiplied once. Otherwise (one latent
    z [1, Z] against N actions [N, A]) each part multiplies its own row block of w and the
    results broadcast: the shared part is computed once, not N times.

    Shapes: parts [..., D_i] (broadcastable leading dims), w [(Nq,) sum D_i, out]
    -> [(Nq,) ..., out].
    """
    if len({p.shape[:-1] for p in parts}) == 1:
        return _dense(jnp.concatenate(list(parts), axis=-1), w, b)
    rank = max(p.ndim for p in parts)
    out, start = None, 0
    for p in parts:
        p = p.reshape((1,) * (rank - p.ndim) + p.shape)  # align the leading dims
        y = _dense(p, w[..., start : start + p.shape[-1], :])
        out = y if out is None else out + y
        start += p.shape[-1]
    return out + (b if w.ndim == 2 else _members(b, out.ndim))


class MLP(nnx.List):
    """The Linear layers of one module: NormedLinear + Mish hidden layers, then the last layer,
    a plain Linear or (layer.norm) NormedLinear + SimNorm. `lead` = (Nq,) for an ensemble."""

    def __init__(
        self, layers: Sequence[Layer], lead: tuple[int, ...] = (), simnorm_dim: int = 8
    ) -> None:
        super().__init__([Linear(layer, lead) for layer in layers])
        self.simnorm_dim = simnorm_dim

    def __call__(self, x: jax.Array | Sequence[jax.Array]) -> jax.Array:
        """x: an array or the parts of the input, concatenated along the last axis.

        Shapes: [..., in] -> [..., out] ([Nq, ..., out] for an ensemble).
        """
        return _mlp(self, list(x) if isinstance(x, list | tuple) else [x])


def _mlp(
    mlp: MLP,
    parts: Sequence[jax.Array],
    keep: jax.Array | None = None,
    dropout: float = 0.0,
    members: jax.Array | None = None,
    detach: bool = False,
) -> jax.Array:
    """Run `mlp` on the concatenation of `parts` (see _input_dense).

    keep: dropout keep mask (0/1) of layer 0, applied after its Linear, before its LayerNorm;
    kept activations are divided by 1 - dropout. members: int indices [m] of the ensemble
    members to evaluate (e.g. a bootstrap pair) instead of all Nq. detach: the parameters as
    constants (no gradient reaches them).

    Shapes: parts [..., D_i] -> [..., out]; ensemble: keep [Nq or m, ..., D] -> [Nq or m, ..., out].
    """

    def get(v: nnx.Param) -> jax.Array:
        value = v[...] if members is None else v[...][members]
        return jax.lax.stop_gradient(value) if detach else value

    n, x = len(mlp), None
    for i, layer in enumerate(mlp):
        w, b = get(layer.weight), get(layer.bias)
        x = _input_dense(parts, w, b) if x is None else _dense(x, w, b, per_member=True)
        if i == 0 and keep is not None:
            x = x * keep / (1.0 - dropout)
        if layer.ln is None:
            break
        lw, lb = get(layer.ln.weight), get(layer.ln.bias)
        if lw.ndim == 2:
            lw, lb = _members(lw, x.ndim), _members(lb, x.ndim)
        x = layer_norm(x, lw, lb)
        x = simnorm(x, mlp.simnorm_dim) if i == n - 1 else mish(x)
    return x


class ConvEncoder(nnx.List):
    """rgb encoder: x / 255 - 0.5, one VALID conv per layer (ReLU between), flatten
    channel-first [c, h, w] as the published encoder does, SimNorm (docs/method.md#layers).
    Conv weights [k, k, in, out] (HWIO), bias [out]."""

    def __init__(self, layers: Sequence[Layer], simnorm_dim: int = 8) -> None:
        super().__init__([Linear(layer) for layer in layers])
        self.strides = tuple(layer.stride for layer in layers)
        self.simnorm_dim = simnorm_dim

    def __call__(self, obs: jax.Array) -> jax.Array:
        """Shapes: obs [..., C, 64, 64] (uint8 or float) -> [..., Z]."""
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).astype(jnp.float32) / 255.0 - 0.5
        x = jnp.transpose(x, (0, 2, 3, 1))
        bf16 = _BF16_MATMULS.get()
        for i, (conv, s) in enumerate(zip(self, self.strides, strict=True)):
            operands = (x, conv.weight[...])
            x = jax.lax.conv_general_dilated(
                *(_bf16_operands(*operands) if bf16 else operands),
                (s, s),
                "VALID",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                preferred_element_type=jnp.float32 if bf16 else None,
            )
            x = x + conv.bias[...]
            if i < len(self.strides) - 1:
                x = jax.nn.relu(x)
        x = jnp.transpose(x, (0, 3, 1, 2))  # [N, h, w, C] -> [N, C, h, w]
        return simnorm(x.reshape(*lead, -1), self.simnorm_dim)


def renorm_rows(table: jax.Array, task: jax.Array) -> jax.Array:
    """The table with its rows `task` of L2 norm > 1 scaled by 1 / (norm + 1e-7) (torch's
    embedding_renorm_, max_norm 1; docs/method.md#task-embedding-and-action-masks).

    Shapes: table [Mt, E], task [...] int -> [Mt, E].
    """
    hit = jnp.zeros(table.shape[0], bool).at[jnp.reshape(task, -1)].set(True)
    norm = jnp.linalg.norm(table, axis=-1, keepdims=True)
    return jnp.where(hit[:, None] & (norm > 1.0), table * (1.0 / (norm + 1e-7)), table)


class TaskEmbedding(nnx.Module):
    """Task embedding table weight [Mt, E] with torch's Embedding(max_norm=1) semantics: a
    lookup returns the renormalised rows with a plain lookup gradient. The stored table is
    renormalised by renorm_, which the update and acting call where torch's lookups write."""

    def __init__(self, n_tasks: int, dim: int) -> None:
        self.weight = nnx.Param(jnp.zeros((n_tasks, dim), jnp.float32))

    def renorm_(self, task: jax.Array) -> None:
        """Renormalise the stored rows `task` (renorm_rows), in place. Shapes: task [...] int."""
        self.weight[...] = renorm_rows(self.weight[...], task)

    def __call__(self, task: jax.Array) -> jax.Array:
        """The rows of renorm_rows(weight, task); d/d weight is the plain lookup's.
        Shapes: task [...] int -> [..., E]."""
        w = self.weight[...]
        e = w[task]
        return jax.lax.stop_gradient(renorm_rows(w, task))[task] + (e - jax.lax.stop_gradient(e))
