"""Noise bundles: every random draw of `update` and `act`, made explicit (the parity contract).

A backend's functional core takes one of these bundles; its thin wrapper draws the arrays
natively (torch.Generator / JAX key) with exactly these fields and shapes. Parity tests draw a
bundle once with numpy (`draw_*` below) and hand the same arrays to both backends.

Shapes use: B batch, H horizon, A action, K samples, P policy trajectories, E elites, I planner
iterations (diffusion: reverse steps tau = T-1 .. 1, in that order), Nq Q members, M mlp_dim,
S Monte-Carlo score samples. Gaussian fields are standard normal; `*_uniform` fields are U(-1, 1);
`*_pair` fields hold two distinct Q-member indices; `*_keep` fields are dropout keep masks
(1.0 = keep, 0.0 = drop; the backend divides kept activations by 1 - dropout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config.schema import Config

Array = Any  # numpy, torch or jax array


@dataclass(frozen=True)
class ValueNoise:
    """Randomness of the planning value estimate V(z, actions) (anatomy 4.4).

    Fields: pi_eps [K, A] policy sample at the last latent; q_pair [2] online Q members averaged.
    """

    pi_eps: Array
    q_pair: Array


@dataclass(frozen=True)
class DiffusionNoise:
    """One `act` of the diffusion planner with the Monte-Carlo score.

    Fields: sample_eps [I, K, H, A]; pi_eps [I, H, P, A] (policy rollouts, fresh per level);
    value_pi_eps [I, K, A]; value_q_pair [I, 2]; action_eps [A] exploration noise (training).
    Score-only mode reads action_eps only.
    """

    sample_eps: Array
    pi_eps: Array
    value_pi_eps: Array
    value_q_pair: Array
    action_eps: Array


@dataclass(frozen=True)
class MppiNoise:
    """One `act` of MPPI (anatomy 4.5).

    Fields: pi_eps [H, P, A] (policy rollouts, once per act); sample_eps [I, K-P, H, A];
    value_pi_eps [I, K, A]; value_q_pair [I, 2]; gumbel [E] for the final elite choice;
    action_eps [A].
    """

    pi_eps: Array
    sample_eps: Array
    value_pi_eps: Array
    value_q_pair: Array
    gumbel: Array
    action_eps: Array


@dataclass(frozen=True)
class PolicyNoise:
    """One `act` of the policy-prior planner. Fields: action_eps [A] (policy sample in training)."""

    action_eps: Array


@dataclass(frozen=True)
class ScoreNoise:
    """The score-network loss (anatomy 3.4).

    Fields: tau [] integer level in 1..T-1; x_tau [H, A]; sample_eps [S, H, A];
    value: ValueNoise with pi_eps [S, A].
    """

    tau: Array
    x_tau: Array
    sample_eps: Array
    value: ValueNoise


@dataclass(frozen=True)
class UpdateNoise:
    """One `update` (anatomy 3).

    Fields:
      target_pi_eps [H, B, A]     policy sample at the encoded next observations (TD target)
      target_q_pair [2]           target members whose minimum bootstraps the TD target
      q_keep [Nq, H, B, M]        dropout masks of the value loss (layer 0 of each member)
      energy_pi_eps [H, B, A]     policy negative for F (time-major, like the latents)
      energy_gauss [H, B, A]      perturbation of the policy negative (x contrastive_neg_noise)
      energy_uniform [H, B, A]    uniform negative
      pi_eps [H+1, B, A]          policy samples of the policy objective
      pi_q_pair [2]               members averaged in the policy objective
      pi_q_keep [2, H+1, B, M]    dropout masks of those two members
      score: ScoreNoise or None   only when use_score_network
      obs_shift [H+1, B, 2] int   random-shift offsets (dx, dy) in [0, 2 x 3] of every encoded
                                  observation (obs=rgb only, else None); (3, 3) = no shift.
                                  Augmentation is applied in the update only, never when acting.
    """

    target_pi_eps: Array
    target_q_pair: Array
    q_keep: Array
    energy_pi_eps: Array
    energy_gauss: Array
    energy_uniform: Array
    pi_eps: Array
    pi_q_pair: Array
    pi_q_keep: Array
    score: ScoreNoise | None = None
    obs_shift: Array | None = None


SHIFT_PAD = 3
"""Replicate padding of the rgb random-shift augmentation: offsets lie in [0, 2 x SHIFT_PAD]."""


def diffusion_levels(cfg: Config) -> int:
    """Number of reverse steps I = T - 1 with T = max(diffusion_steps, 2)."""
    return max(cfg.diffusion_steps, 2) - 1


def _pairs(rng: np.random.Generator, n: int, count: int | None = None) -> np.ndarray:
    if count is None:
        return rng.permutation(n)[:2].astype(np.int32)
    return np.stack([rng.permutation(n)[:2] for _ in range(count)]).astype(np.int32)


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def draw_value_noise(cfg: Config, rng: np.random.Generator, samples: int) -> ValueNoise:
    return ValueNoise(_normal(rng, samples, cfg.action_dim), _pairs(rng, cfg.num_q))


def draw_diffusion_noise(cfg: Config, rng: np.random.Generator) -> DiffusionNoise:
    I, K, H, A = diffusion_levels(cfg), cfg.diffusion_num_samples, cfg.horizon, cfg.action_dim
    P = min(cfg.diffusion_num_pi_trajs, K)
    return DiffusionNoise(
        sample_eps=_normal(rng, I, K, H, A),
        pi_eps=_normal(rng, I, H, P, A),
        value_pi_eps=_normal(rng, I, K, A),
        value_q_pair=_pairs(rng, cfg.num_q, I),
        action_eps=_normal(rng, A),
    )


def draw_mppi_noise(cfg: Config, rng: np.random.Generator) -> MppiNoise:
    I, K, H, A = cfg.iterations, cfg.num_samples, cfg.horizon, cfg.action_dim
    P = min(cfg.num_pi_trajs, K)
    return MppiNoise(
        pi_eps=_normal(rng, H, P, A),
        sample_eps=_normal(rng, I, K - P, H, A),
        value_pi_eps=_normal(rng, I, K, A),
        value_q_pair=_pairs(rng, cfg.num_q, I),
        gumbel=rng.gumbel(size=cfg.num_elites).astype(np.float32),
        action_eps=_normal(rng, A),
    )


def draw_policy_noise(cfg: Config, rng: np.random.Generator) -> PolicyNoise:
    return PolicyNoise(_normal(rng, cfg.action_dim))


def draw_score_noise(cfg: Config, rng: np.random.Generator) -> ScoreNoise:
    T, H, A = max(cfg.diffusion_steps, 2), cfg.horizon, cfg.action_dim
    S = cfg.diffusion_num_samples_mf
    return ScoreNoise(
        tau=np.int32(rng.integers(1, T)),
        x_tau=_normal(rng, H, A),
        sample_eps=_normal(rng, S, H, A),
        value=draw_value_noise(cfg, rng, S),
    )


def draw_update_noise(cfg: Config, rng: np.random.Generator) -> UpdateNoise:
    H, B, A, M, Nq = cfg.horizon, cfg.batch_size, cfg.action_dim, cfg.mlp_dim, cfg.num_q
    keep = 1.0 - cfg.dropout
    return UpdateNoise(
        target_pi_eps=_normal(rng, H, B, A),
        target_q_pair=_pairs(rng, Nq),
        q_keep=(rng.random((Nq, H, B, M)) < keep).astype(np.float32),
        energy_pi_eps=_normal(rng, H, B, A),
        energy_gauss=_normal(rng, H, B, A),
        energy_uniform=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        pi_eps=_normal(rng, H + 1, B, A),
        pi_q_pair=_pairs(rng, Nq),
        pi_q_keep=(rng.random((2, H + 1, B, M)) < keep).astype(np.float32),
        score=draw_score_noise(cfg, rng) if cfg.use_score_network else None,
        obs_shift=rng.integers(0, 2 * SHIFT_PAD + 1, (H + 1, B, 2)).astype(np.int32)
        if cfg.obs == "rgb"
        else None,
    )
