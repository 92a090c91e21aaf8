"""Cross-backend parity of the pixel path (obs=rgb): the conv encoder, the loss terms and
gradients of one update, and the parameters and Adam moments after it (UPDATE_TOL, from the
error budget in parity_budget.py), from the same canonical parameters, uint8 batch and numpy
UpdateNoise (including the random-shift offsets); acting with the random shift (ACT_TOL) against
the oracle; a pixel checkpoint written by one backend acts alike in the other."""

import dataclasses

import jax.numpy as jnp
import mbdpo_jax
import mbdpo_torch
import numpy as np
import pytest
import torch
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.metrics import LOSS_TERMS
from mbdpo_core.noise import draw_numpy
from mbdpo_core.reference import augment as ref_augment
from mbdpo_core.reference import losses as ref
from mbdpo_core.reference import model as ref_model
from mbdpo_core.reference import planning as ref_planning
from parity_budget import ACT_TOL
from parity_budget import UPDATE_TOL as TOL

RGB = [
    "task=cartpole-swingup",
    "obs=rgb",
    "preset=cpu",
    "latent_dim=32",
    "mlp_dim=32",
    "batch_size=4",
]
LOSSES = (*LOSS_TERMS, "total_loss", "energy_mean", "energy_std")
"""The metrics the numpy oracle computes too."""


def max_diff(a, b):
    """Max abs difference per name (names must agree)."""
    assert set(a) == set(b), f"names differ: {sorted(set(a) ^ set(b))}"
    return {k: float(np.max(np.abs(np.asarray(a[k], np.float64) - b[k]), initial=0.0)) for k in a}


def assert_close(a, b, what):
    bad = {k: v for k, v in max_diff(a, b).items() if not v <= TOL}
    assert not bad, f"{what}: max abs differences above {TOL}: {bad}"


@pytest.fixture(scope="module")
def case(random_params):
    torch.set_num_threads(1)
    cfg = load_config(RGB)
    rng = np.random.default_rng(11)
    params = random_params(cfg, rng)
    H, B = cfg.horizon, cfg.batch_size
    batch = Batch(
        obs=rng.integers(0, 256, (H + 1, B, *cfg.obs_shape), dtype=np.uint8),
        action=rng.uniform(-1, 1, (H, B, cfg.action_dim)).astype(np.float32),
        reward=(3 * rng.standard_normal((H, B, 1))).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
        task=None,
    )
    noise = draw_numpy("update", cfg, rng)
    assert noise.obs_shift is not None and len(np.unique(noise.obs_shift)) > 1
    return cfg, params, batch, noise


def make_agents(cfg, params):
    out = {"torch": mbdpo_torch.Agent(cfg), "jax": mbdpo_jax.Agent(cfg)}
    for agent in out.values():
        agent.import_params(params)
    return out


def test_encoders_agree(case):
    cfg, params, batch, _ = case
    ag = make_agents(cfg, params)
    with torch.no_grad():
        zt = ag["torch"].model.encode(torch.as_tensor(batch.obs), None).numpy()
    zj = np.asarray(ag["jax"].model.encode(jnp.asarray(batch.obs), None))
    assert zt.shape == (cfg.horizon + 1, cfg.batch_size, 32)
    assert_close({"z": zt}, {"z": zj}, "encode")


def test_one_update_agrees(case):
    cfg, params, batch, noise = case
    ag = make_agents(cfg, params)
    grads = {k: a.grads_with_noise(batch, noise) for k, a in ag.items()}
    assert_close(grads["torch"], grads["jax"], "gradients")
    assert np.abs(grads["jax"]["encoder.0.weight"]).max() > 0
    metrics = {k: a.update_with_noise(batch, noise) for k, a in ag.items()}
    oracle = ref.world_model_losses(params, cfg, batch, noise)
    for backend in ("torch", "jax"):
        got = {k: metrics[backend][k] for k in LOSSES}
        assert_close(got, {k: oracle[k] for k in LOSSES}, f"{backend} losses vs oracle")
    assert_close(metrics["torch"], metrics["jax"], "metrics")
    (t_arrays, _), (j_arrays, _) = ag["torch"].state_dict(), ag["jax"].state_dict()
    assert_close(t_arrays, j_arrays, "state after one update")

    # the comparison sees the shift: JAX gradients without the shift must disagree
    centred = dataclasses.replace(noise, obs_shift=np.full_like(noise.obs_shift, 3))
    unshifted = make_agents(cfg, params)["jax"].grads_with_noise(batch, centred)
    with pytest.raises(AssertionError, match=r"encoder\.0\.weight"):
        assert_close(grads["torch"], unshifted, "gradients without the shift")


# ----- acting with the random shift, and pixel checkpoints across backends (issue 11) -------

ACT_RGB = ["task=cartpole-swingup", "obs=rgb", "latent_dim=32"]
"""Added to the tiny config: 2 conv channels, so a channel-first and a channel-last flatten
give different SimNorm groups."""


def sharp_params(random_params, cfg, rng):
    """Perturbed parameters with the encoder x3, so that a shift of the observation moves the
    action well beyond float32 rounding."""
    params = random_params(cfg, rng)
    return {k: v * 3 if k.startswith("encoder.") else v for k, v in params.items()}


@pytest.mark.parametrize("eval_mode", [True, False])
def test_acting_with_a_shift_agrees(tiny, random_params, eval_mode):
    """Oracle, torch and JAX act on the same uint8 observations and plan noise (a random shift
    of each observation, obs_shift=always) and choose the same actions, the warm start
    carried over three acts."""
    cfg = load_config([*tiny, *ACT_RGB])
    assert cfg.obs_shift == "always" and cfg.num_channels == 2
    rng = np.random.default_rng(21)
    params = sharp_params(random_params, cfg, rng)
    agents = make_agents(cfg, params)
    prev, moved = np.zeros((cfg.horizon, cfg.action_dim)), 0.0
    for i in range(3):
        obs = rng.integers(0, 256, cfg.obs_shape, dtype=np.uint8)
        noise = draw_numpy("plan", cfg, rng)
        assert noise.obs_shift.shape == (2,)
        z = ref_model.encode(params, cfg, ref_augment.random_shift(obs, noise.obs_shift))
        want, plan = ref_planning.diffusion_plan(
            params, cfg, z, prev, i == 0, eval_mode, None, noise
        )
        got = {k: a.plan_with_noise(obs, i == 0, eval_mode, None, noise) for k, a in agents.items()}
        for backend, action in got.items():
            np.testing.assert_allclose(action, want, atol=ACT_TOL, err_msg=backend)
            np.testing.assert_allclose(agents[backend].prev_plan, plan, atol=ACT_TOL)
        np.testing.assert_allclose(got["torch"], got["jax"], atol=ACT_TOL)
        z0 = ref_model.encode(params, cfg, obs)  # the same act without the shift
        plain, _ = ref_planning.diffusion_plan(
            params, cfg, z0, prev, i == 0, eval_mode, None, noise
        )
        moved, prev = max(moved, float(np.abs(plain - want).max())), plan
    assert moved > 100 * ACT_TOL  # the comparison sees the shift


def rgb_batch(cfg, rng):
    H, B = cfg.horizon, cfg.batch_size
    return Batch(
        obs=rng.integers(0, 256, (H + 1, B, *cfg.obs_shape), dtype=np.uint8),
        action=rng.uniform(-1, 1, (H, B, cfg.action_dim)).astype(np.float32),
        reward=(3 * rng.standard_normal((H, B, 1))).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
        task=None,
    )


@pytest.mark.parametrize(("source", "target"), [("torch", "jax"), ("jax", "torch")])
def test_pixel_checkpoint_crosses_backends(source, target, tmp_path, tiny, random_params):
    """Acceptance of issue 11: a pixel agent (obs=rgb) saves a checkpoint after an update and
    an act; the other backend loads it, holds the same state, and gives the same action for
    the same observation and noise (shift included), in evaluation and training."""
    cfg = load_config([*tiny, *ACT_RGB])
    rng = np.random.default_rng(23)
    backends = {"torch": mbdpo_torch.Agent, "jax": mbdpo_jax.Agent}
    writer = backends[source](cfg)
    writer.import_params(sharp_params(random_params, cfg, rng))
    batch = rgb_batch(cfg, rng)
    writer.update(batch)  # native noise: Adam moments, counters and statistics set
    writer.act(batch.obs[0, 0], True, False)  # a non-zero warm start
    writer.save(tmp_path / "ckpt")
    reader = backends[target](cfg)
    assert reader.load(tmp_path / "ckpt")["backend"] == source
    (w_arrays, w_meta), (r_arrays, r_meta) = writer.state_dict(), reader.state_dict()
    assert set(w_arrays) == set(r_arrays) and "params/encoder.0.weight" in r_arrays
    for name, value in w_arrays.items():
        np.testing.assert_array_equal(r_arrays[name], value, err_msg=name)
    for key in ("optim_step", "running_scale", "energy_stats"):
        assert r_meta[key] == w_meta[key], key
    control = backends[target](cfg)  # the same acts without the shift
    control.load(tmp_path / "ckpt")
    moved = 0.0
    for i in range(4):
        obs, noise = batch.obs[i, i], draw_numpy("plan", cfg, rng)
        eval_mode = i % 2 == 0
        want = writer.plan_with_noise(obs, False, eval_mode, None, noise)
        got = reader.plan_with_noise(obs, False, eval_mode, None, noise)
        np.testing.assert_allclose(got, want, atol=ACT_TOL, err_msg=f"act {i}")
        centred = dataclasses.replace(noise, obs_shift=np.full(2, 3, np.int32))
        plain = control.plan_with_noise(obs, False, eval_mode, None, centred)
        moved = max(moved, float(np.abs(plain - got).max()))
    assert moved > 100 * ACT_TOL  # the comparison sees the shift
