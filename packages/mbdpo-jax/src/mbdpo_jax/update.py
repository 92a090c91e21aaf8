"""One gradient step (docs/method.md#update): world-model gradients, global-norm clipping,
Adam, the policy step, Polyak averaging — on NNX objects, in place, traced inside the agent's
jitted update.

The model Adam updates every parameter but pi.* and target_q.* (encoder.* at lr x
enc_lr_scale, eps 1e-8); the policy Adam updates pi.* (eps 1e-5); target_q.* follows q.* by
Polyak averaging (mbdpo_core.params.optimizer_group, lr_scale).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from mbdpo_core.config.schema import Config
from mbdpo_core.metrics import LOSS_TERMS, UPDATE_METRICS
from mbdpo_core.noise import UpdateNoise
from mbdpo_core.params import lr_scale

from .losses import DeviceBatch, policy_loss, world_model_loss
from .params_io import _in_group, _name
from .world_model import WorldModel


def _lr_by_name(cfg: Config) -> optax.GradientTransformation:
    """updates -> -lr x lr_scale(name) x updates (the name from each leaf's state path)."""

    def update(updates, state, params=None):
        def scale(path, u):
            keys = tuple(getattr(k, "key", getattr(k, "idx", k)) for k in path)
            return -cfg.lr * lr_scale(_name(keys), cfg) * u

        return jax.tree_util.tree_map_with_path(scale, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizers(model: WorldModel) -> tuple[nnx.Optimizer, nnx.Optimizer]:
    """(model Adam, policy Adam) over the model's parameter groups."""
    cfg = model.cfg
    model_tx = optax.chain(optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8), _lr_by_name(cfg))
    pi_tx = optax.chain(optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-5), _lr_by_name(cfg))
    return (
        nnx.Optimizer(model, model_tx, wrt=_in_group("model")),
        nnx.Optimizer(model, pi_tx, wrt=_in_group("pi")),
    )


def _clip(grads: nnx.State, max_norm: float) -> tuple[nnx.State, jax.Array]:
    """grads x min(1, max_norm / (norm + 1e-6)) (torch's clip_grad_norm_); and the norm."""
    norm = optax.tree.norm(grads)
    factor = jnp.minimum(1.0, max_norm / (norm + 1e-6))
    return jax.tree.map(lambda g: g * factor, grads), norm


def _value_and_grad(loss_fn, model: WorldModel, group: str):
    """(loss_fn(model), aux), d loss / d parameters of optimiser `group` (an nnx.State)."""
    graphdef, params, rest = nnx.split(model, _in_group(group), ...)
    return jax.value_and_grad(lambda p: loss_fn(nnx.merge(graphdef, p, rest)), has_aux=True)(params)


def polyak(model: WorldModel, tau: float) -> None:
    """target_q <- target_q + tau (q - target_q), in place."""
    target, online = model.nets["target_q"], model.nets["q"]
    new = jax.tree.map(lambda t, o: t + tau * (o - t), nnx.state(target), nnx.state(online))
    nnx.update(target, new)


def _renorm_task_rows(model: WorldModel, task: jax.Array | None) -> None:
    """Renormalise the stored task-embedding rows `task` (multi-task only), in place."""
    if model.cfg.multitask and task is not None:
        model.nets["task_emb"].renorm_(task)


def update_step(
    model: WorldModel,
    optimizers: tuple[nnx.Optimizer, nnx.Optimizer],
    batch: DeviceBatch,
    noise: UpdateNoise,
    energy_stats: jax.Array,
    scale: jax.Array,
    grads_out: dict[str, jax.Array] | None = None,
) -> tuple[dict[str, jax.Array], jax.Array, jax.Array]:
    """One update; the model and the optimisers change in place.

    Args:
        model, optimizers: the world model and its (model, pi) optimisers.
        batch, noise: the batch and the update's noise bundle.
        energy_stats: running (mean, std) of the F logits [2]; scale: RunningScale value [].
        grads_out: when given, receives the unclipped gradients by canonical name: d total
            loss for the model group, d pi_loss for pi.* (with Q after the model step).

    Returns:
        (metrics: UPDATE_METRICS as 0-d arrays, new energy_stats [2], new scale []).
    """
    cfg = model.cfg
    optim, pi_optim = optimizers
    stats = (energy_stats[0], energy_stats[1])

    def wm_loss(m: WorldModel):
        return world_model_loss(m, batch, noise, stats)

    # torch's lookups renormalise the batch's task rows in place: before the world-model step
    # (so Adam steps from the renormalised rows) and again in the policy step, after it
    _renorm_task_rows(model, batch.task)
    (_, aux), grads = _value_and_grad(wm_loss, model, "model")
    clipped, grad_norm = _clip(grads, cfg.grad_clip_norm)
    optim.update(model, clipped)
    _renorm_task_rows(model, batch.task)

    zs = jax.lax.stop_gradient(aux["zs"])

    def pi_loss(m: WorldModel):
        return policy_loss(m, zs, batch.task, noise, scale)

    (pi_value, pi_info), pi_grads = _value_and_grad(pi_loss, model, "pi")
    pi_clipped, pi_grad_norm = _clip(pi_grads, cfg.grad_clip_norm)
    pi_optim.update(model, pi_clipped)
    polyak(model, cfg.tau)

    if grads_out is not None:
        for g in (grads, pi_grads):
            grads_out.update({_name(p): v[...] for p, v in nnx.to_flat_state(g)})
    mean, std = aux["energy_stats"]
    values = {
        **{k: aux[k] for k in (*LOSS_TERMS, "total_loss")},
        "grad_norm": grad_norm,
        "pi_loss": pi_value,
        "pi_grad_norm": pi_grad_norm,
        **pi_info,
        "energy_mean": mean,
        "energy_std": std,
    }
    metrics = {k: values[k] for k in UPDATE_METRICS}
    return metrics, jnp.stack([mean, std]), pi_info["pi_scale"]
