"""Canonical parameter naming of the world model, shared by both backends (the parity contract).

See docs/design.md#parity-contract. Layout (float32 everywhere):
  Linear layer i of module m:   `m.i.weight` [in, out], `m.i.bias` [out]
  its LayerNorm (NormedLinear): `m.i.ln.weight` [out], `m.i.ln.bias` [out]
  Q ensemble (stacked members): `q.i.weight` [Nq, in, out], `q.i.bias` [Nq, out], `q.i.ln.*`
  target Q ensemble:            `target_q.*`, same shapes as `q.*`
  rgb encoder conv layer i:     `encoder.i.weight` [kh, kw, in, out] (HWIO), `encoder.i.bias` [out]
  task embedding (multi-task):  `task_emb.weight` [Mt, E]

Modules (inputs concatenated in this order; e = task embedding, present only when multi-task):
  encoder     [obs, e]              -> Z      max(num_enc_layers-1, 1) x enc_dim; last SimNorm
  dynamics    [z, e, a]             -> Z      2 x mlp_dim; last NormedLinear + SimNorm
  reward      [z, e, a]             -> Kb     2 x mlp_dim; last plain Linear
  termination [z, e]                -> 1      only when episodic
  pi          [z, e]                -> 2A     (mean, raw log-std)
  energy      [z, e, a]             -> 1      the implicit energy head F
  q           [z, e, a]             -> Kb     per member; dropout in layer 0 (Linear, drop, LN)
  score       [z, e, x(H*A), temb]  -> H*A    temb = sinusoidal embedding of the noise level
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config.schema import Config

ZERO_LAST = ("reward", "energy", "q")
"""Modules whose last Linear weight is initialised to zero."""


@dataclass(frozen=True)
class Layer:
    """One layer of a module: a Linear (optionally followed by LayerNorm) or a conv."""

    in_dim: int
    out_dim: int
    norm: bool
    kernel: int = 0
    stride: int = 1


def conv_layers(cfg: Config) -> list[Layer]:
    """The rgb encoder: 4 convs (k7 s2, k5 s2, k3 s2, k3 s1) on 9 stacked channels."""
    c, ch = cfg.obs_shape[0], cfg.num_channels
    return [
        Layer(c, ch, False, 7, 2),
        Layer(ch, ch, False, 5, 2),
        Layer(ch, ch, False, 3, 2),
        Layer(ch, ch, False, 3, 1),
    ]


def module_layers(cfg: Config) -> dict[str, list[Layer]]:
    """Layer widths of every module, in the canonical module order."""
    Z, E, A, M, Kb = cfg.latent_dim, cfg.task_dim, cfg.action_dim, cfg.mlp_dim, cfg.num_bins

    def mlp(in_dim: int, out_dim: int, hidden: list[int], last_norm: bool = False) -> list[Layer]:
        dims = [in_dim, *hidden]
        layers = [Layer(dims[i], dims[i + 1], True) for i in range(len(hidden))]
        return [*layers, Layer(dims[-1], out_dim, last_norm)]

    out: dict[str, list[Layer]] = {}
    if cfg.obs == "rgb":
        out["encoder"] = conv_layers(cfg)
    else:
        enc_hidden = [cfg.enc_dim] * max(cfg.num_enc_layers - 1, 1)
        out["encoder"] = mlp(cfg.obs_shape[0] + E, Z, enc_hidden, last_norm=True)
    out["dynamics"] = mlp(Z + E + A, Z, [M, M], last_norm=True)
    out["reward"] = mlp(Z + E + A, Kb, [M, M])
    if cfg.episodic:
        out["termination"] = mlp(Z + E, 1, [M, M])
    out["pi"] = mlp(Z + E, 2 * A, [M, M])
    out["energy"] = mlp(Z + E + A, 1, [M, M])
    out["q"] = mlp(Z + E + A, Kb, [M, M])
    score_in = Z + E + cfg.horizon * A + cfg.diffusion_time_embed_dim
    out["score"] = mlp(score_in, cfg.horizon * A, [M, M])
    return out


def param_shapes(cfg: Config, target: bool = True) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every parameter (with `target_q.*` when target=True)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for module, layers in module_layers(cfg).items():
        lead = (cfg.num_q,) if module == "q" else ()
        for i, layer in enumerate(layers):
            p = f"{module}.{i}"
            if layer.kernel:
                shapes[f"{p}.weight"] = (layer.kernel, layer.kernel, layer.in_dim, layer.out_dim)
            else:
                shapes[f"{p}.weight"] = (*lead, layer.in_dim, layer.out_dim)
            shapes[f"{p}.bias"] = (*lead, layer.out_dim)
            if layer.norm:
                shapes[f"{p}.ln.weight"] = (*lead, layer.out_dim)
                shapes[f"{p}.ln.bias"] = (*lead, layer.out_dim)
    if cfg.multitask:
        shapes["task_emb.weight"] = (cfg.n_tasks, cfg.task_dim)
    if target:
        for name in [n for n in shapes if n.startswith("q.")]:
            shapes[f"target_{name}"] = shapes[name]
    return shapes


def init_params(cfg: Config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Initial parameters in canonical naming (docs/method.md#initialisation).

    Linear weights: truncated normal, std 0.02, cut at +-2 (absolute, as PyTorch's default);
    biases 0; LayerNorm weight 1, bias 0; last weight of reward, energy and every Q member 0;
    task embedding uniform(-0.02, 0.02); target Q = copy of Q. rgb conv layers keep PyTorch's
    default Conv2d init: weight and bias uniform(-b, b), b = 1 / sqrt(in x k x k).
    """
    shapes = param_shapes(cfg, target=False)
    last = {m: len(layers) - 1 for m, layers in module_layers(cfg).items()}
    convs = dict(enumerate(conv_layers(cfg))) if cfg.obs == "rgb" else {}
    params: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        module, *rest = name.split(".")
        if name == "task_emb.weight":
            value = rng.uniform(-0.02, 0.02, shape)
        elif module == "encoder" and convs:  # weight, then bias, of each conv layer
            conv = convs[int(rest[0])]
            bound = 1.0 / np.sqrt(conv.in_dim * conv.kernel**2)
            value = rng.uniform(-bound, bound, shape)
        elif rest[-1] == "weight" and rest[-2] == "ln":
            value = np.ones(shape)
        elif rest[-1] == "bias":
            value = np.zeros(shape)
        elif module in ZERO_LAST and int(rest[0]) == last[module]:
            value = np.zeros(shape)
        else:
            value = np.clip(rng.standard_normal(shape) * 0.02, -2.0, 2.0)
        params[name] = value.astype(np.float32)
    for name in [n for n in params if n.startswith("q.")]:
        params[f"target_{name}"] = params[name].copy()
    return params


def nonzero_init_params(cfg: Config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """init_params with its all-zero weight matrices (the last layers of reward, energy and Q)
    drawn from N(0, 0.02^2) and the target Q a copy of Q: a model as at the start of training
    whose values, softmaxes and elite choices are not degenerate (benchmarks, the bf16 bounds).
    LayerNorm gains stay 1 and biases 0."""
    params = init_params(cfg, rng)
    for name, value in params.items():
        matrix = name.endswith(".weight") and not name.endswith(".ln.weight")
        if matrix and not name.startswith("target_q.") and not value.any():
            params[name] = (0.02 * rng.standard_normal(value.shape)).astype(np.float32)
    for name in [n for n in params if n.startswith("q.")]:
        params[f"target_{name}"] = params[name].copy()
    return params


def optimizer_group(name: str) -> str | None:
    """The optimiser of a parameter: "pi" (policy Adam, eps 1e-5) for `pi.*`, None for the
    Polyak-averaged `target_q.*`, else "model" (docs/method.md#update)."""
    if name.startswith("pi."):
        return "pi"
    if name.startswith("target_q."):
        return None
    return "model"


def lr_scale(name: str, cfg: Config) -> float:
    """Learning-rate factor of a parameter: enc_lr_scale for `encoder.*`, else 1."""
    return cfg.enc_lr_scale if name.startswith("encoder.") else 1.0


def action_masks(cfg: Config) -> np.ndarray:
    """Per-task action masks [M, A]: 1 on the task's own action dims, 0 on padding."""
    masks = np.zeros((cfg.n_tasks, cfg.action_dim), np.float32)
    for i, dim in enumerate(cfg.action_dims):
        masks[i, :dim] = 1.0
    return masks
