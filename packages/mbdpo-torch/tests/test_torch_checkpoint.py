"""Checkpoint save / load / resume: a fresh agent continues exactly where the saved one was."""

from __future__ import annotations

import numpy as np
import pytest
from mbdpo_core.errors import CheckpointError, ShapeError
from mbdpo_core.noise import draw_numpy
from mbdpo_torch import Agent


def test_save_load_resume(tmp_path, tiny, rbatch):
    cfg = tiny("use_score_network=true")
    agent = Agent(cfg)
    rng = np.random.default_rng(0)
    obs = rng.normal(0, 1, cfg.obs_shape).astype(np.float32)
    for step in range(2):
        agent.update(rbatch(cfg, step))
        agent.act(obs, step == 0, False)
    agent.save(tmp_path / "ckpt", extra={"loop": {"step": 2}})

    fresh = Agent(tiny("use_score_network=true", "seed=7"))
    meta = fresh.load(tmp_path / "ckpt.json")
    assert meta["backend"] == "torch" and meta["loop"] == {"step": 2}
    assert meta["optim_step"] == {"model": 2, "pi": 2}
    for name, value in agent.export_params().items():
        np.testing.assert_array_equal(fresh.export_params()[name], value, err_msg=name)

    noise = draw_numpy("diffusion", cfg, np.random.default_rng(1))
    a1 = agent.plan_with_noise(obs, False, False, None, noise)
    a2 = fresh.plan_with_noise(obs, False, False, None, noise)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(agent.act(obs, False, False), fresh.act(obs, False, False))

    batch = rbatch(cfg, 9)
    unoise = draw_numpy("update", cfg, np.random.default_rng(2))
    m1, m2 = agent.update_with_noise(batch, unoise), fresh.update_with_noise(batch, unoise)
    assert m1 == m2
    assert agent.update(batch) == fresh.update(batch)  # the RNG state was restored too
    for name, value in agent.export_params().items():
        np.testing.assert_array_equal(fresh.export_params()[name], value, err_msg=name)


def test_state_dict_names(tiny):
    arrays, meta = Agent(tiny()).state_dict()
    assert "params/target_q.0.weight" in arrays and "agent/prev_plan" in arrays
    assert "optim/model/encoder.0.weight/exp_avg" in arrays
    assert "optim/pi/pi.0.weight/exp_avg_sq" in arrays
    assert not any(k.startswith("optim/model/pi.") for k in arrays)
    assert set(meta) >= {"backend", "config", "optim_step", "running_scale", "energy_stats", "rng"}


def test_load_into_other_shape_fails(tmp_path, tiny):
    Agent(tiny()).save(tmp_path / "small")
    with pytest.raises(CheckpointError, match="shape mismatches"):
        Agent(tiny("mlp_dim=48")).load(tmp_path / "small")


def test_state_of_another_backend_seeds_the_generator(tiny, rbatch):
    cfg = tiny()
    source = Agent(cfg)
    source.update(rbatch(cfg, 0))
    state = source.get_state()
    state.rng = {"backend": "jax", "key": [0, 7]}
    obs = np.zeros(cfg.obs_shape, np.float32)
    actions = []
    for draws in (0, 3):  # the agent's own generator state must not matter
        agent = Agent(cfg)
        for _ in range(draws):
            agent.act(obs, True, False)
        agent.set_state(state)
        actions.append(agent.act(obs, True, False))
    np.testing.assert_array_equal(actions[0], actions[1])


def test_batch_of_the_wrong_shape(tiny, rbatch):
    cfg = tiny()
    batch = rbatch(cfg, 0)
    bad = type(batch)(batch.obs[:, :, :5], batch.action, batch.reward, batch.terminated, None)
    with pytest.raises(ShapeError, match="batch.obs"):
        Agent(cfg).update(bad)
