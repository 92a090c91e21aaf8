"""One full training step as one pure function (spec "Update" 5-7), jitted once by the agent.

The state is a `flax.struct` dataclass (a pytree), so `update_step` maps state -> state without
host round-trips: world-model loss and gradient, global-norm clip, Adam (encoder at lr x
enc_lr_scale), policy loss and gradient with the updated Q, policy Adam (eps 1e-5), Polyak.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax
from flax import struct
from mbdpo_core.config.schema import Config
from mbdpo_core.noise import UpdateNoise

from .losses import Batch, policy_loss, world_model_loss
from .noise import draw_update_noise
from .world_model import WorldModel

Params = dict[str, jax.Array]


@struct.dataclass
class TrainState:
    """Everything an agent carries between calls (all arrays).

    Fields: params (canonical dict incl. target_q.*), model_opt / pi_opt (optax
    ScaleByAdamState: count, mu, nu over model / pi.* parameters), scale [] (RunningScale),
    energy_stats [2] (mean, std of F logits), prev_plan [H, A], key (PRNG key).
    """

    params: Params
    model_opt: optax.ScaleByAdamState
    pi_opt: optax.ScaleByAdamState
    scale: jax.Array
    energy_stats: jax.Array
    prev_plan: jax.Array
    key: jax.Array


def is_pi(name: str) -> bool:
    return name.startswith("pi.")


def is_model(name: str) -> bool:
    """Parameters of the world-model optimizer: all but pi.* and target_q.*."""
    return not (is_pi(name) or name.startswith("target_q."))


def model_adam() -> optax.GradientTransformation:
    return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)


def pi_adam() -> optax.GradientTransformation:
    return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-5)


def init_state(cfg: Config, params: Mapping[str, jax.Array], key: jax.Array) -> TrainState:
    """Fresh optimizer state, RunningScale 1, F stats (0, 1), zero warm start."""
    params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    return TrainState(
        params=params,
        model_opt=model_adam().init({k: v for k, v in params.items() if is_model(k)}),
        pi_opt=pi_adam().init({k: v for k, v in params.items() if is_pi(k)}),
        scale=jnp.float32(1.0),
        energy_stats=jnp.array([0.0, 1.0], jnp.float32),
        prev_plan=jnp.zeros((cfg.horizon, cfg.action_dim), jnp.float32),
        key=key,
    )


def clip_by_global_norm(grads: Params, max_norm: float) -> tuple[Params, jax.Array]:
    """grads x min(1, max_norm / (norm + 1e-6)) (torch's clip_grad_norm_); returns the norm too."""
    norm = optax.tree.norm(grads)
    factor = jnp.minimum(1.0, max_norm / (norm + 1e-6))
    return jax.tree.map(lambda g: g * factor, grads), norm


def adam_step(
    tx: optax.GradientTransformation,
    opt: optax.ScaleByAdamState,
    params: Params,
    grads: Params,
    lr: Mapping[str, float],
) -> tuple[Params, optax.ScaleByAdamState]:
    """params - lr[name] * adam_direction. Shapes: dicts of matching arrays."""
    direction, opt = tx.update(grads, opt)
    return {k: params[k] - lr[k] * direction[k] for k in params}, opt


def update_step(
    cfg: Config, state: TrainState, batch: Batch, noise: UpdateNoise, with_grads: bool = False
) -> tuple[TrainState, dict[str, jax.Array], Params]:
    """One update with the given noise. Returns (new state, metrics, gradients).

    Gradients (canonical names, before clipping; world-model parameters and pi.*) are returned
    when with_grads, else an empty dict.
    """
    params = state.params
    stats = (state.energy_stats[0], state.energy_stats[1])
    model_params = {k: v for k, v in params.items() if is_model(k)}

    def wm_loss(mp: Params):
        return world_model_loss(WorldModel(cfg, {**params, **mp}), batch, noise, stats)

    (_, aux), grads = jax.value_and_grad(wm_loss, has_aux=True)(model_params)
    clipped, grad_norm = clip_by_global_norm(grads, cfg.grad_clip_norm)
    lr = {k: cfg.lr * (cfg.enc_lr_scale if k.startswith("encoder.") else 1.0) for k in grads}
    model_params, model_opt = adam_step(model_adam(), state.model_opt, model_params, clipped, lr)
    params = {**params, **model_params}

    zs = jax.lax.stop_gradient(aux["zs"])
    pi_params = {k: v for k, v in params.items() if is_pi(k)}

    def pi_loss(pp: Params):
        return policy_loss(WorldModel(cfg, {**params, **pp}), zs, batch["task"], noise, state.scale)

    (pi_value, pi_info), pi_grads = jax.value_and_grad(pi_loss, has_aux=True)(pi_params)
    pi_clipped, pi_grad_norm = clip_by_global_norm(pi_grads, cfg.grad_clip_norm)
    pi_lr = dict.fromkeys(pi_grads, cfg.lr)
    pi_params, pi_opt = adam_step(pi_adam(), state.pi_opt, pi_params, pi_clipped, pi_lr)
    params = {**params, **pi_params}

    for k in [k for k in params if k.startswith("target_q.")]:
        online = params[k[len("target_") :]]
        params[k] = params[k] + cfg.tau * (online - params[k])

    mu, sigma = aux["energy_stats"]
    metrics = {
        k: aux[k]
        for k in (
            "consistency_loss",
            "reward_loss",
            "value_loss",
            "termination_loss",
            "energy_loss",
            "score_loss",
            "total_loss",
        )
    }
    metrics.update(
        grad_norm=grad_norm,
        pi_loss=pi_value,
        pi_grad_norm=pi_grad_norm,
        **pi_info,
        energy_mean=mu,
        energy_std=sigma,
    )
    new_state = state.replace(
        params=params,
        model_opt=model_opt,
        pi_opt=pi_opt,
        scale=pi_info["pi_scale"],
        energy_stats=jnp.stack([mu, sigma]),
    )
    all_grads = {**grads, **pi_grads} if with_grads else {}
    return new_state, metrics, all_grads


def train_step(cfg: Config, state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
    """update_step with its noise drawn from the state's key (inside the jit)."""
    key, sub = jax.random.split(state.key)
    noise = draw_update_noise(cfg, sub, batch["action"].shape[1])
    state, metrics, _ = update_step(cfg, state.replace(key=key), batch, noise)
    return state, metrics
