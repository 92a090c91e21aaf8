"""Pixel observations in the JAX backend: conv encoder and random shift vs the numpy oracle,
one jitted update on an rgb batch vs the oracle's loss values, native shift draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.noise import draw, draw_numpy
from mbdpo_core.reference import augment as ref_augment
from mbdpo_core.reference import losses as ref_losses
from mbdpo_core.reference import model as ref_model
from mbdpo_jax import Agent, WorldModel
from mbdpo_jax.augment import random_shift
from mbdpo_jax.noise import Sampler
from mbdpo_jax.params_io import import_params

RGB = [
    "task=cartpole-swingup",
    "obs=rgb",
    "preset=cpu",
    "latent_dim=32",
    "mlp_dim=32",
    "batch_size=4",
    "diffusion_steps=3",
    "diffusion_num_samples=8",
    "diffusion_num_elites=4",
    "diffusion_num_pi_trajs=2",
]
LOSSES = ("consistency_loss", "reward_loss", "value_loss", "energy_loss", "total_loss")


@pytest.fixture(scope="module")
def setup(random_params):
    cfg = load_config(RGB, backend="jax")
    rng = np.random.default_rng(0)
    params = random_params(cfg, rng)
    H, B = cfg.horizon, cfg.batch_size
    batch = Batch(
        obs=rng.integers(0, 256, (H + 1, B, *cfg.obs_shape), dtype=np.uint8),
        action=rng.uniform(-1, 1, (H, B, cfg.action_dim)).astype(np.float32),
        reward=rng.standard_normal((H, B, 1)).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
        task=None,
    )
    return cfg, params, batch, draw_numpy("update", cfg, rng)


def test_encode_matches_oracle(setup):
    cfg, params, batch, _ = setup
    wm = WorldModel(cfg)
    import_params(wm, params)
    z = np.asarray(wm.encode(jnp.asarray(batch.obs[:2]), None))
    assert z.shape == (2, cfg.batch_size, 32) and cfg.num_channels == 2
    np.testing.assert_allclose(z, ref_model.encode(params, cfg, batch.obs[:2]), atol=1e-5)


def test_random_shift_matches_oracle(setup):
    _, _, batch, noise = setup
    got = jax.jit(random_shift)(jnp.asarray(batch.obs), jnp.asarray(noise.obs_shift))
    assert got.dtype == jnp.uint8
    want = ref_augment.random_shift(batch.obs, noise.obs_shift)
    np.testing.assert_array_equal(np.asarray(got), want)
    assert not np.array_equal(want, batch.obs)


def test_native_draw_has_shift_offsets():
    cfg = load_config(RGB, backend="jax")
    shift = np.asarray(draw("update", cfg, Sampler(jax.random.key(0))).obs_shift)
    assert shift.shape == (cfg.horizon + 1, cfg.batch_size, 2) and shift.dtype == np.int32
    assert shift.min() >= 0 and shift.max() <= 6 and len(np.unique(shift)) > 1
    state_cfg = load_config(["batch_size=4"], backend="jax")
    assert draw("update", state_cfg, Sampler(jax.random.key(0))).obs_shift is None


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


@pytest.mark.slow
def test_native_update_and_act(setup):
    """Noise drawn inside the jitted update (one compile each for update and act)."""
    cfg, params, batch, _ = setup
    agent = Agent(cfg)
    agent.import_params(params)
    metrics = agent.update(batch)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    action = agent.act(batch.obs[0, 0], t0=True, eval_mode=False)
    assert action.shape == (cfg.action_dim,) and np.all(np.abs(action) <= 1.0)
