"""The value estimate with shared and fused matmuls: the same numbers as value.value_estimate.

Exact rewrites (no approximation), valid because the weights are fixed during one act:
- the reward, energy and dynamics heads all read [z, e, a]: their first layers are one wider
  matmul [Z+E+A, 3M], and their second layers one batched matmul over the three heads;
- at the first imagined step every candidate shares the latent z0 of the observation, so the
  [z0, e] part of those first layers is computed once per act (and reused across levels);
- the bootstrap needs only the two Q members of the pair, and the policy's first layer and those
  members' [z, e] parts read the same input: one matmul [Z+E, 3M];
- the policy's output at z0 is computed once per act for the policy rollouts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mbdpo_core.noise import ValueNoise

from ..layers import LN_EPS, ensemble_ln_mish, linear, mish, mlp_forward, normed_act
from ..math import two_hot_inv
from ..world_model import WorldModel
from .value import discount, shaped_reward

HEADS = ("dynamics", "reward_net", "energy")


class PlanningHeads:
    """Fused planning computations for one latent z0 [1, Z] and task [1] | None."""

    def __init__(
        self,
        model: WorldModel,
        z0: torch.Tensor,
        task: torch.Tensor | None,
        energy_stats: torch.Tensor,
    ) -> None:
        cfg = model.cfg
        self.model, self.task, self.stats, self.z0 = model, task, energy_stats, z0
        self.Z, self.M, self.A = cfg.latent_dim, cfg.mlp_dim, cfg.action_dim
        nets = [getattr(model, name) for name in HEADS]
        zin = model.cat(z0, task)  # [1, Z+E]
        d_in = zin.shape[-1]
        w0 = torch.cat([net[0].weight for net in nets], dim=1)  # [Z+E+A, 3M]
        b0 = torch.cat([net[0].bias for net in nets])
        self.w0_z, self.w0_a = w0[: self.Z], w0[d_in:]
        self.c0 = torch.addmm(b0, zin, w0[:d_in])  # [1, 3M]: the shared first-step part
        # per-row latents later: z @ W_z + (e @ W_e + b)
        self.c_e = b0 if d_in == self.Z else torch.addmm(b0, zin[:, self.Z :], w0[self.Z : d_in])
        self.ln0_w = torch.stack([net[0].ln.weight for net in nets])  # [3, M]
        self.ln0_b = torch.stack([net[0].ln.bias for net in nets])
        self.w1 = torch.stack([net[1].weight for net in nets])  # [3, M, M]
        self.b1 = torch.stack([net[1].bias for net in nets])[:, None]
        self.ln1_w = torch.stack([net[1].ln.weight for net in nets])
        self.ln1_b = torch.stack([net[1].ln.bias for net in nets])
        self.dyn2, self.rew2, self.en2 = (net[2] for net in nets)
        self.gamma = discount(model, task)
        self.pi_mean0, self.pi_log_std0 = model.pi_dist(z0, task)  # [1, A] each

    def _step(
        self, z: torch.Tensor | None, a: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reward logits [N, K], F logit [N, 1] and next latent [N, Z] of (z, a); z None = z0."""
        base = self.c0 if z is None else torch.addmm(self.c_e, z, self.w0_z)
        h = torch.addmm(base, a, self.w0_a)  # [N, 3M]
        h = F.layer_norm(h.view(-1, 3, self.M), (self.M,), None, None, LN_EPS)
        h = mish(torch.addcmul(self.ln0_b, h, self.ln0_w)).transpose(0, 1)  # [3, N, M]
        h = ensemble_ln_mish(torch.baddbmm(self.b1, h, self.w1), self.ln1_w, self.ln1_b)
        z_next = normed_act(
            linear(h[0], self.dyn2.weight, self.dyn2.bias),
            self.dyn2.ln,
            "simnorm",
            self.model.cfg.simnorm_dim,
        )
        r_logits = linear(h[1], self.rew2.weight, self.rew2.bias)
        f_logit = linear(h[2], self.en2.weight, self.en2.bias)
        return r_logits, f_logit, z_next

    def _bootstrap(self, z: torch.Tensor, noise: ValueNoise) -> torch.Tensor:
        """Mean of the pair's decoded Q at the policy action. Shapes: z [N, Z] -> [N, 1]."""
        model, M = self.model, self.M
        pi, q, pair = model.pi_net, model.q, noise.q_pair
        zin = model.cat(z, self.task)
        d_in = zin.shape[-1]
        wq0 = q[0].weight[pair]  # [2, Z+E+A, M]
        w = torch.cat([pi[0].weight, wq0[0, :d_in], wq0[1, :d_in]], dim=1)  # [Z+E, 3M]
        b = torch.cat([pi[0].bias, q[0].bias[pair].reshape(-1)])
        h = torch.addmm(b, zin, w)  # [N, 3M]
        h_pi = normed_act(h[:, :M], pi[0].ln, "mish")
        mean, raw = mlp_forward(pi[1:], h_pi).chunk(2, dim=-1)
        lo, hi = model.cfg.log_std_min, model.cfg.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1.0)
        a_H, _ = model.pi_sample(mean, log_std, noise.pi_eps, self.task)
        wa = wq0[:, d_in:].permute(1, 0, 2).reshape(self.A, 2 * M)  # [A, 2M]
        hq = torch.addmm(h[:, M:], a_H, wa).view(-1, 2, M).transpose(0, 1)  # [2, N, M]
        hq = ensemble_ln_mish(hq, q[0].ln.weight[pair], q[0].ln.bias[pair])
        hq = torch.baddbmm(q[1].bias[pair][:, None], hq, q[1].weight[pair])
        hq = ensemble_ln_mish(hq, q[1].ln.weight[pair], q[1].ln.bias[pair])
        logits = torch.baddbmm(q[2].bias[pair][:, None], hq, q[2].weight[pair])
        return two_hot_inv(logits, model.cfg).mean(0)

    def value(self, actions: torch.Tensor, noise: ValueNoise) -> torch.Tensor:
        """value.value_estimate(model, z0, actions, ...). Shapes: actions [N, H, A] -> [N, 1]."""
        model = self.model
        N = actions.shape[0]
        G = torch.zeros(N, 1, device=actions.device)
        term = torch.zeros(N, 1, device=actions.device)
        disc: torch.Tensor | float = 1.0
        z = None
        for t in range(actions.shape[1]):
            r_logits, f_logit, z = self._step(z, actions[:, t])
            G = G + disc * (1.0 - term) * shaped_reward(model, r_logits, f_logit, self.stats)
            disc = disc * self.gamma
            if model.cfg.episodic:
                done = (torch.sigmoid(model.termination(z, self.task)) > 0.5).float()
                term = torch.clamp(term + done, max=1.0)
        if z is None:  # horizon 0: bootstrap at z0
            z = self.z0.expand(N, self.Z)
        return G + disc * (1.0 - term) * self._bootstrap(z, noise)

    def rollouts(self, pi_eps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """value.policy_rollouts with the policy head at z0 computed once.

        Shapes: pi_eps [H, P, A] -> [P, H, A].
        """
        model, task = self.model, self.task
        P = pi_eps.shape[1]
        mean, log_std = self.pi_mean0.expand(P, self.A), self.pi_log_std0.expand(P, self.A)
        zp = self.z0.expand(P, self.Z)
        steps = []
        for h in range(pi_eps.shape[0]):
            if h > 0:
                mean, log_std = model.pi_dist(zp, task)
            ap, _ = model.pi_sample(mean, log_std, pi_eps[h], task)
            ap = torch.clamp(mask * ap, -1.0, 1.0)
            steps.append(ap)
            zp = model.next(zp, ap, task)
        return torch.stack(steps, dim=1)
