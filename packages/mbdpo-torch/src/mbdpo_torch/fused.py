"""Fused CPU kernels of planning and the update (torch only, declared in the mirror test).

Exact rewrites of the world model's heads (no approximation), valid for any number of hidden
layers (docs/design.md#mirrored-backends); the numpy oracle (mbdpo_core.reference) is the
straightforward reading the tests compare them with:
- an ensemble's first layer on a shared input is one wide matmul [in, n M], the other layers
  one batched matmul over the members (`ensemble_forward`);
- planning (`PlanningHeads`): the dynamics, reward and energy heads read the same [z, e, a]:
  their first layers are one matmul [Z+E+A, 3M] and each hidden layer one batched matmul over
  the three heads; every candidate starts from the observation's latent z0, so the [z0, e]
  part of those first layers is computed once per act; the bootstrap evaluates only the two
  Q members of the pair, whose [z, e] parts share one matmul with the policy's first layer;
- the update: the reward and Q first layers are one matmul (`reward_and_q`), and F's [z, e]
  part is computed once for the positive, the candidates and the negative
  (`energy_latent_part`, `energy_from_part`);
- every large float32 matmul on an x86 CPU is a oneDNN GEMM, forward and backward (`linear`,
  `batched_linear`): torch's own CPU matmul is MKL's, which takes its AVX2 path on AMD CPUs
  (about 95 GFLOP/s on one core of the README's machine, against 190-225 for oneDNN on the
  same shapes; docs/design.md#speed).

Shapes: N rows (candidates), Z latent, E task embedding, A action, M hidden width, Nq Q
members, Kb bins, H horizon.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from mbdpo_core.noise import ValueNoise

from .math import layer_norm, mish, simnorm, two_hot_inv
from .value import discount, shaped_reward

if TYPE_CHECKING:
    from .layers import Linear
    from .world_model import WorldModel


_ONEDNN = torch.backends.mkldnn.is_available() and platform.machine().lower() in ("x86_64", "amd64")


@torch.library.custom_op("mbdpo::onednn_gemm", mutates_args=())
def _onednn_gemm(x: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ w_t.T + bias in oneDNN (strided views are read in place). A custom op, so that
    autograd (its derivative below) and torch.compile (an opaque call) see one operator.

    Shapes: x [N, in], w_t [out, in], bias [out] or None -> [N, out]."""
    return torch.ops.mkldnn._linear_pointwise(x, w_t, bias, "none", [], "")


@_onednn_gemm.register_fake
def _(x: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((x.shape[0], w_t.shape[0]))


def _save_gemm_inputs(ctx, inputs: tuple, output: torch.Tensor) -> None:
    x, w_t, bias = inputs
    ctx.save_for_backward(x, w_t)
    ctx.with_bias = bias is not None


def _gemm_backward(ctx, grad: torch.Tensor) -> tuple:
    """Each product of the derivative one oneDNN GEMM: dx = grad w_t, dw_t = grad.T x."""
    x, w_t = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad
    dx = _onednn_gemm(grad, w_t.t(), None) if need_x else None
    dw_t = _onednn_gemm(grad.t(), x.t(), None) if need_w else None
    db = grad.sum(0) if ctx.with_bias and need_b else None
    return dx, dw_t, db


_onednn_gemm.register_autograd(_gemm_backward, setup_context=_save_gemm_inputs)


@_onednn_gemm.register_vmap
def _gemm_over_envs(info, in_dims: tuple, x, w_t, bias) -> tuple[torch.Tensor, int]:
    """The op under torch.func.vmap (act_envs' env axis): the envs' rows as one GEMM on shared
    weights, a batched matmul when the weights differ per env. Shapes: -> [B, N, out]."""
    x_dim, w_dim, b_dim = in_dims
    B = info.batch_size
    x = x.movedim(x_dim, 0) if x_dim is not None else x.expand(B, *x.shape)
    if w_dim is not None:
        y = torch.matmul(x, w_t.movedim(w_dim, 0).transpose(-1, -2))
    else:
        shared_bias = bias if b_dim is None else None
        y = _onednn_gemm(x.reshape(-1, x.shape[-1]), w_t, shared_bias).view(B, x.shape[1], -1)
    if bias is not None and (w_dim is not None or b_dim is not None):
        y = y + (bias.movedim(b_dim, 0)[:, None] if b_dim is not None else bias)
    return y, 0


def _on_onednn(x: torch.Tensor) -> bool:
    """Whether x's matmuls run in oneDNN: float32 on an x86 CPU, outside autocast (bf16)."""
    return (
        _ONEDNN
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ W + b as one 2-D GEMM.

    Shapes: x [..., in], W [in, out], b [out] or None -> [..., out]."""
    flat = x.reshape(-1, x.shape[-1])
    if _on_onednn(flat):
        y = _onednn_gemm(flat, weight.t(), bias)
    else:
        y = flat @ weight if bias is None else torch.addmm(bias, flat, weight)
    return y.reshape(*x.shape[:-1], weight.shape[-1])


def batched_linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """h[i] @ W[i] + b[i] for each member i.

    Shapes: h [n, N, in], weight [n, in, out], bias [n, 1, out] -> [n, N, out]."""
    if _on_onednn(h):
        return torch.stack([linear(h[i], weight[i], bias[i, 0]) for i in range(h.shape[0])])
    return torch.baddbmm(bias, h, weight)


def run_layers(layers: Sequence[Linear], x: torch.Tensor, simnorm_dim: int = 8) -> torch.Tensor:
    """An MLP's layers from any position on: NormedLinear + Mish, the last one a plain Linear or
    NormedLinear + SimNorm. Shapes: x [..., in] -> [..., out]."""
    n = len(layers)
    for i, layer in enumerate(layers):
        x = linear(x, layer.weight, layer.bias)
        if layer.ln is not None:
            x = layer_norm(x, layer.ln.weight, layer.ln.bias)
            x = mish(x) if i < n - 1 else simnorm(x, simnorm_dim)
    return x


def ensemble_ln_mish(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-member LayerNorm + Mish. Shapes: h [n, N, M], weight/bias [n, M] -> [n, N, M]."""
    return mish(layer_norm(h, weight[:, None], bias[:, None]))


def ensemble_forward(
    layers: Sequence[Linear],
    x: torch.Tensor,
    members: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    dropout: float = 0.0,
    detach: bool = False,
    stacked: bool = False,
) -> torch.Tensor:
    """Stacked ensemble members (weights [Nq, in, out]) on one input.

    Args:
        layers: the ensemble's layers from any position on.
        x: input shared by the members [..., in], or per member [n, N, in] when stacked.
        members: indices of the members to evaluate [n] (None = all Nq).
        keep: dropout keep masks of the first layer [n, ..., M] (None = no dropout).
        dropout: the rate (kept activations are divided by 1 - dropout).
        detach: the parameters as constants (the gradient reaches only x).
        stacked: x is already per member.

    Shapes: -> [n, ..., out] ([n, N, out] when stacked).
    """
    lead = x.shape[1:-1] if stacked else x.shape[:-1]
    h = x if stacked else x.reshape(-1, x.shape[-1])
    for i, layer in enumerate(layers):
        w, b = layer.weight, layer.bias
        ln = (layer.ln.weight, layer.ln.bias) if layer.ln is not None else None
        if members is not None:
            w, b = w[members], b[members]
            ln = (ln[0][members], ln[1][members]) if ln is not None else None
        if detach:
            w, b = w.detach(), b.detach()
            ln = (ln[0].detach(), ln[1].detach()) if ln is not None else None
        n, d_in, d_out = w.shape
        if i == 0 and not stacked:  # one wide GEMM [N, in] x [in, n out] for the shared input
            h = linear(h, w.permute(1, 0, 2).reshape(d_in, n * d_out)).view(-1, n, d_out)
            h = h.transpose(0, 1) + b[:, None]
            if keep is not None:
                h = h * keep.reshape(n, -1, d_out) * (1.0 / (1.0 - dropout))
        else:
            h = batched_linear(h, w, b[:, None])
        if i < len(layers) - 1:
            h = ensemble_ln_mish(h, *ln)
    return h.reshape(h.shape[0], *lead, h.shape[-1])


class PlanningHeads:
    """The value estimate from one latent z0, with the per-act work done once.

    Built once per act (the weights are fixed while planning); `value` is
    value.value_estimate(model, z0, ...). The dynamics, reward and energy heads must have the
    same hidden widths (as mbdpo_core.params.module_layers builds them).
    """

    def __init__(
        self,
        model: WorldModel,
        z0: torch.Tensor,
        task: torch.Tensor | None,
        energy_stats: torch.Tensor,
    ) -> None:
        """Shapes: z0 [1, Z], task [1] or None, energy_stats [2]."""
        self.model, self.task, self.stats, self.z0 = model, task, energy_stats, z0
        nets = [model.nets[name] for name in ("dynamics", "reward", "energy")]
        hidden = [[layer.weight.shape[-1] for layer in net][:-1] for net in nets]
        if hidden[1:] != hidden[:-1] or not hidden[0]:
            raise ValueError(f"dynamics, reward and energy need equal hidden widths: {hidden}")
        Z = z0.shape[-1]
        zin = model._inputs(z0, task)  # [1, Z+E]
        d_in = zin.shape[-1]
        w0 = torch.cat([net[0].weight for net in nets], dim=1)  # [Z+E+A, 3M]
        b0 = torch.cat([net[0].bias for net in nets])
        self.w0_a = w0[d_in:]
        self.w0_za = torch.cat([w0[:Z], self.w0_a])  # [Z+A, 3M]: the later steps' z and a rows
        self.c0 = linear(zin, w0[:d_in], b0)[0]  # [3M]: the first step's shared part
        self.c_e = b0 if d_in == Z else linear(zin[:, Z:], w0[Z:d_in], b0)[0]  # [3M]
        self.ln0 = (  # [3, M] each
            torch.stack([net[0].ln.weight for net in nets]),
            torch.stack([net[0].ln.bias for net in nets]),
        )
        self.hidden = [  # (W [3, M, M'], b [3, 1, M'], ln weight [3, M'], ln bias [3, M'])
            (
                torch.stack([net[i].weight for net in nets]),
                torch.stack([net[i].bias for net in nets])[:, None],
                torch.stack([net[i].ln.weight for net in nets]),
                torch.stack([net[i].ln.bias for net in nets]),
            )
            for i in range(1, len(nets[0]) - 1)
        ]
        self.last = [net[len(net) - 1] for net in nets]
        self.gamma = discount(model, task)

    def _step(
        self, z: torch.Tensor | None, a: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reward logits [N, Kb], F logit [N, 1] and next latent [N, Z] of (z, a); z None = z0."""
        if z is None:
            h = linear(a, self.w0_a, self.c0)  # [N, 3M]
        else:
            h = linear(torch.cat([z, a], dim=-1), self.w0_za, self.c_e)
        h = mish(layer_norm(h.view(h.shape[0], 3, -1), *self.ln0)).transpose(0, 1)  # [3, N, M]
        for w, b, lw, lb in self.hidden:
            h = ensemble_ln_mish(batched_linear(h, w, b), lw, lb)
        dyn, rew, en = self.last
        z_next = run_layers([dyn], h[0], self.model.cfg.simnorm_dim)
        return run_layers([rew], h[1]), run_layers([en], h[2]), z_next

    def _bootstrap(self, z: torch.Tensor, noise: ValueNoise) -> torch.Tensor:
        """Mean decoded Q of the pair at a policy action, with dropout when noise.q_keep is given
        (the score target). Shapes: z [N, Z], noise.q_keep [2, N, M] or None -> [N, 1]."""
        model, pi, q, pair = self.model, self.model.nets["pi"], self.model.nets["q"], noise.q_pair
        zin = model._inputs(z, self.task)
        d_in, M_pi = zin.shape[-1], pi[0].weight.shape[-1]
        wq0 = q[0].weight[pair]  # [2, Z+E+A, M]
        M_q = wq0.shape[-1]
        w = torch.cat([pi[0].weight, wq0[0, :d_in], wq0[1, :d_in]], dim=1)  # [Z+E, M + 2M]
        h = linear(zin, w, torch.cat([pi[0].bias, q[0].bias[pair].reshape(-1)]))
        h_pi = mish(layer_norm(h[:, :M_pi], pi[0].ln.weight, pi[0].ln.bias))
        out = run_layers(list(pi)[1:], h_pi)
        a_H, _ = model._pi_sample(*model._pi_squash(out), noise.pi_eps, self.task)
        wa = wq0[:, d_in:].permute(1, 0, 2).reshape(a_H.shape[-1], 2 * M_q)  # [A, 2M]
        hq = torch.addmm(h[:, M_pi:], a_H, wa).view(-1, 2, M_q).transpose(0, 1)  # [2, N, M]
        if noise.q_keep is not None:
            hq = hq * noise.q_keep * (1.0 / (1.0 - model.cfg.dropout))
        hq = ensemble_ln_mish(hq, q[0].ln.weight[pair], q[0].ln.bias[pair])
        logits = ensemble_forward(list(q)[1:], hq, members=pair, stacked=True)
        return two_hot_inv(logits, model.cfg).mean(0)

    def value(self, actions: torch.Tensor, noise: ValueNoise) -> torch.Tensor:
        """H-step shaped return from z0, bootstrapped with the pair's mean Q.

        Shapes: actions [N, H, A], noise.pi_eps [N, A], noise.q_pair [2] -> [N, 1].
        """
        cfg = self.model.cfg
        N = actions.shape[0]
        G = torch.zeros(N, 1, device=actions.device)
        term = torch.zeros(N, 1, device=actions.device)
        disc: torch.Tensor | float = 1.0
        z = None
        for t in range(actions.shape[1]):
            r_logits, f_logit, z = self._step(z, actions[:, t])
            G = G + disc * (1.0 - term) * shaped_reward(r_logits, f_logit, self.stats, cfg)
            disc = disc * self.gamma
            if cfg.episodic:
                done = (torch.sigmoid(self.model.termination(z, self.task)) > 0.5).float()
                term = torch.clamp(term + done, max=1.0)
        if z is None:  # horizon 0: bootstrap at z0
            z = self.z0.expand(N, self.z0.shape[-1])
        return G + disc * (1.0 - term) * self._bootstrap(z, noise)


def reward_and_q(
    model: WorldModel,
    z: torch.Tensor,
    a: torch.Tensor,
    task: torch.Tensor | None,
    keep: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(model.reward(z, a), model.Q(z, a, keep=keep)) with both first layers as one matmul.

    Shapes: z [..., Z], a [..., A], keep [Nq, ..., M] -> ([..., Kb], [Nq, ..., Kb]).
    """
    x = model._inputs(z, task, a)
    lead = x.shape[:-1]
    r0, q0 = model.nets["reward"][0], model.nets["q"][0]
    Nq, d_in, M_q = q0.weight.shape
    M_r = r0.weight.shape[-1]
    w = torch.cat([r0.weight, q0.weight.permute(1, 0, 2).reshape(d_in, Nq * M_q)], dim=1)
    h = linear(x, w, torch.cat([r0.bias, q0.bias.reshape(-1)])).reshape(-1, M_r + Nq * M_q)
    h_r = mish(layer_norm(h[:, :M_r], r0.ln.weight, r0.ln.bias))
    r = run_layers(list(model.nets["reward"])[1:], h_r).reshape(*lead, -1)
    h_q = h[:, M_r:].reshape(-1, Nq, M_q).transpose(0, 1)
    if keep is not None:
        h_q = h_q * keep.reshape(Nq, -1, M_q) * (1.0 / (1.0 - model.cfg.dropout))
    h_q = ensemble_ln_mish(h_q, q0.ln.weight, q0.ln.bias)
    q = ensemble_forward(list(model.nets["q"])[1:], h_q, stacked=True)
    return r, q.reshape(Nq, *lead, -1)


def energy_latent_part(
    model: WorldModel, z: torch.Tensor, task: torch.Tensor | None
) -> torch.Tensor:
    """The [z, e] part of F's first layer plus its bias. Shapes: z [..., Z] -> [..., M]."""
    zin = model._inputs(z, task)
    layer = model.nets["energy"][0]
    return linear(zin, layer.weight[: zin.shape[-1]], layer.bias)


def energy_from_part(model: WorldModel, hz: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """model.F(z, a) from energy_latent_part(z) and the actions.

    Shapes: hz [..., M], a [..., A] (leading dims broadcast) -> [..., 1].
    """
    layer = model.nets["energy"][0]
    A = a.shape[-1]
    h = hz + (a.reshape(-1, A) @ layer.weight[-A:]).reshape(*a.shape[:-1], hz.shape[-1])
    h = mish(layer_norm(h, layer.ln.weight, layer.ln.bias))
    return run_layers(list(model.nets["energy"])[1:], h)
