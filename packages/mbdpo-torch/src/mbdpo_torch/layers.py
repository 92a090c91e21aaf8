"""Parameter containers of the world model (docs/method.md#layers).

Parameters are stored so that `named_parameters()` yields the canonical names of
mbdpo_core.params directly (`reward.0.weight`, `reward.0.ln.bias`, `q.1.weight`, ...), with
Linear weights in [in, out] layout: y = x @ W + b. An ensemble (`lead` = (Nq,)) stacks its
members along a leading axis; fused.ensemble_forward evaluates it. Shapes: M mlp width,
Z latent, E task embedding, Mt tasks, C channels.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from mbdpo_core.params import Layer
from torch import nn

from .fused import linear, run_layers
from .math import layer_norm, simnorm


def matmul_precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context the agent acts and updates in: cfg.precision of every matmul
    (docs/design.md#runtime).

    float32: none (nothing is cast). bf16: torch.autocast(device.type, bfloat16), which runs mm,
    addmm, bmm, baddbmm, matmul, einsum and conv with bfloat16 operands, float32 accumulation and
    bfloat16 results; parameters, gradients and the optimiser step stay float32. On CUDA autocast
    runs layer_norm, softmax, log_softmax, exp and log in float32; its CPU list lacks them, so on
    CPU they run on the bfloat16 results (a looser bf16 than CUDA's).
    """
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class LayerNorm(nn.Module):
    """Affine parameters of a LayerNorm: weight, bias [*lead, M]."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the last axis (eps 1e-5), then scale and shift. Shapes: [..., M]."""
        return layer_norm(x, self.weight, self.bias)


class Linear(nn.Module):
    """A Linear layer, optionally NormedLinear (LayerNorm `ln` applied by the owning MLP).

    weight [*lead, in, out], bias [*lead, out]; a conv layer (layer.kernel > 0) holds weight
    [k, k, in, out] (HWIO) instead.
    """

    def __init__(self, layer: Layer, lead: tuple[int, ...] = ()) -> None:
        super().__init__()
        kernel = (layer.kernel, layer.kernel) if layer.kernel else ()
        self.weight = nn.Parameter(torch.zeros(*lead, *kernel, layer.in_dim, layer.out_dim))
        self.bias = nn.Parameter(torch.zeros(*lead, layer.out_dim))
        self.ln = LayerNorm((*lead, layer.out_dim)) if layer.norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W + b (single layer, no lead). Shapes: [..., in] -> [..., out]."""
        return linear(x, self.weight, self.bias)


class MLP(nn.ModuleList):
    """One Linear per canonical layer of a module: NormedLinear + Mish hidden layers, then a
    plain Linear, or NormedLinear + SimNorm when the last layer has a LayerNorm.

    `lead` = (Nq,) stacks an ensemble (evaluated by fused.ensemble_forward, not by forward).
    """

    def __init__(self, layers: list[Layer], lead: tuple[int, ...] = (), simnorm_dim: int = 8):
        super().__init__(Linear(layer, lead) for layer in layers)
        self.simnorm_dim = simnorm_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shapes: [..., in] -> [..., out]."""
        return run_layers(self, x, self.simnorm_dim)


class ConvEncoder(nn.ModuleList):
    """The rgb encoder: convs with ReLU between, flatten channel-first (c, h, w) as the
    published encoder does, SimNorm (docs/method.md#layers). Weights stay in canonical HWIO
    layout and are permuted to torch's OIHW on use."""

    def __init__(self, layers: list[Layer], simnorm_dim: int = 8) -> None:
        super().__init__(Linear(layer) for layer in layers)
        self.strides = [layer.stride for layer in layers]
        self.simnorm_dim = simnorm_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 frames -> latent. Shapes: obs [..., C, 64, 64] -> [..., Z]."""
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).float() / 255.0 - 0.5
        for i, (conv, stride) in enumerate(zip(self, self.strides, strict=True)):
            x = F.conv2d(x, conv.weight.permute(3, 2, 0, 1), conv.bias, stride=stride)
            if i < len(self) - 1:
                x = F.relu(x)
        return simnorm(x.reshape(*lead, -1), self.simnorm_dim)  # x is [N, C, h, w]


def renorm_rows(table: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
    """Rows `task` of the table with L2 norm > 1 scaled by 1 / (norm + 1e-7), in place (torch's
    embedding_renorm_, max_norm 1); returns the table.

    docs/method.md#task-embedding-and-action-masks. Shapes: table [Mt, E], task [...] int.
    """
    with torch.no_grad():
        return torch.embedding_renorm_(table, task.reshape(-1).long(), 1.0, 2.0)


class TaskEmbedding(nn.Module):
    """Task embedding table: weight [Mt, E], torch's Embedding(max_norm=1): every lookup first
    renormalises the looked-up rows of the weight in place, then is a plain lookup (its gradient
    is not differentiated through the renormalisation)."""

    def __init__(self, n_tasks: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_tasks, dim))

    def renorm_(self, task: torch.Tensor) -> None:
        """Renormalise the stored rows `task` (renorm_rows). Shapes: task [...] int."""
        renorm_rows(self.weight, task)

    def forward(self, task: torch.Tensor) -> torch.Tensor:
        """renorm_(task), then the rows. Shapes: task [...] -> [..., E]."""
        self.renorm_(task)
        return F.embedding(task, self.weight)
