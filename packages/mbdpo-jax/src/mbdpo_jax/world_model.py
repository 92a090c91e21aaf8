"""The latent world model (docs/method.md#world-model) as a Flax NNX module tree.

`WorldModel(cfg).nets` holds one module per canonical module name of mbdpo_core.params
(encoder, dynamics, reward, termination when episodic, pi, energy, q, score, target_q, task_emb
when multi-task), so a parameter's path minus `nets` is its canonical name
(`nets/q/0/ln/weight` <-> `q.0.ln.weight`). The agent keeps the model split (nnx.split) and
merges it inside its jitted act and update.

Shapes: Z latent, A action, Kb bins, Nq Q members, H horizon, M mlp width, E task embedding;
`...` any leading dims, broadcastable across the inputs of one call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from mbdpo_core.config.schema import Config
from mbdpo_core.heads import HeadCalls
from mbdpo_core.params import action_masks, conv_layers, module_layers

from .layers import MLP, ConvEncoder, TaskEmbedding, _mlp
from .math import time_embedding

_HALF_LOG_2PI = 0.5 * float(np.log(2.0 * np.pi))


class WorldModel(HeadCalls, nnx.Module):
    """encode / next / reward / termination / pi / Q / F / score (mbdpo_core.protocols).

    `task` is an int array broadcastable to the leading dims of the latent, or None
    (single-task).
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        layers, dim = module_layers(cfg), cfg.simnorm_dim
        nets: dict[str, nnx.Module] = {}
        for name, module in layers.items():
            if name == "encoder" and cfg.obs == "rgb":
                nets[name] = ConvEncoder(conv_layers(cfg), dim)
            else:
                nets[name] = MLP(module, (cfg.num_q,) if name == "q" else (), dim)
        nets["target_q"] = MLP(layers["q"], (cfg.num_q,), dim)
        if cfg.multitask:
            nets["task_emb"] = TaskEmbedding(cfg.n_tasks, cfg.task_dim)
        self.nets = nnx.Dict(nets)

    def _inputs(self, x: jax.Array, task: jax.Array | None, *rest: jax.Array) -> list[jax.Array]:
        """The inputs [x, e, *rest] of a first layer (e only when multi-task), unconcatenated."""
        if not self.cfg.multitask:
            return [x, *rest]
        if task is None:
            raise ValueError("A multi-task world model needs task ids; got task=None.")
        return [x, self.nets["task_emb"](task), *rest]

    def action_mask(self, task: jax.Array | None) -> jax.Array:
        """1 on the task's own action dims, 0 on padding. Shapes: task [...] -> [..., A]
        (single-task: ones [A])."""
        if not self.cfg.multitask:
            return jnp.ones(self.cfg.action_dim, jnp.float32)
        return jnp.asarray(action_masks(self.cfg))[task]

    def score(
        self, z: jax.Array, x: jax.Array, tau: jax.Array, task: jax.Array | None
    ) -> jax.Array:
        """Score network (docs/method.md#score-network).

        Shapes: z [..., Z], x [..., H, A], tau [] or [...] int -> [..., H, A].
        """
        flat = x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])
        temb = time_embedding(tau, self.cfg.diffusion_time_embed_dim)
        out = self.nets["score"](self._inputs(z, task, flat, temb))
        return out.reshape(*out.shape[:-1], *x.shape[-2:])

    def pi(
        self, z: jax.Array, task: jax.Array | None, eps: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Tanh-squashed Gaussian policy prior sampled with the standard-normal eps.

        Shapes: z [..., Z], eps [..., A] -> action [..., A]; info mean [..., A] (squashed),
        log_std [..., A], entropy [..., 1], scaled_entropy [..., 1].
        """
        cfg, A = self.cfg, self.cfg.action_dim
        out = self.nets["pi"](self._inputs(z, task))
        mean, raw = out[..., :A], out[..., A:]
        lo, hi = cfg.log_std_min, cfg.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (jnp.tanh(raw) + 1.0)
        if cfg.multitask:
            mask = self.action_mask(task)
            mean, log_std, eps = mean * mask, log_std * mask, eps * mask
            n = jnp.sum(mask, axis=-1, keepdims=True)
        else:
            n = float(A)
        lp_gauss = jnp.sum(-0.5 * jnp.square(eps) - log_std, axis=-1, keepdims=True)
        lp_gauss = lp_gauss - _HALF_LOG_2PI * A
        action = jnp.tanh(mean + eps * jnp.exp(log_std))
        log_det = jnp.sum(jnp.log(jax.nn.relu(1.0 - jnp.square(action)) + 1e-6), -1, keepdims=True)
        lp = lp_gauss - log_det
        info = {
            "mean": jnp.tanh(mean),
            "log_std": log_std,
            "entropy": -lp,
            "scaled_entropy": -lp * (lp_gauss * n) / (lp + 1e-8),
        }
        return action, info

    def Q(
        self,
        z: jax.Array,
        a: jax.Array,
        task: jax.Array | None,
        target: bool = False,
        keep: jax.Array | None = None,
        members: jax.Array | None = None,
        detach: bool = False,
    ) -> jax.Array:
        """Logits of the Q members, one batched matmul per layer over the stacked weights.

        Args:
            z, a, task: inputs (task ids or None).
            target: use the Polyak-averaged target ensemble.
            keep: dropout keep masks of layer 0 (training); None = no dropout.
            members: int indices [m]: evaluate only these members (e.g. a bootstrap pair).
            detach: the ensemble's parameters as constants (the gradient reaches z and a only).

        Shapes: z [..., Z], a [..., A], keep [Nq or m, ..., M] -> [Nq or m, ..., Kb].
        """
        ens = self.nets["target_q" if target else "q"]
        return _mlp(ens, self._inputs(z, task, a), keep, self.cfg.dropout, members, detach)
