"""Numpy oracle of the world model forward pass, from canonical parameters (mbdpo_core.params).

Every function is `f(params, cfg, ...)` with `params` the canonical dict (Linear weight [in, out])
and computes in float64 (parameters are upcast on use), returning float64 arrays. `task` is None
for single-task runs, else an int or an int array whose shape equals the leading (batch) shape
of the other inputs or broadcasts to it from the right (e.g. [B] against [H, B, Z]).

Shapes in the letters of mbdpo_core.shapes (Kb = num_bins bins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from ..params import action_masks
from .augment import conv_features
from .math import (
    gaussian_logprob,
    layer_norm,
    mish,
    simnorm,
    squash_log_std,
    tanh_squash,
    two_hot_inv,
)
from .schedule import time_embedding

if TYPE_CHECKING:
    from ..config.schema import Config

Params = dict[str, np.ndarray]


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _num_layers(params: Params, prefix: str) -> int:
    n = 0
    while f"{prefix}.{n}.weight" in params:
        n += 1
    if n == 0:
        raise KeyError(f"No parameters named {prefix}.0.weight: module {prefix!r} is missing.")
    return n


def _mlp(
    params: Params,
    prefix: str,
    x: np.ndarray,
    cfg: Config,
    member: int | None = None,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Run module `prefix`: NormedLinear (Mish) hidden layers, then the last layer.

    The last layer is NormedLinear + SimNorm when it has a LayerNorm, else a plain Linear.
    `member` selects one slice of stacked (Q ensemble) parameters; `keep` [..., M] is the
    dropout keep mask of layer 0.
    """

    def get(name: str) -> np.ndarray:
        value = _f64(params[f"{prefix}.{name}"])
        return value if member is None else value[member]

    n = _num_layers(params, prefix)
    h = x
    for i in range(n):
        h = h @ get(f"{i}.weight") + get(f"{i}.bias")
        if i == 0 and keep is not None:
            h = h * _f64(keep) / (1.0 - cfg.dropout)
        if f"{prefix}.{i}.ln.weight" not in params:
            continue
        h = layer_norm(h, get(f"{i}.ln.weight"), get(f"{i}.ln.bias"))
        h = mish(h) if i < n - 1 else simnorm(h, cfg.simnorm_dim)
    return h


def renorm_task_rows(params: Params, task: Any) -> Params:
    """The parameters after a lookup of `task` (torch's Embedding(max_norm=1), which writes into
    the table): the rows `task` of `task_emb.weight` whose L2 norm exceeds 1 scaled by
    1 / (norm + 1e-7), the other rows and parameters as they are. A new dict (the table a new
    array of the table's dtype); `params` is not modified.

    The stored table changes so at every lookup: in the update before the world-model step and
    again in the policy step (after the world-model step), and when acting
    (docs/method.md#task-embedding-and-action-masks). Shapes: task [...] int.
    """
    table = np.asarray(params["task_emb.weight"])
    w = table.astype(np.float64)
    rows = np.unique(np.asarray(task, dtype=np.int64))
    norm = np.linalg.norm(w[rows], axis=-1, keepdims=True)
    w[rows] = np.where(norm > 1.0, w[rows] / (norm + 1e-7), w[rows])
    return {**params, "task_emb.weight": w.astype(table.dtype)}


def task_embedding(params: Params, task: Any) -> np.ndarray:
    """The embedding rows of `task` as the lookup returns them: rows of renorm_task_rows(params,
    task)'s table (a plain lookup of the renormalised table). Shapes: task [...] -> [..., E].
    """
    w = _f64(renorm_task_rows(params, task)["task_emb.weight"])
    return w[np.asarray(task, dtype=np.int64)]


def _cat(params: Params, cfg: Config, first: Any, task: Any, *rest: Any) -> np.ndarray:
    """Concatenate [first, e, *rest] along the last axis (no e when single-task)."""
    first = _f64(first)
    parts = [first]
    if cfg.multitask:
        if task is None:
            raise ConfigError("This is a multi-task config: pass the task id(s) (task=...).")
        e = task_embedding(params, task)
        parts.append(np.broadcast_to(e, (*first.shape[:-1], e.shape[-1])))
    parts.extend(_f64(r) for r in rest)
    return np.concatenate(parts, axis=-1)


def action_mask(cfg: Config, task: Any) -> np.ndarray:
    """Action mask of the task(s): [..., A] (ones [A] when single-task)."""
    if not cfg.multitask:
        return np.ones(cfg.action_dim)
    return action_masks(cfg).astype(np.float64)[np.asarray(task, dtype=np.int64)]


def encode(params: Params, cfg: Config, obs: Any, task: Any = None) -> np.ndarray:
    """Encoder h([obs, e]) -> latent on SimNorm simplices.

    obs=rgb: the conv encoder (augment.conv_features, channel-first flatten) then SimNorm;
    single-task, no shift here (callers shift first: the update its batch, acting its
    observation, augment.acting_obs).

    Shapes: obs [..., O] (rgb: [..., 9, 64, 64] uint8) -> [..., Z].
    """
    if cfg.obs == "rgb":
        return simnorm(conv_features(params, obs), cfg.simnorm_dim)
    return _mlp(params, "encoder", _cat(params, cfg, obs, task), cfg)


def next(params: Params, cfg: Config, z: Any, a: Any, task: Any = None) -> np.ndarray:
    """Latent dynamics d([z, e, a]). Shapes: z [..., Z], a [..., A] -> [..., Z]."""
    return _mlp(params, "dynamics", _cat(params, cfg, z, task, a), cfg)


def reward(params: Params, cfg: Config, z: Any, a: Any, task: Any = None) -> np.ndarray:
    """Reward logits R([z, e, a]). Shapes: z [..., Z], a [..., A] -> [..., Kb]."""
    return _mlp(params, "reward", _cat(params, cfg, z, task, a), cfg)


def termination(params: Params, cfg: Config, z: Any, task: Any = None) -> np.ndarray:
    """Termination logit ([z, e]); episodic configs only. Shapes: z [..., Z] -> [..., 1]."""
    if "termination.0.weight" not in params:
        raise ConfigError("termination needs an episodic config (episodic=true).")
    return _mlp(params, "termination", _cat(params, cfg, z, task), cfg)


def F(params: Params, cfg: Config, z: Any, a: Any, task: Any = None) -> np.ndarray:
    """Implicit energy head F([z, e, a]) logit. Shapes: z [..., Z], a [..., A] -> [..., 1]."""
    return _mlp(params, "energy", _cat(params, cfg, z, task, a), cfg)


def score(params: Params, cfg: Config, z: Any, x: Any, tau: Any, task: Any = None) -> np.ndarray:
    """Score network s([z, e, flat(x), temb(tau)]).

    Shapes: z [..., Z], x [..., H, A], tau scalar or [...] (integer level) -> [..., H, A].
    """
    z, x = _f64(z), _f64(x)
    lead = z.shape[:-1]
    flat = np.broadcast_to(x.reshape(*x.shape[:-2], -1), (*lead, x.shape[-2] * x.shape[-1]))
    temb = time_embedding(np.asarray(tau, dtype=np.float64), cfg.diffusion_time_embed_dim)
    temb = np.broadcast_to(temb, (*lead, temb.shape[-1]))
    out = _mlp(params, "score", _cat(params, cfg, z, task, flat, temb), cfg)
    return out.reshape(*lead, cfg.horizon, cfg.action_dim)


def q_member(
    params: Params,
    cfg: Config,
    z: Any,
    a: Any,
    member: int,
    task: Any = None,
    target: bool = False,
    keep: Any = None,
) -> np.ndarray:
    """Logits of one Q member. Shapes: z [..., Z], a [..., A], keep [..., M] -> [..., Kb]."""
    prefix = "target_q" if target else "q"
    return _mlp(params, prefix, _cat(params, cfg, z, task, a), cfg, int(member), keep)


def Q(
    params: Params,
    cfg: Config,
    z: Any,
    a: Any,
    task: Any = None,
    target: bool = False,
    keep: Any = None,
) -> np.ndarray:
    """Logits of every Q member; target=True uses `target_q.*`.

    Shapes: z [..., Z], a [..., A], keep [Nq, ..., M] or None -> [Nq, ..., Kb].
    """
    return np.stack(
        [
            q_member(params, cfg, z, a, j, task, target, None if keep is None else keep[j])
            for j in range(cfg.num_q)
        ]
    )


def q_pair_values(
    params: Params,
    cfg: Config,
    z: Any,
    a: Any,
    pair: Any,
    task: Any = None,
    target: bool = False,
    keep: Any = None,
) -> np.ndarray:
    """Decoded values two_hot_inv(Q member pair[j]) of two members (take min or mean after).

    Shapes: z [..., Z], a [..., A], pair [2], keep [2, ..., M] or None -> [2, ..., 1].
    """
    values = []
    for j, member in enumerate(np.asarray(pair).tolist()):
        keep_j = None if keep is None else keep[j]
        logits = q_member(params, cfg, z, a, int(member), task, target, keep_j)
        values.append(two_hot_inv(logits, cfg=cfg))
    return np.stack(values)


def pi(
    params: Params, cfg: Config, z: Any, task: Any = None, eps: Any = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Tanh-squashed Gaussian policy prior, sampled with the given standard-normal eps.

    Returns (action, info) with info: mean (tanh of the mean), log_std, entropy (= -log p),
    scaled_entropy (= -lp (lp_gauss n) / (lp + 1e-8), n the number of active action dims).
    eps=None samples the mean (eps = 0).

    Shapes: z [..., Z], eps [..., A] -> action [..., A]; info mean/log_std [..., A],
    entropy/scaled_entropy [..., 1].
    """
    out = _mlp(params, "pi", _cat(params, cfg, z, task), cfg)
    A = cfg.action_dim
    mean, raw = out[..., :A], out[..., A:]
    log_std = squash_log_std(raw, cfg.log_std_min, cfg.log_std_max)
    eps = np.zeros_like(mean) if eps is None else np.broadcast_to(_f64(eps), mean.shape)
    if cfg.multitask:
        mask = action_mask(cfg, task)
        mean, log_std, eps = mean * mask, log_std * mask, eps * mask
        n = np.broadcast_to(mask.sum(-1, keepdims=True), (*mean.shape[:-1], 1))
    else:
        n = float(A)
    lp_gauss = gaussian_logprob(eps, log_std)
    action, log_det = tanh_squash(mean, eps, log_std)
    lp = lp_gauss - log_det
    info = {
        "mean": np.tanh(mean),
        "log_std": log_std,
        "entropy": -lp,
        "scaled_entropy": -lp * (lp_gauss * n) / (lp + 1e-8),
    }
    return action, info
