"""Noise bundles: every random draw of `update` and `act`, declared once (the parity contract).

A backend's functional core takes one of these bundles. Each field is declared once below, as
a law and a shape that are functions of the config and the batch size (`layout`); `draw`
builds a bundle from any sampler that implements the laws (`Sampler`). The numpy sampler
(`NumpySampler`) serves the parity tests, which hand the same arrays to both backends; each
backend only implements the sampler (torch.Generator, JAX key). See docs/design.md#noise-bundles.

Shape letters (mbdpo_core.shapes): B batch, H horizon, A action, N candidates, P policy
rollouts, I planner iterations (diffusion: reverse steps tau = T-1 .. 1, in that order),
Nq Q members, M mlp width, S Monte-Carlo score samples.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Protocol

import numpy as np

from .config.schema import Config

Array = Any  # numpy, torch or jax array

SHIFT_PAD = 3
"""Replicate padding of the rgb random-shift augmentation: offsets lie in [0, 2 x SHIFT_PAD]."""


@dataclass(frozen=True)
class ValueNoise:
    """The planning value estimate (docs/method.md#value-estimate).

    Fields: pi_eps [N, A] policy sample at the last latent; q_pair [2] online Q members averaged;
    q_keep [2, N, M] dropout keep masks of those two members' layer 0, or None (no dropout:
    planning; the score target runs with dropout, as the published update does).
    """

    pi_eps: Array
    q_pair: Array
    q_keep: Array | None = None


@dataclass(frozen=True)
class DiffusionNoise:
    """One `act` of the diffusion planner (docs/method.md#diffusion-planner).

    Fields: sample_eps [I, N, H, A]; pi_eps [I, H, P, A] (policy rollouts, fresh per level);
    value_pi_eps [I, N, A]; value_q_pair [I, 2]; action_eps [A] exploration noise (training);
    obs_shift [2] (see PolicyNoise). Planning with the score network (cfg.score_net_plans)
    reads action_eps (and obs_shift) only (I = N = P = 0).
    """

    sample_eps: Array
    pi_eps: Array
    value_pi_eps: Array
    value_q_pair: Array
    action_eps: Array
    obs_shift: Array | None = None


@dataclass(frozen=True)
class MppiNoise:
    """One `act` of MPPI (docs/method.md#mppi).

    Fields: pi_eps [H, P, A] (policy rollouts, once per act); sample_eps [I, N-P, H, A];
    value_pi_eps [I, N, A]; value_q_pair [I, 2]; gumbel [num_elites] for the final elite
    choice; action_eps [A]; obs_shift [2] (see PolicyNoise).
    """

    pi_eps: Array
    sample_eps: Array
    value_pi_eps: Array
    value_q_pair: Array
    gumbel: Array
    action_eps: Array
    obs_shift: Array | None = None


@dataclass(frozen=True)
class PolicyNoise:
    """One `act` of the policy-prior planner. Fields: action_eps [A] (sample in training).

    Every plan bundle also holds obs_shift [2] int: the random-shift offset (dx, dy) in
    [0, 2 x SHIFT_PAD] of the observation acting encodes, in training and evaluation alike
    (obs=rgb with obs_shift=always only, else None; docs/method.md#augmentation).
    """

    action_eps: Array
    obs_shift: Array | None = None


@dataclass(frozen=True)
class ScoreNoise:
    """The score-network loss (docs/method.md#score-network).

    Fields: tau [] integer level in 1..T-1; x_tau [H, A]; sample_eps [S, H, A];
    value: ValueNoise with pi_eps [S, A] and q_keep [2, S, M] (the target's V runs with dropout).
    """

    tau: Array
    x_tau: Array
    sample_eps: Array
    value: ValueNoise


@dataclass(frozen=True)
class UpdateNoise:
    """One `update` (docs/method.md#update).

    Fields:
      target_pi_eps [H, B, A]     policy sample at the encoded next observations (TD target)
      target_q_pair [2]           target members whose minimum bootstraps the TD target
      q_keep [Nq, H, B, M]        dropout keep masks of the value loss (layer 0 of each member)
      energy_pi_eps [H, B, A]     policy negative for F (time-major, like the latents)
      energy_gauss [H, B, A]      perturbation of the policy negative (x energy_neg_noise)
      energy_uniform [H, B, A]    uniform negative
      pi_eps [H+1, B, A]          policy samples of the policy objective
      pi_q_pair [2]               members averaged in the policy objective
      pi_q_keep [2, H+1, B, M]    dropout keep masks of those two members
      score: ScoreNoise or None   only when use_score_network
      obs_shift [H+1, B, 2] int   random-shift offsets (dx, dy) in [0, 2 x SHIFT_PAD] of every
                                  encoded observation (obs=rgb only, else None); (3, 3) = none.
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


BUNDLES = {
    "value": ValueNoise,
    "diffusion": DiffusionNoise,
    "mppi": MppiNoise,
    "policy": PolicyNoise,
    "score": ScoreNoise,
    "update": UpdateNoise,
}
"""Bundle kind -> class. `draw(kind="plan")` means the bundle of cfg.planner."""


@dataclass(frozen=True)
class Law:
    """How one field is drawn: `law` with `shape`; `arg` is p (bernoulli), n (pairs) or the
    (low, high) range (integers). Laws: normal N(0, 1) float32; uniform U(-1, 1) float32;
    bernoulli 0/1 float32 with P(1) = p; pairs [*shape, 2] int, two distinct ints in [0, n)
    per row; gumbel float32; integers in [low, high)."""

    law: str
    shape: tuple[int, ...]
    arg: Any = None


class Sampler(Protocol):
    """What `draw` needs from a backend: one method per law, each returning an array of
    exactly `shape` (pairs: [*lead, 2])."""

    def normal(self, shape: tuple[int, ...]) -> Array: ...
    def uniform(self, shape: tuple[int, ...]) -> Array: ...
    def bernoulli(self, shape: tuple[int, ...], p: float) -> Array: ...
    def pairs(self, lead: tuple[int, ...], n: int) -> Array: ...
    def gumbel(self, shape: tuple[int, ...]) -> Array: ...
    def integers(self, shape: tuple[int, ...], low: int, high: int) -> Array: ...


def noise_levels(cfg: Config) -> int:
    """T = max(diffusion_steps, 2) noise levels of the diffusion planner."""
    return max(cfg.diffusion_steps, 2)


def diffusion_levels(cfg: Config) -> int:
    """Number of reverse steps I = T - 1."""
    return noise_levels(cfg) - 1


def _obs_shift(cfg: Config, lead: tuple[int, ...], acting: bool) -> Law | None:
    """Random-shift offsets (dx, dy) [*lead, 2] in [0, 2 x SHIFT_PAD] for obs=rgb; acting draws
    them only when it shifts (obs_shift=always). None otherwise."""
    if cfg.obs != "rgb" or (acting and not cfg.shifts_when_acting):
        return None
    return Law("integers", (*lead, 2), (0, 2 * SHIFT_PAD + 1))


def layout(
    kind: str, cfg: Config, batch_size: int | None = None, envs: int | None = None
) -> dict[str, Any]:
    """The declaration of bundle `kind`: field -> Law, a nested layout (dict) or None.

    batch_size: B of an update's batch (default cfg.batch_size); the value bundle's N.
    envs: a plan bundle for that many environments planned in one batched call: every field
        gets a leading env axis [envs, ...] (docs/design.md#vectorised-acting).
    """
    if envs is not None:
        return _env_axis(kind, cfg, envs)
    H, A, M, Nq = cfg.horizon, cfg.action_dim, cfg.mlp_dim, cfg.num_q
    B = cfg.batch_size if batch_size is None else batch_size
    keep = 1.0 - cfg.dropout
    if kind == "plan":
        kind = cfg.planner
    if kind == "value":
        return {"pi_eps": Law("normal", (B, A)), "q_pair": Law("pairs", (), Nq), "q_keep": None}
    if kind == "diffusion":
        I, N = diffusion_levels(cfg), cfg.diffusion_num_samples
        P = min(cfg.diffusion_num_pi_trajs, N)
        if cfg.score_net_plans:  # no Monte-Carlo score: only action_eps is read
            I = N = P = 0
        return {
            "sample_eps": Law("normal", (I, N, H, A)),
            "pi_eps": Law("normal", (I, H, P, A)),
            "value_pi_eps": Law("normal", (I, N, A)),
            "value_q_pair": Law("pairs", (I,), Nq),
            "action_eps": Law("normal", (A,)),
            "obs_shift": _obs_shift(cfg, (), acting=True),
        }
    if kind == "mppi":
        I, N = cfg.iterations, cfg.num_samples
        P = min(cfg.num_pi_trajs, N)
        return {
            "pi_eps": Law("normal", (H, P, A)),
            "sample_eps": Law("normal", (I, N - P, H, A)),
            "value_pi_eps": Law("normal", (I, N, A)),
            "value_q_pair": Law("pairs", (I,), Nq),
            "gumbel": Law("gumbel", (cfg.num_elites,)),
            "action_eps": Law("normal", (A,)),
            "obs_shift": _obs_shift(cfg, (), acting=True),
        }
    if kind == "policy":
        return {"action_eps": Law("normal", (A,)), "obs_shift": _obs_shift(cfg, (), acting=True)}
    if kind == "score":
        S = cfg.diffusion_num_samples_mf
        return {
            "tau": Law("integers", (), (1, noise_levels(cfg))),
            "x_tau": Law("normal", (H, A)),
            "sample_eps": Law("normal", (S, H, A)),
            "value": {**layout("value", cfg, S), "q_keep": Law("bernoulli", (2, S, M), keep)},
        }
    if kind == "update":
        return {
            "target_pi_eps": Law("normal", (H, B, A)),
            "target_q_pair": Law("pairs", (), Nq),
            "q_keep": Law("bernoulli", (Nq, H, B, M), keep),
            "energy_pi_eps": Law("normal", (H, B, A)),
            "energy_gauss": Law("normal", (H, B, A)),
            "energy_uniform": Law("uniform", (H, B, A)),
            "pi_eps": Law("normal", (H + 1, B, A)),
            "pi_q_pair": Law("pairs", (), Nq),
            "pi_q_keep": Law("bernoulli", (2, H + 1, B, M), keep),
            "score": layout("score", cfg) if cfg.use_score_network else None,
            "obs_shift": _obs_shift(cfg, (H + 1, B), acting=False),
        }
    raise ValueError(f"Unknown noise bundle {kind!r}. Valid kinds: plan, {', '.join(BUNDLES)}.")


def _env_axis(kind: str, cfg: Config, envs: int) -> dict[str, Any]:
    """The plan bundle `kind` of cfg with a leading env axis of length `envs` on every field."""
    name = cfg.planner if kind == "plan" else kind
    if name not in ("diffusion", "mppi", "policy"):
        raise ValueError(f"Noise bundle {kind!r} has no env axis; only plan bundles have one.")
    spec = layout(name, cfg)
    return {
        k: None if law is None else Law(law.law, (envs, *law.shape), law.arg)
        for k, law in spec.items()
    }


def _sample(law: Law, sampler: Sampler) -> Array:
    if law.law == "bernoulli":
        return sampler.bernoulli(law.shape, law.arg)
    if law.law == "pairs":
        return sampler.pairs(law.shape, law.arg)
    if law.law == "integers":
        return sampler.integers(law.shape, *law.arg)
    return getattr(sampler, law.law)(law.shape)


def _build(cls: type, spec: dict[str, Any], sampler: Sampler) -> Any:
    values = {}
    for f in fields(cls):  # declaration order = draw order
        item = spec[f.name]
        if item is None:
            values[f.name] = None
        elif isinstance(item, Law):
            values[f.name] = _sample(item, sampler)
        else:
            nested = ScoreNoise if f.name == "score" else ValueNoise
            values[f.name] = _build(nested, item, sampler)
    return cls(**values)


def draw(
    kind: str,
    cfg: Config,
    sampler: Sampler,
    batch_size: int | None = None,
    envs: int | None = None,
) -> Any:
    """A bundle of `kind` (plan | value | diffusion | mppi | policy | score | update) drawn
    field by field, in declaration order, from `sampler`; `envs`: a plan bundle with a leading
    env axis (see `layout`)."""
    name = cfg.planner if kind == "plan" else kind
    spec = layout(name, cfg, batch_size, envs)  # raises for an unknown kind
    return _build(BUNDLES[name], spec, sampler)


def bundle_shapes(bundle: Any) -> dict[str, Any]:
    """Field -> shape tuple (nested dicts for nested bundles, None for absent fields)."""
    out: dict[str, Any] = {}
    for f in fields(bundle):
        value = getattr(bundle, f.name)
        if value is None:
            out[f.name] = None
        elif is_dataclass(value):
            out[f.name] = bundle_shapes(value)
        else:
            out[f.name] = tuple(value.shape)
    return out


def expected_shapes(
    kind: str, cfg: Config, batch_size: int | None = None, envs: int | None = None
) -> dict[str, Any]:
    """The shapes `draw` produces for `kind` (pairs end in 2), without drawing."""

    def shapes(spec: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, item in spec.items():
            if item is None:
                out[name] = None
            elif isinstance(item, Law):
                out[name] = (*item.shape, 2) if item.law == "pairs" else item.shape
            else:
                out[name] = shapes(item)
        return out

    return shapes(layout(kind, cfg, batch_size, envs))


def update_batch_axes(cfg: Config, batch_size: int) -> dict[str, Any]:
    """Field -> the axis of an `update` bundle drawn at `batch_size` that runs over the batch
    (None: no batch axis), found by comparing the shapes at two batch sizes; how a
    data-parallel update splits its noise (docs/design.md#data-parallel-updates)."""

    def axes(shapes: dict[str, Any], grown: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, shape in shapes.items():
            if isinstance(shape, dict):
                out[name] = axes(shape, grown[name])
            else:
                sizes = zip(shape or (), grown[name] or (), strict=True)
                out[name] = next((i for i, (a, b) in enumerate(sizes) if a != b), None)
        return out

    return axes(
        expected_shapes("update", cfg, batch_size), expected_shapes("update", cfg, batch_size + 1)
    )


class NumpySampler:
    """The numpy sampler (parity tests): float32 draws from one np.random.Generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def normal(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.standard_normal(shape).astype(np.float32)

    def uniform(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, shape).astype(np.float32)

    def bernoulli(self, shape: tuple[int, ...], p: float) -> np.ndarray:
        return (self.rng.random(shape) < p).astype(np.float32)

    def pairs(self, lead: tuple[int, ...], n: int) -> np.ndarray:
        count = int(np.prod(lead))
        rows = [self.rng.permutation(n)[:2] for _ in range(count)]
        return np.asarray(rows, np.int32).reshape(*lead, 2)

    def gumbel(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.gumbel(size=shape).astype(np.float32)

    def integers(self, shape: tuple[int, ...], low: int, high: int) -> np.ndarray:
        return np.asarray(self.rng.integers(low, high, shape), np.int32)


def draw_numpy(
    kind: str,
    cfg: Config,
    rng: np.random.Generator,
    batch_size: int | None = None,
    envs: int | None = None,
):
    """`draw` with the numpy sampler: the bundles the parity tests hand to both backends."""
    return draw(kind, cfg, NumpySampler(rng), batch_size, envs)
