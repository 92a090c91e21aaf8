"""precision=bf16 against float32 (docs/design.md#runtime): bounds measured at model size 1
with the CPU preset's planner and benchmark-like weights; the same noise for both precisions.
The torch bf16 agent is compared with the float32 torch agent only (never with JAX's bf16).
Also: precision=float32 changes nothing, and torch.compile's reduce-overhead mode acts as eager.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import ConfigError
from mbdpo_core.metrics import LOSS_TERMS
from mbdpo_core.noise import ValueNoise, draw_numpy
from mbdpo_core.params import nonzero_init_params
from mbdpo_torch import Agent
from mbdpo_torch.layers import matmul_precision
from mbdpo_torch.value import value_estimate

BASE = ["preset=cpu", "device=cpu", "task=cheetah-run"]
SEEDS = (0, 1, 2)
PRECISIONS = ("float32", "bf16")

ACTION_BOUND = 0.2
"""max |a_bf16 - a_float32| over SEEDS x 3 acts; measured 0.047 (0.093 over 20 seeds)."""
OVERLAP_BOUND = 0.75
"""min elite-set overlap (E = 8) over SEEDS; measured 1.0 (0.875 over 20 seeds, mean 0.98)."""
LOSS_BOUND = 0.01
"""max relative difference of the loss terms and total_loss of one update; measured 0.0019
(6 seeds)."""
PI_LOSS_BOUND = 0.1
"""the same for pi_loss, a small difference of two terms (~0.05); measured 0.033 (6 seeds)."""


def agents(seed: int) -> dict[str, Agent]:
    """A float32 and a bf16 agent with the same nonzero_init_params(seed)."""
    out = {p: Agent(load_config([*BASE, f"precision={p}"], backend="torch")) for p in PRECISIONS}
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
        assert pair["bf16"].prev_plan.dtype == np.float32
    assert 0.0 < worst <= ACTION_BOUND  # > 0: bf16 did change the arithmetic


def elite_overlap(pair: dict[str, Agent], rng: np.random.Generator) -> float:
    """The fraction of the float32 top-E candidates (by value) that are also bf16's top-E, on the
    candidates of the diffusion planner's first reverse step (clipped Gaussian sequences)."""
    cfg = pair["float32"].cfg
    noise = draw_numpy("diffusion", cfg, rng)
    obs = torch.as_tensor(rng.standard_normal(cfg.obs_shape), dtype=torch.float32)
    actions = torch.as_tensor(np.clip(noise.sample_eps[0], -1, 1))
    value_noise = ValueNoise(
        pi_eps=torch.as_tensor(noise.value_pi_eps[0]),
        q_pair=torch.as_tensor(noise.value_q_pair[0], dtype=torch.int64),
    )
    elites = []
    for precision, agent in pair.items():
        with torch.no_grad(), matmul_precision(precision, agent.device):
            z = agent.model.encode(obs[None], None)
            values = value_estimate(agent.model, z, actions, None, value_noise, agent.energy_stats)
        elites.append(
            set(torch.topk(values.float()[:, 0], cfg.diffusion_num_elites).indices.tolist())
        )
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
    assert pair["bf16"].energy_stats.dtype == pair["bf16"].scale.dtype == torch.float32


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("precision=fp16", "Invalid precision='fp16'. Valid choices: float32, bf16."),
        (
            "compile_mode=fast",
            "Invalid compile_mode='fast'. Valid choices: default, reduce-overhead, max-autotune.",
        ),
    ],
)
def test_bad_precision_or_compile_mode_is_a_one_line_config_error(tiny, override, expected):
    with pytest.raises(ConfigError) as error:
        tiny(override)
    assert str(error.value) == expected


def test_precision_float32_is_the_default_and_unchanged(tiny, rbatch):
    cfg = tiny()
    explicit = tiny("precision=float32")
    assert cfg == explicit
    default, agent = Agent(cfg), Agent(explicit)
    rng = np.random.default_rng(3)
    obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
    noise = draw_numpy("diffusion", cfg, rng)
    np.testing.assert_array_equal(
        default.plan_with_noise(obs, True, False, None, noise),
        agent.plan_with_noise(obs, True, False, None, noise),
    )
    batch = rbatch(cfg)
    update_noise = draw_numpy("update", cfg, rng, cfg.batch_size)
    assert default.update_with_noise(batch, update_noise) == agent.update_with_noise(
        batch, update_noise
    )


@pytest.mark.slow
def test_compile_reduce_overhead_acts_and_updates_as_eager(tiny, rbatch):
    """compile=true compile_mode=reduce-overhead on CPU (no CUDA graphs there: Inductor's code):
    the compiled planner and the compiled losses give eager's plans, metrics and parameters."""
    small = ("planner=diffusion", "diffusion_steps=2", "horizon=2")  # a short graph to compile
    cfg = tiny(*small)
    compiled = Agent(tiny(*small, "compile=true", "compile_mode=reduce-overhead"))
    eager = Agent(cfg)
    compiled.import_params(eager.export_params())
    rng = np.random.default_rng(4)
    for _ in range(2):  # t0=False only (one compiled graph); the second act warm-starts
        obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
        noise = draw_numpy("diffusion", cfg, rng)
        np.testing.assert_allclose(
            compiled.plan_with_noise(obs, False, False, None, noise),
            eager.plan_with_noise(obs, False, False, None, noise),
            atol=1e-5,
        )
        np.testing.assert_allclose(compiled.prev_plan, eager.prev_plan, atol=1e-5)
    batch, update_noise = rbatch(cfg), draw_numpy("update", cfg, rng, cfg.batch_size)
    got = compiled.update_with_noise(batch, update_noise)
    want = eager.update_with_noise(batch, update_noise)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
    after, expected = compiled.export_params(), eager.export_params()
    for name, value in expected.items():
        np.testing.assert_allclose(after[name], value, atol=1e-5, err_msg=name)
