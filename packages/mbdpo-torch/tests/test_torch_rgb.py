"""Pixel observations in the torch backend: conv encoder and random shift vs the numpy oracle,
one update on an rgb batch vs the oracle's loss values, exact parameter export/import."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.noise import draw, draw_numpy
from mbdpo_core.reference import augment as ref_augment
from mbdpo_core.reference import losses as ref_losses
from mbdpo_core.reference import model as ref_model
from mbdpo_torch import Agent
from mbdpo_torch.augment import random_shift
from mbdpo_torch.noise import Sampler

RGB = [
    "task=cartpole-swingup",
    "obs=rgb",
    "preset=cpu",
    "device=cpu",
    "latent_dim=32",
    "mlp_dim=32",
    "batch_size=4",
    "diffusion_steps=3",
    "diffusion_num_samples=8",
    "diffusion_num_elites=4",
    "diffusion_num_pi_trajs=2",
]
LOSSES = ("consistency_loss", "reward_loss", "value_loss", "energy_loss", "total_loss")


def rgb_setup(seed: int = 0):
    cfg = load_config(RGB, backend="torch")
    rng = np.random.default_rng(seed)
    params = {
        k: (v + 0.1 * rng.standard_normal(v.shape)).astype(np.float32)
        for k, v in Agent(cfg).export_params().items()
    }
    H, B = cfg.horizon, cfg.batch_size
    batch = Batch(
        obs=rng.integers(0, 256, (H + 1, B, *cfg.obs_shape), dtype=np.uint8),
        action=rng.uniform(-1, 1, (H, B, cfg.action_dim)).astype(np.float32),
        reward=rng.standard_normal((H, B, 1)).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
        task=None,
    )
    return cfg, params, batch, draw_numpy("update", cfg, rng)


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    return rgb_setup()


def test_encode_matches_oracle(setup):
    cfg, params, batch, _ = setup
    agent = Agent(cfg)
    agent.import_params(params)
    with torch.no_grad():
        z = agent.model.encode(torch.as_tensor(batch.obs[:2]), None).numpy()
    assert z.shape == (2, cfg.batch_size, 32) and cfg.num_channels == 2
    np.testing.assert_allclose(z, ref_model.encode(params, cfg, batch.obs[:2]), atol=1e-5)


def test_export_import_is_exact(setup):
    cfg, params, _, _ = setup
    agent = Agent(cfg)
    agent.import_params(params)
    out = agent.export_params()
    assert out["encoder.0.weight"].shape == (7, 7, 9, 2)
    for name, value in params.items():
        np.testing.assert_array_equal(out[name], value, err_msg=name)


def test_random_shift_matches_oracle(setup):
    cfg, _, batch, noise = setup
    got = random_shift(torch.as_tensor(batch.obs), torch.as_tensor(noise.obs_shift))
    assert got.dtype == torch.uint8
    want = ref_augment.random_shift(batch.obs, noise.obs_shift)
    np.testing.assert_array_equal(got.numpy(), want)
    assert not np.array_equal(want, batch.obs)  # the draw moved some image


def test_native_draw_has_shift_offsets():
    cfg = load_config(RGB, backend="torch")
    shift = draw("update", cfg, Sampler(torch.Generator().manual_seed(0))).obs_shift
    assert shift.shape == (cfg.horizon + 1, cfg.batch_size, 2)
    assert int(shift.min()) >= 0 and int(shift.max()) <= 6
    assert len(torch.unique(shift)) > 1


def test_update_matches_oracle_losses(setup):
    cfg, params, batch, noise = setup
    agent = Agent(cfg)
    agent.import_params(params)
    metrics = agent.update_with_noise(batch, noise)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    want = ref_losses.world_model_losses(params, cfg, batch, noise)
    for key in LOSSES:
        np.testing.assert_allclose(metrics[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)
    after = agent.export_params()
    assert not np.array_equal(after["encoder.0.weight"], params["encoder.0.weight"])
    assert all(np.isfinite(v).all() for v in after.values())
    # native noise (drawn from the agent's generator) and acting on a uint8 frame
    assert np.isfinite(agent.update(batch)["total_loss"])
    action = agent.act(batch.obs[0, 0], t0=True, eval_mode=False)
    assert action.shape == (cfg.action_dim,) and np.all(np.abs(action) <= 1.0)
