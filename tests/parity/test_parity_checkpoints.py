"""Cross-backend checkpoints: a checkpoint written by one backend loads into the other with
identical arrays, and both then choose the same evaluation actions from the same noise (ACT_TOL
and TRAINED_ACT_TOL, from the error budget in parity_budget.py)."""

from pathlib import Path

import mbdpo_jax
import mbdpo_torch
import numpy as np
import pytest
from mbdpo_core.buffer import EpisodeRecorder, ReplayBuffer
from mbdpo_core.checkpoint import load_checkpoint
from mbdpo_core.config.load import config_from_dict, load_config
from mbdpo_core.noise import draw_numpy
from parity_budget import ACT_TOL, TRAINED_ACT_TOL

BACKENDS = {"torch": mbdpo_torch.Agent, "jax": mbdpo_jax.Agent}
TRAIN_STEPS = 20


def synthetic_buffer(cfg, episodes=6, length=50, seed=0):
    """Episodes of a damped random walk; the reward prefers actions near 0.5, so a trained model
    values candidate plans clearly apart (a flat value would make the elite choice rounding
    noise in any float32 implementation)."""
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(episodes * (length + 1), cfg.obs_shape, cfg.action_dim, seed=seed)
    for _ in range(episodes):
        obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
        rec = EpisodeRecorder(obs)
        for _ in range(length):
            action = rng.uniform(-1, 1, cfg.action_dim).astype(np.float32)
            obs = (0.9 * obs + 0.1 * np.resize(action, obs.shape)).astype(np.float32)
            reward = -5.0 * float(np.abs(action - 0.5).mean()) - 0.1 * float(np.abs(obs).mean())
            rec.add(action, reward, False, obs)
        buffer.add(rec.finish())
    return buffer


def eval_actions(agent, cfg, seed=5, steps=3):
    """Eval-mode actions of a few consecutive acts with fixed noise, the first from the agent's
    warm start (so a checkpoint's warm start and F statistics both count)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
        out.append(agent.plan_with_noise(obs, False, True, None, draw_numpy("diffusion", cfg, rng)))
    return np.stack(out)


def assert_same_state(a, b):
    (arrays_a, meta_a), (arrays_b, meta_b) = a.state_dict(), b.state_dict()
    assert set(arrays_a) == set(arrays_b)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    for key in ("optim_step", "running_scale", "energy_stats"):
        assert meta_a[key] == meta_b[key], key


def roundtrip(cfg, source, target, tmp_path, train_steps, params, tol):
    writer = BACKENDS[source](cfg)
    writer.import_params(params)
    buffer = synthetic_buffer(cfg)
    for _ in range(train_steps):
        writer.update(buffer.sample(cfg.batch_size, cfg.horizon))
    writer.act(np.zeros(cfg.obs_shape, np.float32), True, False)  # a non-zero warm start
    writer.save(tmp_path / "ckpt")
    reader = BACKENDS[target](cfg)
    meta = reader.load(tmp_path / "ckpt")
    assert meta["backend"] == source
    assert_same_state(writer, reader)
    np.testing.assert_allclose(eval_actions(reader, cfg), eval_actions(writer, cfg), atol=tol)


@pytest.mark.parametrize(("source", "target"), [("torch", "jax"), ("jax", "torch")])
def test_checkpoint_crosses_backends(source, target, tmp_path, tiny, random_params):
    cfg = load_config(tiny)
    roundtrip(cfg, source, target, tmp_path, 2, random_params(cfg), ACT_TOL)


@pytest.mark.parametrize(("source", "target"), [("torch", "jax"), ("jax", "torch")])
def test_trained_checkpoint_gives_same_eval_actions(source, target, tmp_path, tiny, random_params):
    """TRAIN_STEPS updates on a small replay buffer (moments, counters and F statistics away from
    their start), then the other backend takes over. From perturbed parameters: a fresh agent's
    zeroed heads still value every candidate plan alike after 200 updates, and the planner then
    turns float32 rounding into ~1e-4 action differences (parity_budget.py)."""
    cfg = load_config(tiny)
    roundtrip(cfg, source, target, tmp_path, TRAIN_STEPS, random_params(cfg), TRAINED_ACT_TOL)


RELEASE_0_1 = Path(__file__).parent / "data"
"""Checkpoints written by mbdpo 0.1.0 (commit a4fc46a, before issue 9) with the tiny config on
cartpole-balance, after two updates and one act (so moments, counters, statistics and the warm
start are set)."""


@pytest.mark.parametrize("writer", ["torch", "jax"])
@pytest.mark.parametrize("reader", ["torch", "jax"])
def test_checkpoints_of_the_previous_release_load(writer, reader, tiny):
    stem = RELEASE_0_1 / f"release-0.1-{writer}"
    arrays, meta = load_checkpoint(stem)
    assert config_from_dict(meta["config"]).energy_eta == 0.01  # saved as contrastive_eta
    agent = BACKENDS[reader](load_config([*tiny, "task=cartpole-balance"]))
    assert agent.load(stem)["backend"] == writer
    state_arrays, state_meta = agent.state_dict()
    assert set(state_arrays) == set(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(state_arrays[name], value, err_msg=name)
    for key in ("optim_step", "running_scale", "energy_stats"):
        assert state_meta[key] == meta[key], key
