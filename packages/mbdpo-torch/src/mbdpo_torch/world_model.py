"""The MBDPO latent world model (docs/method.md#world-model).

Every head of TD-MPC2 plus the energy head F and the score network. `named_parameters()` yields
the canonical names of mbdpo_core.params (weights [in, out]) behind the prefix `nets.` (one
ModuleDict keyed by canonical module name), including the target ensemble `target_q.*`
(requires_grad=False, Polyak-averaged by update.polyak).

Shapes: Z latent, A action, O observation, E task embedding, Kb bins, Nq Q members, M mlp
width, H horizon. `task` is an int tensor broadcastable to the latent's leading dims, or None
(single-task).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mbdpo_core.config.schema import Config
from mbdpo_core.heads import HeadCalls
from mbdpo_core.params import action_masks, module_layers
from torch import nn

from .fused import ensemble_forward
from .layers import MLP, ConvEncoder, TaskEmbedding
from .math import time_embedding

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class WorldModel(HeadCalls, nn.Module):
    """encode / next / reward / termination / pi / Q / F / score (mbdpo_core.protocols)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        layers, nets = module_layers(cfg), {}
        for name, module in layers.items():  # termination only when episodic
            if name == "encoder" and cfg.obs == "rgb":
                nets[name] = ConvEncoder(module, cfg.simnorm_dim)
            else:
                nets[name] = MLP(module, (cfg.num_q,) if name == "q" else (), cfg.simnorm_dim)
        if cfg.multitask:
            nets["task_emb"] = TaskEmbedding(cfg.n_tasks, cfg.task_dim)
        nets["target_q"] = MLP(layers["q"], (cfg.num_q,)).requires_grad_(False)
        self.nets = nn.ModuleDict(nets)
        self.register_buffer("masks", torch.from_numpy(action_masks(cfg)), persistent=False)

    def _canonical_parameters(self) -> dict[str, nn.Parameter]:
        """Canonical name -> parameter (names as in mbdpo_core.params)."""
        return {name.removeprefix("nets."): p for name, p in self.named_parameters()}

    def _inputs(
        self, x: torch.Tensor, task: torch.Tensor | None, *rest: torch.Tensor
    ) -> torch.Tensor:
        """[x, e, *rest] along the last axis; e broadcast to x's leading dims."""
        if task is None or "task_emb" not in self.nets:
            return torch.cat([x, *rest], dim=-1)
        e = self.nets["task_emb"](task)
        return torch.cat([x, e.expand(*x.shape[:-1], e.shape[-1]), *rest], dim=-1)

    def action_mask(self, task: torch.Tensor | None) -> torch.Tensor:
        """Action mask of the task(s): [..., A] (ones [A] single-task or task None)."""
        if task is None or not self.cfg.multitask:
            return torch.ones(self.cfg.action_dim, device=self.masks.device)
        return self.masks[task]

    def score(
        self, z: torch.Tensor, x: torch.Tensor, tau: torch.Tensor | int, task: torch.Tensor | None
    ) -> torch.Tensor:
        """Score network (docs/method.md#score-network).

        Shapes: z [..., Z], x [..., H, A], tau [] or [...] -> [..., H, A].
        """
        lead = z.shape[:-1]
        temb = time_embedding(
            torch.as_tensor(tau, device=z.device), self.cfg.diffusion_time_embed_dim
        )
        temb = temb.expand(*lead, temb.shape[-1])
        out = self.nets["score"](self._inputs(z, task, x.reshape(*lead, -1), temb))
        return out.reshape(x.shape)

    def _pi_squash(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy head's output -> pre-squash mean and log-std in (log_std_min, log_std_max).

        Shapes: out [..., 2A] -> ([..., A], [..., A]).
        """
        mean, raw = out.chunk(2, dim=-1)
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        return mean, lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1.0)

    def _pi_sample(
        self,
        mean: torch.Tensor,
        log_std: torch.Tensor,
        eps: torch.Tensor,
        task: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Tanh-squashed Gaussian sample from (mean, log_std) with noise eps; see pi."""
        A = self.cfg.action_dim
        if task is None or not self.cfg.multitask:
            n: torch.Tensor | float = float(A)
        else:
            mask = self.masks[task]
            mean, log_std, eps = mean * mask, log_std * mask, eps * mask
            n = mask.sum(-1, keepdim=True)
        lp_gauss = (-0.5 * eps.square() - log_std).sum(-1, keepdim=True) - _HALF_LOG_2PI * A
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
        """Policy prior sampled with standard-normal eps (masked per task).

        Returns (action, info) with info mean (tanh of the mean), log_std, entropy (-log p) and
        scaled_entropy. Shapes: z [..., Z], eps [..., A] (leading dims broadcast) ->
        action [..., A]; info mean/log_std [..., A], entropy/scaled_entropy [..., 1].
        """
        mean, log_std = self._pi_squash(self.nets["pi"](self._inputs(z, task)))
        return self._pi_sample(mean, log_std, eps, task)

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
        """Q logits of every member, or of `members` [n] only.

        keep: dropout keep masks [n, ..., M] of layer 0 (training), None = no dropout.
        detach: parameters as constants (the policy objective).
        Shapes: z [..., Z], a [..., A] -> [Nq or n, ..., Kb].
        """
        ens = self.nets["target_q" if target else "q"]
        x = self._inputs(z, task, a)
        return ensemble_forward(ens, x, members, keep, self.cfg.dropout, detach)
