"""Pixel observations in the JAX backend: conv encoder and random shift vs the numpy oracle,
one jitted update on an rgb batch vs the oracle's loss values, native shift draws, the
published channel-first SimNorm grouping, conv init, and the shift at acting time."""

import dataclasses

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
from mbdpo_core.reference import planning as ref_planning
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


def published_latent_by_hand(params, obs):
    """The published encoder's output built by hand: the last conv map [N, 4, 4, C] from the
    oracle's conv2d, flattened channel-first by explicit index arithmetic (feature f = channel
    f // 16, row (f // 4) % 4, column f % 4), softmax over each run of 8 consecutive features."""
    x = np.transpose(obs.astype(np.float64) / 255.0 - 0.5, (0, 2, 3, 1))
    for i, stride in enumerate(ref_augment.CONV_STRIDES):
        w, b = params[f"encoder.{i}.weight"], params[f"encoder.{i}.bias"]
        x = ref_augment.conv2d(x, w, b, stride)
        x = np.maximum(x, 0.0) if i < 3 else x
    n, h, w, c = x.shape
    f = np.arange(c * h * w)
    e = np.exp(x[:, (f // w) % h, f % w, f // (h * w)].reshape(n, -1, 8))
    return (e / e.sum(-1, keepdims=True)).reshape(n, -1)


def test_simnorm_groups_are_channel_first(setup):
    cfg, params, batch, _ = setup
    wm = WorldModel(cfg)
    import_params(wm, params)
    obs = batch.obs[0]
    z = np.asarray(wm.encode(jnp.asarray(obs), None))
    np.testing.assert_allclose(z, published_latent_by_hand(params, obs), atol=1e-6)
    # a last conv layer that outputs its bias b_c everywhere: each group is one channel, uniform
    flat = {**params, "encoder.3.weight": np.zeros_like(params["encoder.3.weight"])}
    flat["encoder.3.bias"] = np.array([0.0, 3.0], np.float32)
    import_params(wm, flat)
    np.testing.assert_allclose(np.asarray(wm.encode(jnp.asarray(obs), None)), 1 / 8, atol=1e-7)


def test_fresh_conv_layers_have_pytorch_default_init():
    """A fresh agent's conv weights and biases lie in U(-b, b), b = 1 / sqrt(in k k), with the
    uniform law's std b / sqrt(3) (layer 0 has 882 weights at this width)."""
    cfg = load_config(RGB, backend="jax")
    params = Agent(cfg).export_params()
    for i, (k, c_in) in enumerate([(7, 9), (5, 2), (3, 2), (3, 2)]):
        bound = 1 / np.sqrt(c_in * k * k)
        w, b = params[f"encoder.{i}.weight"], params[f"encoder.{i}.bias"]
        assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
        assert np.abs(w).max() > 0.9 * bound and np.abs(b).max() > 0
    assert abs(params["encoder.0.weight"].std() * np.sqrt(3) * 21 - 1) < 0.1


@pytest.mark.parametrize("eval_mode", [True, False])
def test_act_encodes_the_shifted_observation(setup, eval_mode):
    """obs_shift=always: act shifts its observation by the plan bundle's obs_shift, in
    evaluation too, and chooses the oracle's action; obs_shift=update leaves it as it is."""
    cfg, params, batch, _ = setup
    # a sharper encoder (x3), so that the shift moves the action well beyond float32 rounding
    params = {k: v * 3 if k.startswith("encoder.") else v for k, v in params.items()}
    obs, H, A = batch.obs[1, 2], cfg.horizon, cfg.action_dim
    noise = draw_numpy("plan", cfg, np.random.default_rng(12))
    noise = dataclasses.replace(noise, obs_shift=np.array([0, 6], np.int32))
    centred = dataclasses.replace(noise, obs_shift=np.array([3, 3], np.int32))

    def act(cfg_, obs_, noise_):
        agent = Agent(cfg_)
        agent.import_params(params)
        return agent.plan_with_noise(obs_, True, eval_mode, None, noise_)

    shifted = act(cfg, obs, noise)
    z = ref_model.encode(params, cfg, ref_augment.random_shift(obs, noise.obs_shift))
    want, _ = ref_planning.diffusion_plan(
        params, cfg, z, np.zeros((H, A)), True, eval_mode, None, noise
    )
    np.testing.assert_allclose(shifted, want, atol=2e-5)
    np.testing.assert_array_equal(shifted, act(cfg, ref_augment.random_shift(obs, [0, 6]), centred))
    unshifted = act(cfg, obs, centred)
    assert np.abs(shifted - unshifted).max() > 1e-3  # the shift reaches the action
    update_only = dataclasses.replace(cfg, obs_shift="update")
    np.testing.assert_array_equal(act(update_only, obs, noise), unshifted)
    with pytest.raises(ValueError, match="obs_shift"):
        act(cfg, obs, dataclasses.replace(noise, obs_shift=None))


def test_native_act_draws_a_shift_and_is_reproducible(setup):
    cfg, _, batch, _ = setup
    assert draw("plan", cfg, Sampler(jax.random.key(0))).obs_shift.shape == (2,)
    actions = [Agent(cfg).act(batch.obs[0, 0], True, True) for _ in range(2)]
    np.testing.assert_array_equal(actions[0], actions[1])
