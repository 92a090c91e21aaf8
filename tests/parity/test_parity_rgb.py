"""Cross-backend parity of the pixel path (obs=rgb): the conv encoder, the loss terms and
gradients of one update, and the parameters and Adam moments after it (<= 1e-4), from the same
canonical parameters, uint8 batch and numpy UpdateNoise (including the random-shift offsets)."""

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
from mbdpo_core.reference import losses as ref

RGB = [
    "task=cartpole-swingup",
    "obs=rgb",
    "preset=cpu",
    "latent_dim=32",
    "mlp_dim=32",
    "batch_size=4",
]
TOL = 1e-4
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
