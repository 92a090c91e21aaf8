"""Parameter containers of the world model (docs/method.md#layers).

Parameters are stored so that `named_parameters()` yields the canonical names of
mbdpo_core.params directly (`reward.0.weight`, `reward.0.ln.bias`, `q.1.weight`, ...), with
Linear weights in [in, out] layout: y = x @ W + b. An ensemble (`lead` = (Nq,)) stacks its
members along a leading axis; fused.ensemble_forward evaluates it. Shapes: M mlp width,
Z latent, E task embedding, Mt tasks, C channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mbdpo_core.params import Layer
from torch import nn

from .fused import linear, run_layers
from .math import layer_norm, simnorm


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
    """The rgb encoder: convs with ReLU between, flatten, SimNorm. Weights stay in canonical
    HWIO layout and are permuted to torch's OIHW on use."""

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
        return simnorm(x.permute(0, 2, 3, 1).reshape(*lead, -1), self.simnorm_dim)


class TaskEmbedding(nn.Module):
    """Task embedding table: weight [Mt, E]; rows are renormalised to norm <= 1 on lookup."""

    def __init__(self, n_tasks: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_tasks, dim))

    def forward(self, task: torch.Tensor) -> torch.Tensor:
        """Functional max_norm=1 (the weight is not modified). Shapes: task [...] -> [..., E]."""
        e = self.weight[task]
        return e * torch.clamp(1.0 / (e.norm(dim=-1, keepdim=True) + 1e-7), max=1.0)
