"""The latent world model (mbdpo_core.protocols.WorldModel) over canonical parameters.

`WorldModel(cfg, params)` is a light view: it holds the config and a dict of jax arrays in the
canonical naming of mbdpo_core.params and evaluates the modules as pure functions, so it can be
built inside a jitted function from traced parameters. Shapes: Z latent, A action, K bins,
Nq Q members, H horizon, M mlp_dim; `...` any leading dims (broadcastable across inputs).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from mbdpo_core.config.schema import Config
from mbdpo_core.params import action_masks

from .layers import conv_encoder, mlp, task_embedding
from .math import LOG_2PI, time_embedding


class WorldModel:
    """Encoder, dynamics, reward, termination, policy prior, Q ensemble, energy F, score net."""

    def __init__(self, cfg: Config, params: Mapping[str, jax.Array]):
        self.cfg = cfg
        self.params = params
        self.masks = jnp.asarray(action_masks(cfg))
        self.discounts = jnp.asarray(np.asarray(cfg.discounts, np.float32))

    def _parts(self, x: jax.Array, task: jax.Array | None, *rest: jax.Array) -> list[jax.Array]:
        if not self.cfg.multitask:
            return [x, *rest]
        if task is None:
            raise ValueError("A multi-task world model needs task ids; got task=None.")
        return [x, task_embedding(self.params, task), *rest]

    def _mlp(self, module: str, parts: list[jax.Array], last: str = "linear") -> jax.Array:
        return mlp(self.params, module, parts, last, simnorm_dim=self.cfg.simnorm_dim)

    def encode(self, obs: jax.Array, task: jax.Array | None) -> jax.Array:
        """Shapes: obs [..., *O] -> z [..., Z] (SimNorm)."""
        if self.cfg.obs == "rgb":
            return conv_encoder(self.params, obs, self.cfg.simnorm_dim)
        return self._mlp("encoder", self._parts(obs, task), "simnorm")

    def next(self, z: jax.Array, a: jax.Array, task: jax.Array | None) -> jax.Array:
        """Latent dynamics. Shapes: z [..., Z], a [..., A] -> [..., Z]."""
        return self._mlp("dynamics", self._parts(z, task, a), "simnorm")

    def reward(self, z: jax.Array, a: jax.Array, task: jax.Array | None) -> jax.Array:
        """Reward logits. Shapes: z [..., Z], a [..., A] -> [..., K]."""
        return self._mlp("reward", self._parts(z, task, a))

    def termination(self, z: jax.Array, task: jax.Array | None) -> jax.Array:
        """Termination logit (episodic only). Shapes: z [..., Z] -> [..., 1]."""
        return self._mlp("termination", self._parts(z, task))

    def F(self, z: jax.Array, a: jax.Array, task: jax.Array | None) -> jax.Array:
        """Energy logit. Shapes: z [..., Z], a [..., A] -> [..., 1]."""
        return self._mlp("energy", self._parts(z, task, a))

    def score(
        self, z: jax.Array, x: jax.Array, tau: jax.Array, task: jax.Array | None
    ) -> jax.Array:
        """Score network. Shapes: z [..., Z], x [..., H, A], tau [...] int -> [..., H, A]."""
        flat = x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])
        temb = time_embedding(tau, self.cfg.diffusion_time_embed_dim)
        out = self._mlp("score", self._parts(z, task, flat, temb))
        return out.reshape(*out.shape[:-1], *x.shape[-2:])

    def pi(
        self, z: jax.Array, task: jax.Array | None, eps: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Tanh-squashed Gaussian policy prior with given standard-normal eps.

        Shapes: z [..., Z], eps [..., A] -> action [..., A]; info mean [..., A] (squashed),
        log_std [..., A], entropy [..., 1], scaled_entropy [..., 1].
        """
        cfg, A = self.cfg, self.cfg.action_dim
        out = self._mlp("pi", self._parts(z, task))
        mean, raw = out[..., :A], out[..., A:]
        lo, hi = cfg.log_std_min, cfg.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (jnp.tanh(raw) + 1.0)
        if cfg.multitask:
            mask = self.masks[task]
            mean, log_std, eps = mean * mask, log_std * mask, eps * mask
            n = jnp.sum(mask, axis=-1, keepdims=True)
        else:
            n = float(A)
        lp_gauss = jnp.sum(-0.5 * jnp.square(eps) - log_std, axis=-1, keepdims=True)
        lp_gauss = lp_gauss - 0.5 * LOG_2PI * A
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
    ) -> jax.Array:
        """Logits of the Q members, one batched matmul per layer over stacked weights.

        Args:
            z, a, task: inputs (task ids or None).
            target: use the Polyak-averaged target ensemble `target_q.*`.
            keep: dropout keep masks of layer 0 (training); None = no dropout.
            members: optional int indices [m]: evaluate only these members (e.g. the two of a
                bootstrap pair) instead of all Nq.

        Shapes: z [..., Z], a [..., A], keep [Nq or m, ..., M] -> [Nq or m, ..., K].
        """
        prefix = "target_q." if target else "q."
        qp = {
            "q." + k[len(prefix) :]: (v if members is None else v[members])
            for k, v in self.params.items()
            if k.startswith(prefix)
        }
        return mlp(qp, "q", self._parts(z, task, a), keep=keep, dropout=self.cfg.dropout)
