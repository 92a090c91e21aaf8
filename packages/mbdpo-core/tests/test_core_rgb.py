"""The numpy oracle's pixel path: conv encoder shapes, random shift, the rgb config rule."""

import dataclasses

import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.errors import ConfigError
from mbdpo_core.noise import draw_numpy
from mbdpo_core.params import init_params, param_shapes
from mbdpo_core.reference import losses, model
from mbdpo_core.reference.augment import CONV_STRIDES, acting_obs, conv2d, random_shift

RGB = ["task=cartpole-swingup", "obs=rgb", "preset=cpu", "latent_dim=32", "mlp_dim=32"]


def rgb_cfg(*extra):
    return load_config([*RGB, "batch_size=4", *extra])


def test_config_sets_num_channels_from_latent_dim():
    cfg = rgb_cfg()
    assert cfg.num_channels == 2 and cfg.obs_shape == (9, 64, 64)
    assert any("num_channels" in note for note in cfg.notes)
    assert load_config([*RGB, "num_channels=2"]).num_channels == 2
    # state observations leave num_channels alone
    assert load_config(["latent_dim=32"]).num_channels == 32


def test_config_rejects_mismatched_channels():
    with pytest.raises(ConfigError, match=r"latent_dim=32.*num_channels=4"):
        load_config([*RGB, "num_channels=4"])
    with pytest.raises(ConfigError, match=r"latent_dim=40.*num_channels=2"):
        load_config([*RGB[:3], "latent_dim=40"])


def test_rgb_param_shapes():
    cfg = rgb_cfg()
    shapes = param_shapes(cfg)
    assert shapes["encoder.0.weight"] == (7, 7, 9, 2)
    assert shapes["encoder.1.weight"] == (5, 5, 2, 2)
    assert shapes["encoder.2.weight"] == (3, 3, 2, 2)
    assert shapes["encoder.3.weight"] == (3, 3, 2, 2)
    assert all(shapes[f"encoder.{i}.bias"] == (2,) for i in range(4))
    assert "encoder.4.weight" not in shapes and "encoder.0.ln.weight" not in shapes
    assert shapes["dynamics.0.weight"][0] == 32 + cfg.action_dim
    params = init_params(cfg, np.random.default_rng(0))
    assert {k: v.shape for k, v in params.items()} == shapes


def test_conv_stack_spatial_sizes():
    cfg = rgb_cfg()
    params = init_params(cfg, np.random.default_rng(0))
    x = np.random.default_rng(1).random((2, 64, 64, 9))
    sizes = []
    for i, stride in enumerate(CONV_STRIDES):
        x = conv2d(x, params[f"encoder.{i}.weight"], params[f"encoder.{i}.bias"], stride)
        sizes.append(x.shape[1:3])
    assert sizes == [(29, 29), (13, 13), (6, 6), (4, 4)]
    obs = np.random.default_rng(2).integers(0, 256, (3, 2, 9, 64, 64), dtype=np.uint8)
    z = model.encode(params, cfg, obs)
    assert z.shape == (3, 2, 32)
    np.testing.assert_allclose(z.reshape(3, 2, 4, 8).sum(-1), 1.0, atol=1e-12)


def test_conv2d_matches_direct_sum():
    rng = np.random.default_rng(3)
    x, w, b = rng.random((1, 9, 9, 2)), rng.standard_normal((3, 3, 2, 4)), rng.random(4)
    y = conv2d(x, w, b, 2)
    assert y.shape == (1, 4, 4, 4)
    i, j = 2, 3  # output pixel (2, 3) reads rows 4..6, cols 6..8
    expected = np.einsum("hwc,hwco->o", x[0, 4:7, 6:9], w) + b
    np.testing.assert_allclose(y[0, i, j], expected, rtol=1e-12)


def test_random_shift_centre_offset_is_identity():
    obs = np.random.default_rng(4).integers(0, 256, (3, 2, 9, 64, 64), dtype=np.uint8)
    out = random_shift(obs, np.full((3, 2, 2), 3))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, obs)


def test_random_shift_moves_pixels():
    obs = np.arange(2 * 64 * 64, dtype=np.int64).reshape(1, 2, 64, 64)
    out = random_shift(obs, np.array([[5, 1]]))  # dx = +2 (width), dy = -2 (height)
    # interior: out[i, j] = obs[i - 2, j + 2]
    np.testing.assert_array_equal(out[0, :, 2:, :62], obs[0, :, :62, 2:])
    # replicate padding: top rows repeat row 0, right columns repeat column 63
    np.testing.assert_array_equal(out[0, :, 0, :62], obs[0, :, 0, 2:])
    np.testing.assert_array_equal(out[0, :, 1, :62], obs[0, :, 0, 2:])
    np.testing.assert_array_equal(out[0, :, 5, 62], obs[0, :, 3, 63])
    np.testing.assert_array_equal(out[0, :, 5, 63], obs[0, :, 3, 63])
    # each image gets its own offset
    two = np.stack([obs[0], obs[0]])
    shifted = random_shift(two, np.array([[3, 3], [0, 6]]))
    np.testing.assert_array_equal(shifted[0], obs[0])
    np.testing.assert_array_equal(shifted[1, :, :61, 3:], obs[0, :, 3:, :61])


def test_update_noise_and_losses_use_the_shift():
    cfg = rgb_cfg()
    rng = np.random.default_rng(5)
    noise = draw_numpy("update", cfg, rng)
    H, B = cfg.horizon, cfg.batch_size
    assert noise.obs_shift.shape == (H + 1, B, 2) and noise.obs_shift.dtype == np.int32
    assert noise.obs_shift.min() >= 0 and noise.obs_shift.max() <= 6
    assert draw_numpy("update", load_config(["batch_size=4"]), rng).obs_shift is None
    params = init_params(cfg, rng)
    params = {
        k: v + rng.standard_normal(v.shape).astype(np.float32) * 0.1 for k, v in params.items()
    }
    batch = Batch(
        obs=rng.integers(0, 256, (H + 1, B, 9, 64, 64), dtype=np.uint8),
        action=rng.uniform(-1, 1, (H, B, cfg.action_dim)).astype(np.float32),
        reward=rng.standard_normal((H, B, 1)).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
        task=None,
    )
    out = losses.world_model_losses(params, cfg, batch, noise)
    assert np.isfinite(out["total_loss"])
    np.testing.assert_allclose(
        out["zs"][0], model.encode(params, cfg, random_shift(batch.obs[0], noise.obs_shift[0]))
    )
    again = losses.world_model_losses(
        params, cfg, batch, draw_numpy("update", cfg, np.random.default_rng(5))
    )
    assert again["consistency_loss"] == out["consistency_loss"]  # same noise, same values
    unshifted = dataclasses.replace(noise, obs_shift=np.full_like(noise.obs_shift, 3))
    plain = losses.world_model_losses(params, cfg, batch, unshifted)
    np.testing.assert_allclose(plain["zs"][0], model.encode(params, cfg, batch.obs[0]))
    assert plain["consistency_loss"] != out["consistency_loss"]
    with pytest.raises(ValueError, match="obs_shift"):
        losses.world_model_losses(params, cfg, batch, dataclasses.replace(noise, obs_shift=None))


def last_conv_map(params, obs):
    """The last conv layer's output [N, 4, 4, C], channel-last and before any flatten, from
    conv2d (pinned by test_conv2d_matches_direct_sum). obs [N, 9, 64, 64]."""
    x = np.transpose(obs.astype(np.float64) / 255.0 - 0.5, (0, 2, 3, 1))
    for i, stride in enumerate(CONV_STRIDES):
        x = conv2d(x, params[f"encoder.{i}.weight"], params[f"encoder.{i}.bias"], stride)
        x = np.maximum(x, 0.0) if i < len(CONV_STRIDES) - 1 else x
    return x


def published_simnorm_by_hand(y, group=8):
    """The published layout by explicit index arithmetic: feature f of the flattened map is
    channel f // (h w), row (f // w) % h, column f % w (a channel-first flatten); SimNorm is a
    softmax over each run of `group` consecutive features. y [N, h, w, C] -> [N, C h w]."""
    n, h, w, c = y.shape
    f = np.arange(c * h * w)
    flat = y[:, (f // w) % h, f % w, f // (h * w)]
    e = np.exp(flat.reshape(n, -1, group))
    return (e / e.sum(-1, keepdims=True)).reshape(n, -1)


def test_encoder_flattens_channel_first_before_simnorm():
    cfg = rgb_cfg()
    rng = np.random.default_rng(6)
    params = {k: v + rng.normal(0, 0.1, v.shape) for k, v in init_params(cfg, rng).items()}
    obs = rng.integers(0, 256, (3, 9, 64, 64), dtype=np.uint8)
    want = published_simnorm_by_hand(last_conv_map(params, obs))
    np.testing.assert_allclose(model.encode(params, cfg, obs), want, rtol=1e-12, atol=1e-14)
    # known values: a last layer with zero weights outputs its bias b_c at every position, so
    # each group (one channel, 8 positions) is uniform; a channel-last group would mix b_0, b_1
    params["encoder.3.weight"] = np.zeros_like(params["encoder.3.weight"])
    params["encoder.3.bias"] = np.array([0.0, 3.0])
    np.testing.assert_allclose(model.encode(params, cfg, obs), 1 / 8, rtol=1e-12)


def test_conv_init_is_pytorch_default():
    """Weight and bias of conv layer i ~ U(-b, b), b = 1 / sqrt(in k k) (PyTorch's Conv2d
    default), at the published width (32 channels); Linear layers keep std 0.02."""
    cfg = load_config([*RGB[:3], "latent_dim=512", "mlp_dim=32"])
    assert cfg.num_channels == 32
    params = init_params(cfg, np.random.default_rng(7))
    for i, (k, c_in) in enumerate([(7, 9), (5, 32), (3, 32), (3, 32)]):
        bound = 1.0 / np.sqrt(c_in * k * k)
        w, b = params[f"encoder.{i}.weight"], params[f"encoder.{i}.bias"]
        assert w.shape == (k, k, c_in, 32)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
        assert abs(w.std() / (bound / np.sqrt(3)) - 1) < 0.05  # U(-b, b): std b / sqrt(3)
        assert abs(w.mean()) < 0.05 * bound
        assert np.abs(b).max() <= bound and np.abs(b).max() > 0.5 * bound
    assert abs(params["dynamics.0.weight"].std() - 0.02) < 0.002


def test_acting_noise_holds_one_shift_when_acting_shifts():
    rng = np.random.default_rng(8)
    for planner in ("diffusion", "mppi", "policy"):
        noise = draw_numpy("plan", rgb_cfg(f"planner={planner}"), rng)
        assert noise.obs_shift.shape == (2,) and noise.obs_shift.dtype == np.int32
        assert (
            draw_numpy("plan", rgb_cfg(f"planner={planner}", "obs_shift=update"), rng).obs_shift
            is None
        )
        assert draw_numpy("plan", load_config([f"planner={planner}"]), rng).obs_shift is None
    shifts = np.stack([draw_numpy("policy", rgb_cfg(), rng).obs_shift for _ in range(400)])
    assert shifts.min() == 0 and shifts.max() == 6  # all 7 offsets of each axis occur
    assert len(np.unique(shifts[:, 0])) == 7 and len(np.unique(shifts[:, 1])) == 7
    # obs_shift=update still shifts the update's batch
    assert draw_numpy("update", rgb_cfg("obs_shift=update"), rng).obs_shift.shape == (4, 4, 2)


def test_acting_obs_follows_obs_shift():
    obs = np.random.default_rng(9).integers(0, 256, (9, 64, 64), dtype=np.uint8)
    shift = np.array([0, 6])
    np.testing.assert_array_equal(acting_obs(rgb_cfg(), obs, shift), random_shift(obs, shift))
    assert acting_obs(rgb_cfg("obs_shift=update"), obs, shift) is obs
    state = np.ones(5, np.float32)
    assert acting_obs(load_config([]), state, None) is state
    with pytest.raises(ValueError, match="obs_shift"):
        acting_obs(rgb_cfg(), obs, None)


def test_obs_shift_key():
    assert rgb_cfg().obs_shift == "always"
    with pytest.raises(ConfigError, match=r"obs_shift='never'.*always, update"):
        rgb_cfg("obs_shift=never")
