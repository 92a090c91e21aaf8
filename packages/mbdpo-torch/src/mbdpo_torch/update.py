"""One gradient step (docs/method.md#update): world-model gradients, clipping and Adam, the
policy step, then Polyak averaging of the target Q ensemble.

The model Adam covers every parameter of optimizer_group "model" (lr x lr_scale: encoder.* at
enc_lr_scale); the policy Adam covers pi.* (eps 1e-5). Parameters that receive no gradient in
a step get a zero gradient, so Adam's moments and step count advance for every parameter
exactly as optax does.

With cfg.compile the two losses (forward and, through AOTAutograd, their backward) run as
torch.compile programs in cfg.compile_mode; autograd.grad, the clip and Adam stay eager
(docs/design.md#runtime).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from mbdpo_core.config.schema import Config
from mbdpo_core.metrics import LOSS_TERMS
from mbdpo_core.noise import UpdateNoise
from mbdpo_core.params import lr_scale, optimizer_group

from .data_parallel import _gather_rows, _mean_over_processes
from .losses import DeviceBatch, policy_loss, world_model_loss
from .world_model import WorldModel

_Optimizers = tuple[torch.optim.Adam, torch.optim.Adam]


def _group(model: WorldModel, group: str) -> dict[str, torch.nn.Parameter]:
    """The parameters optimiser `group` ("model" | "pi") updates, by canonical name."""
    params = model._canonical_parameters()
    return {n: p for n, p in params.items() if optimizer_group(n) == group}


def make_optimizers(model: WorldModel) -> _Optimizers:
    """(model Adam with one parameter group per learning rate, policy Adam with eps 1e-5).

    Both are torch's fused Adam (one kernel for all parameters; 3x faster than foreach on CPU,
    the same step within float32 rounding); its step counts are float32 tensors.
    """
    cfg = model.cfg
    by_lr: dict[float, list[torch.nn.Parameter]] = {}
    for name, p in _group(model, "model").items():
        by_lr.setdefault(cfg.lr * lr_scale(name, cfg), []).append(p)
    groups = [{"params": params, "lr": lr} for lr, params in by_lr.items()]
    optim = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    pi_params = list(_group(model, "pi").values())
    pi_optim = torch.optim.Adam(pi_params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-5, fused=True)
    return optim, pi_optim


def _step(
    loss: torch.Tensor,
    params: dict[str, torch.nn.Parameter],
    optim: torch.optim.Adam,
    cfg: Config,
    grads_out: dict[str, torch.Tensor] | None,
) -> torch.Tensor:
    """Gradients of loss (zero where unused; data-parallel: averaged over the processes),
    global-norm clip at cfg.grad_clip_norm, one Adam step. -> norm [].

    grads_out: when given, receives the unclipped gradients by canonical name.
    """
    plist = list(params.values())
    grads = torch.autograd.grad(loss, plist, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(plist, grads, strict=True)]
    grads = _mean_over_processes(grads, cfg)
    for (name, p), g in zip(params.items(), grads, strict=True):
        # fused Adam reads gradients as dense memory: a strided view (the gradient of a sliced
        # or permuted weight) would be misread
        p.grad = g.contiguous()
        if grads_out is not None:
            grads_out[name] = p.grad.detach().clone()
    norm = torch.nn.utils.clip_grad_norm_(plist, cfg.grad_clip_norm, foreach=True)
    optim.step()
    for p in plist:
        p.grad = None
    return norm


@functools.cache
def _losses(compile_mode: str | None) -> tuple[Callable, Callable]:
    """(world_model_loss, policy_loss): eager when compile_mode is None, else compiled in that
    mode (one pair per process and mode; torch.compile keeps a program per shape and model
    structure that its guards tell apart)."""
    if compile_mode is None:
        return world_model_loss, policy_loss
    return tuple(
        torch.compile(f, dynamic=False, mode=compile_mode) for f in (world_model_loss, policy_loss)
    )


def update_step(
    model: WorldModel,
    optimizers: _Optimizers,
    batch: DeviceBatch,
    noise: UpdateNoise,
    energy_stats: torch.Tensor,
    scale: torch.Tensor,
    grads_out: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """One full update; the model and both optimisers are stepped in place.

    Args:
        model: the world model.
        optimizers: (model Adam, policy Adam) of make_optimizers.
        batch: the batch on the model's device.
        noise: the update's noise bundle (torch tensors, drawn at the batch's B).
        energy_stats: running (mu, sigma) of F logits [2].
        scale: the RunningScale value [].
        grads_out: when given, receives the unclipped gradients by canonical name: d total
            loss for the model group, d pi_loss for pi.* (Q after the model step).

    Returns:
        (metrics as 0-d tensors keyed by mbdpo_core.metrics.UPDATE_METRICS, new energy_stats
        [2], new scale []).
    """
    cfg = model.cfg
    optim, pi_optim = optimizers
    wm_loss, pi_loss_fn = _losses(cfg.compile_mode if cfg.compile else None)
    _renorm_global_tasks(model, batch.task)
    total, aux = wm_loss(model, batch, noise, energy_stats)
    grad_norm = _step(total, _group(model, "model"), optim, cfg, grads_out)
    _renorm_global_tasks(model, batch.task)
    pi_loss, info = pi_loss_fn(model, aux["zs"].detach(), batch.task, noise, scale)
    pi_grad_norm = _step(pi_loss, _group(model, "pi"), pi_optim, cfg, grads_out)
    polyak(model, cfg.tau)
    new_stats = aux["energy_stats"]
    metrics = {name: aux[name].detach() for name in LOSS_TERMS}
    metrics.update(
        total_loss=total.detach(),
        grad_norm=grad_norm,
        pi_loss=pi_loss.detach(),
        pi_grad_norm=pi_grad_norm,
        energy_mean=new_stats[0],
        energy_std=new_stats[1],
        **info,
    )
    names = list(metrics)  # data-parallel: each process's losses are means over its rows
    metrics = dict(zip(names, _mean_over_processes([metrics[k] for k in names], cfg), strict=True))
    return metrics, new_stats, info["pi_scale"]


def _renorm_global_tasks(model: WorldModel, task: torch.Tensor | None) -> None:
    """Data-parallel multi-task: renormalise the embedding rows of every process's tasks, as
    the lookups of one process on the full batch do (a process's own lookups renormalise only
    its rows; already renormalised rows are left unchanged)."""
    if task is not None and model.cfg.data_parallel_devices > 1:
        model.nets["task_emb"].renorm_(_gather_rows(task, model.cfg, 0))


@torch.no_grad()
def polyak(model: WorldModel, tau: float) -> None:
    """target_q <- target_q + tau (q - target_q)."""
    nets = model.nets
    for online, target in zip(nets["q"].parameters(), nets["target_q"].parameters(), strict=True):
        target.lerp_(online, tau)
