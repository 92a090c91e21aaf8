"""The MBDPO latent world model (ALGORITHM.md "World model", spec "World model functions").

Every head of TD-MPC2 plus the energy head F and the score network. `named_parameters()` yields
exactly the canonical names of mbdpo_core.params (weights [in, out]), including the target
ensemble `target_q.*` (kept with requires_grad=False and updated by Polyak averaging).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from mbdpo_core.config.schema import Config
from mbdpo_core.params import action_masks, conv_layers, module_layers
from torch import nn

from .layers import (
    Linear,
    ensemble_forward,
    ensemble_ln_mish,
    linear,
    make_mlp,
    mlp_forward,
    normed_act,
    simnorm,
)
from .math import time_embedding

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class TaskEmbedding(nn.Module):
    """Task embedding table: weight [M, task_dim]; rows are max-norm 1 on lookup."""

    def __init__(self, n_tasks: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_tasks, dim))

    def forward(self, task: torch.Tensor) -> torch.Tensor:
        """Functional max_norm=1 (the weight is not modified). Shapes: task [...] -> [..., E]."""
        e = self.weight[task]
        return e * torch.clamp(1.0 / (e.norm(dim=-1, keepdim=True) + 1e-7), max=1.0)


class WorldModel(nn.Module):
    """encode / next / reward / termination / pi / Q / F / score (mbdpo_core.protocols).

    `task` is an int tensor broadcastable to the leading dims of the latent, or None
    (single-task). Shapes use Z latent, A action, K num_bins, Nq members, H horizon.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        layers = module_layers(cfg)
        if cfg.obs == "rgb":
            self.encoder = nn.ModuleList(Linear(layer) for layer in conv_layers(cfg))
        else:
            self.encoder = make_mlp(layers["encoder"])
        self.dynamics = make_mlp(layers["dynamics"])
        self.reward_net = make_mlp(layers["reward"])
        self.termination_net = make_mlp(layers["termination"]) if cfg.episodic else None
        self.pi_net = make_mlp(layers["pi"])
        self.energy = make_mlp(layers["energy"])
        self.q = make_mlp(layers["q"], (cfg.num_q,))
        self.score_net = make_mlp(layers["score"])
        self.target_q = make_mlp(layers["q"], (cfg.num_q,))
        self.target_q.requires_grad_(False)
        self.task_emb = TaskEmbedding(cfg.n_tasks, cfg.task_dim) if cfg.multitask else None
        self.register_buffer("action_masks", torch.from_numpy(action_masks(cfg)), persistent=False)

    # canonical module name -> attribute (attributes avoid clashing with the method names)
    MODULES = {
        "encoder": "encoder",
        "dynamics": "dynamics",
        "reward": "reward_net",
        "termination": "termination_net",
        "pi": "pi_net",
        "energy": "energy",
        "q": "q",
        "score": "score_net",
        "target_q": "target_q",
        "task_emb": "task_emb",
    }

    def canonical_parameters(self) -> dict[str, nn.Parameter]:
        """Canonical name -> parameter (a 1:1 map, names as in mbdpo_core.params)."""
        attr_to_name = {attr: name for name, attr in self.MODULES.items()}
        out = {}
        for name, p in self.named_parameters():
            head, rest = name.split(".", 1)
            out[f"{attr_to_name[head]}.{rest}"] = p
        return out

    # ----- inputs -------------------------------------------------------------------------
    def cat(self, x: torch.Tensor, task: torch.Tensor | None, *rest: torch.Tensor) -> torch.Tensor:
        """[x, e, *rest] along the last axis; e broadcast to x's leading dims."""
        if task is None or self.task_emb is None:
            return torch.cat([x, *rest], dim=-1)
        e = self.task_emb(task)
        e = e.expand(*x.shape[:-1], e.shape[-1])
        return torch.cat([x, e, *rest], dim=-1)

    def mask(self, task: torch.Tensor | None) -> torch.Tensor | None:
        """Action mask of the task [..., A], or None single-task."""
        return None if task is None or not self.cfg.multitask else self.action_masks[task]

    # ----- heads --------------------------------------------------------------------------
    def encode(self, obs: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """obs [..., O] (or [..., 9, 64, 64] rgb) -> z [..., Z]."""
        if self.cfg.obs == "rgb":
            return self._encode_rgb(obs)
        return mlp_forward(self.encoder, self.cat(obs, task), "simnorm", self.cfg.simnorm_dim)

    def _encode_rgb(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).float() / 255.0 - 0.5
        for i, (conv, layer) in enumerate(zip(self.encoder, conv_layers(self.cfg), strict=True)):
            x = F.conv2d(x, conv.weight.permute(3, 2, 0, 1), conv.bias, stride=layer.stride)
            if i < len(self.encoder) - 1:
                x = F.relu(x)
        x = x.permute(0, 2, 3, 1).reshape(*lead, -1)
        return simnorm(x, self.cfg.simnorm_dim)

    def next(self, z: torch.Tensor, a: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """Latent dynamics. Shapes: z [..., Z], a [..., A] -> [..., Z]."""
        return mlp_forward(self.dynamics, self.cat(z, task, a), "simnorm", self.cfg.simnorm_dim)

    def reward(self, z: torch.Tensor, a: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """Reward logits. Shapes: z [..., Z], a [..., A] -> [..., K]."""
        return mlp_forward(self.reward_net, self.cat(z, task, a))

    def termination(self, z: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """Termination logit (episodic only). Shapes: z [..., Z] -> [..., 1]."""
        if self.termination_net is None:
            raise RuntimeError("termination() needs episodic=true (no termination head built).")
        return mlp_forward(self.termination_net, self.cat(z, task))

    def F(self, z: torch.Tensor, a: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """Energy logit. Shapes: z [..., Z], a [..., A] -> [..., 1]."""
        return mlp_forward(self.energy, self.cat(z, task, a))

    def score(
        self, z: torch.Tensor, x: torch.Tensor, tau: torch.Tensor | int, task: torch.Tensor | None
    ) -> torch.Tensor:
        """Score network. Shapes: z [..., Z], x [..., H, A], tau [] or [...] -> [..., H, A]."""
        lead = z.shape[:-1]
        tau = torch.as_tensor(tau, device=z.device)
        temb = time_embedding(tau, self.cfg.diffusion_time_embed_dim)
        temb = temb.expand(*lead, temb.shape[-1])
        x_flat = x.reshape(*lead, -1)
        out = mlp_forward(self.score_net, self.cat(z, task, x_flat, temb))
        return out.reshape(x.shape)

    def pi_dist(
        self, z: torch.Tensor, task: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-squash mean and log-std. Shapes: z [..., Z] -> ([..., A], [..., A])."""
        mean, raw = mlp_forward(self.pi_net, self.cat(z, task)).chunk(2, dim=-1)
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        return mean, lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1.0)

    def pi_sample(
        self,
        mean: torch.Tensor,
        log_std: torch.Tensor,
        eps: torch.Tensor,
        task: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Tanh-squashed Gaussian sample from (mean, log_std) with noise eps (spec "pi")."""
        A = self.cfg.action_dim
        mask = self.mask(task)
        if mask is not None:
            mean, log_std, eps = mean * mask, log_std * mask, eps * mask
            n = mask.sum(-1, keepdim=True)
        else:
            n = float(A)
        lp_gauss = (-0.5 * eps.square() - log_std).sum(-1, keepdim=True) - HALF_LOG_2PI * A
        action = torch.tanh(mean + eps * torch.exp(log_std))
        lp = lp_gauss - torch.log(F.relu(1.0 - action.square()) + 1e-6).sum(-1, keepdim=True)
        info = {
            "mean": torch.tanh(mean),
            "log_std": log_std,
            "entropy": -lp,
            "scaled_entropy": -lp * (lp_gauss * n) / (lp + 1e-8),
        }
        return action, info

    def pi(
        self, z: torch.Tensor, task: torch.Tensor | None, eps: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Policy prior. Shapes: z [..., Z], eps [..., A] -> (action [..., A], info)."""
        mean, log_std = self.pi_dist(z, task)
        return self.pi_sample(mean, log_std, eps, task)

    def Q(
        self,
        z: torch.Tensor,
        a: torch.Tensor,
        task: torch.Tensor | None,
        target: bool = False,
        keep: torch.Tensor | None = None,
        members: torch.Tensor | None = None,
        detach: bool = False,
    ) -> torch.Tensor:
        """Q logits of every member (or of `members` [n]). Shapes: -> [Nq or n, ..., K].

        keep: dropout keep masks [n, ..., M] of layer 0 (training), None = no dropout.
        detach: parameters as constants (the policy objective).
        """
        ens = self.target_q if target else self.q
        return ensemble_forward(ens, self.cat(z, task, a), members, keep, self.cfg.dropout, detach)

    # ----- fused forms (the same numbers as the heads above, fewer / wider matmuls) ---------
    def energy_z_part(self, z: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """The [z, e] part of F's first layer plus its bias. Shapes: z [..., Z] -> [..., M]."""
        zin = self.cat(z, task)
        layer = self.energy[0]
        return linear(zin, layer.weight[: zin.shape[-1]], layer.bias)

    def energy_from(self, hz: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """F(z, a) from energy_z_part(z) and the actions.

        Shapes: hz [..., M], a [..., A] (leading dims broadcast) -> [..., 1].
        """
        layer = self.energy[0]
        A = a.shape[-1]
        h = hz + (a.reshape(-1, A) @ layer.weight[-A:]).reshape(*a.shape[:-1], hz.shape[-1])
        h = normed_act(h, layer.ln, "mish")
        return mlp_forward(self.energy[1:], h)

    def reward_and_Q(
        self,
        z: torch.Tensor,
        a: torch.Tensor,
        task: torch.Tensor | None,
        keep: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reward(z, a), Q(z, a, keep=keep)) with both first layers as one matmul.

        Shapes: z [..., Z], a [..., A], keep [Nq, ..., M] -> ([..., K], [Nq, ..., K]).
        """
        x = self.cat(z, task, a)
        lead, M, Nq = x.shape[:-1], self.cfg.mlp_dim, self.cfg.num_q
        r0, q0 = self.reward_net[0], self.q[0]
        w = torch.cat([r0.weight, q0.weight.permute(1, 0, 2).reshape(x.shape[-1], Nq * M)], 1)
        b = torch.cat([r0.bias, q0.bias.reshape(-1)])
        h = linear(x, w, b).reshape(-1, (Nq + 1) * M)
        h_r = normed_act(h[:, :M], r0.ln, "mish")
        r = mlp_forward(self.reward_net[1:], h_r).reshape(*lead, -1)
        h_q = h[:, M:].reshape(-1, Nq, M).transpose(0, 1)
        if keep is not None:
            h_q = h_q * keep.reshape(Nq, -1, M) * (1.0 / (1.0 - self.cfg.dropout))
        h_q = ensemble_ln_mish(h_q, q0.ln.weight, q0.ln.bias)
        q = ensemble_forward(self.q[1:], h_q, stacked=True)
        return r, q.reshape(Nq, *lead, -1)

    @torch.no_grad()
    def polyak(self, tau: float) -> None:
        """target_q <- target_q + tau (q - target_q)."""
        for online, target in zip(self.q.parameters(), self.target_q.parameters(), strict=True):
            target.lerp_(online, tau)


def as_task(
    task: int | np.ndarray | torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    """Task ids as a long tensor on device (None stays None)."""
    return None if task is None else torch.as_tensor(np.asarray(task), device=device).long()
