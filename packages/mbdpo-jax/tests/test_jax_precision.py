"""precision=bf16 against float32 (docs/design.md#runtime): bounds measured at model size 1
with the CPU preset's planner and benchmark-like weights; the same noise for both precisions.
The JAX bf16 agent is compared with the float32 JAX agent only (never with torch's bf16).
Also: precision=float32 changes nothing, and act / act_envs donate what they replace.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import numpy as np
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.config.schema import Config
from mbdpo_core.metrics import LOSS_TERMS
from mbdpo_core.noise import ValueNoise, draw, draw_numpy
from mbdpo_core.params import nonzero_init_params
from mbdpo_jax import Agent
from mbdpo_jax.layers import matmul_precision
from mbdpo_jax.noise import Sampler
from mbdpo_jax.value import value_estimate

BASE = ["preset=cpu", "device=cpu", "task=cheetah-run"]
SEEDS = (0, 1, 2)
PRECISIONS = ("float32", "bf16")

ACTION_BOUND = 0.15
"""max |a_bf16 - a_float32| over SEEDS x 3 acts; measured 0.035 (0.069 over 20 seeds)."""
OVERLAP_BOUND = 0.75
"""min elite-set overlap (E = 8) over SEEDS; measured 1.0 (0.875 over 20 seeds, mean 0.975)."""
LOSS_BOUND = 0.005
"""max relative difference of the loss terms and total_loss of one update; measured 0.00042
(6 seeds)."""
PI_LOSS_BOUND = 0.1
"""the same for pi_loss, a small difference of two terms (~0.05); measured 0.040 (6 seeds)."""


def agents(seed: int) -> dict[str, Agent]:
    """A float32 and a bf16 agent with the same nonzero_init_params(seed)."""
    out = {p: Agent(load_config([*BASE, f"precision={p}"], backend="jax")) for p in PRECISIONS}
    params = nonzero_init_params(out["float32"].cfg, np.random.default_rng(seed))
    for agent in out.values():
        agent.import_params(params)
    return out


def test_bf16_actions_within_measured_bound():
    worst = 0.0
    for seed in SEEDS:
        pair, rng = agents(seed), np.random.default_rng(100 + seed)
        cfg = pair["float32"].cfg
        for t0, eval_mode in ((True, False), (False, True), (False, False)):  # warm starts too
            obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
            noise = draw_numpy("diffusion", cfg, rng)
            a = {
                p: agent.plan_with_noise(obs, t0, eval_mode, None, noise)
                for p, agent in pair.items()
            }
            assert a["bf16"].dtype == np.float32
            worst = max(worst, float(np.abs(a["bf16"] - a["float32"]).max()))
    assert 0.0 < worst <= ACTION_BOUND  # > 0: bf16 did change the arithmetic


def elite_overlap(pair: dict[str, Agent], rng: np.random.Generator) -> float:
    """The fraction of the float32 top-E candidates (by value) that are also bf16's top-E, on the
    candidates of the diffusion planner's first reverse step (clipped Gaussian sequences)."""
    cfg = pair["float32"].cfg
    noise = draw_numpy("diffusion", cfg, rng)
    obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
    actions = np.clip(noise.sample_eps[0], -1, 1)
    value_noise = ValueNoise(pi_eps=noise.value_pi_eps[0], q_pair=noise.value_q_pair[0])
    elites = []
    for precision, agent in pair.items():
        model = agent.model
        with matmul_precision(precision, None):
            z = model.encode(obs[None], None)
            values = value_estimate(model, z, actions, None, value_noise, (0.0, 1.0))
        top = np.argsort(-np.asarray(values)[:, 0])[: cfg.diffusion_num_elites]
        elites.append(set(top.tolist()))
    return len(elites[0] & elites[1]) / cfg.diffusion_num_elites


def test_bf16_elite_sets_overlap_float32():
    overlaps = [elite_overlap(agents(seed), np.random.default_rng(200 + seed)) for seed in SEEDS]
    assert min(overlaps) >= OVERLAP_BOUND


def update_batch(cfg: Config, rng: np.random.Generator) -> Batch:
    H, B, A = cfg.horizon, cfg.batch_size, cfg.action_dim
    return Batch(
        obs=rng.standard_normal((H + 1, B, *cfg.obs_shape)).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        reward=rng.standard_normal((H, B, 1)).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
    )


def test_bf16_update_losses_within_measured_bound():
    pair, rng = agents(0), np.random.default_rng(5)
    cfg = pair["float32"].cfg
    batch, noise = update_batch(cfg, rng), draw_numpy("update", cfg, rng, cfg.batch_size)
    m = {p: agent.update_with_noise(batch, noise) for p, agent in pair.items()}
    for key in (*LOSS_TERMS, "total_loss", "pi_loss"):
        f, b = m["float32"][key], m["bf16"][key]
        bound = PI_LOSS_BOUND if key == "pi_loss" else LOSS_BOUND
        assert abs(b - f) <= bound * max(abs(f), 1e-6), key
    assert m["bf16"]["total_loss"] != m["float32"]["total_loss"]
    for name, value in pair["bf16"].export_params().items():
        assert value.dtype == np.float32, name


def test_precision_float32_is_the_default_and_unchanged(tiny):
    cfg = load_config(tiny)
    explicit = load_config([*tiny, "precision=float32"])
    assert cfg == explicit
    default, agent = Agent(cfg), Agent(explicit)
    rng = np.random.default_rng(3)
    obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
    noise = draw_numpy("diffusion", cfg, rng)
    np.testing.assert_array_equal(
        default.plan_with_noise(obs, True, False, None, noise),
        agent.plan_with_noise(obs, True, False, None, noise),
    )


def _numpy_bundle(bundle):
    return type(bundle)(
        **{
            f.name: None if getattr(bundle, f.name) is None else np.asarray(getattr(bundle, f.name))
            for f in dataclasses.fields(bundle)
        }
    )


def test_act_donates_the_warm_start_and_key_with_unchanged_results(tiny):
    """act / act_envs (donating) give what plan_with_noise / plan_envs_with_noise (not donating)
    give with the noise drawn from the same key, and warn about nothing."""
    cfg = load_config(tiny)
    acting, planning = Agent(cfg), Agent(cfg)
    rng = np.random.default_rng(6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t0 in (True, False):
            obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
            key, warm = acting._state.key, acting._state.prev_plan
            noise = draw("plan", cfg, Sampler(jax.random.split(key)[1]))
            expected = planning.plan_with_noise(obs, t0, False, None, _numpy_bundle(noise))
            np.testing.assert_array_equal(acting.act(obs, t0, False), expected)
            np.testing.assert_array_equal(acting.prev_plan, planning.prev_plan)
            assert key.is_deleted() and warm.is_deleted()
        for t0 in (True, False):
            obs = rng.standard_normal((2, *cfg.obs_shape)).astype(np.float32)
            t0s = np.array([t0, False])
            key = acting._state.key
            noise = draw("plan", cfg, Sampler(jax.random.split(key)[1]), envs=2)
            expected = planning.plan_envs_with_noise(obs, t0s, False, None, _numpy_bundle(noise))
            warm = acting._env_plans
            np.testing.assert_array_equal(acting.act_envs(obs, t0s, False), expected)
            assert key.is_deleted() and (warm is None or warm.is_deleted())
