"""Loss values of one update on a fixed tiny batch against the numpy oracle
(mbdpo_core.reference.losses), for every variant of the world-model loss."""

import jax.numpy as jnp
import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.metrics import LOSS_TERMS
from mbdpo_core.noise import draw_numpy
from mbdpo_core.reference import losses as ref
from mbdpo_jax import WorldModel
from mbdpo_jax.losses import device_batch, policy_loss, world_model_loss
from mbdpo_jax.noise import to_device
from mbdpo_jax.params_io import import_params

TINY = [
    "preset=cpu",
    "mlp_dim=32",
    "latent_dim=16",
    "enc_dim=32",
    "num_q=3",
    "batch_size=6",
    "horizon=3",
    "diffusion_num_samples_mf=16",
    "diffusion_steps=5",
]
VARIANTS = {
    "single": [],
    "episodic": ["episodic=true"],
    "multitask": ["task=mt30", "task_dim=8"],
    "published": ["energy_pairing=published", "task=mt30", "task_dim=8"],
    "score": ["use_score_network=true"],
}
LOSSES = (*LOSS_TERMS, "total_loss", "energy_mean", "energy_std")


def random_batch(cfg, rng):
    H, B, A = cfg.horizon, cfg.batch_size, cfg.action_dim
    return Batch(
        obs=rng.standard_normal((H + 1, B, cfg.obs_shape[0])).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        reward=(rng.standard_normal((H, B, 1)) * 3).astype(np.float32),
        terminated=(rng.random((H, B, 1)) < 0.3).astype(np.float32)
        if cfg.episodic
        else np.zeros((H, B, 1), np.float32),
        task=rng.integers(0, cfg.n_tasks, B) if cfg.multitask else None,
    )


def make_model(cfg, params):
    model = WorldModel(cfg)
    import_params(model, params)
    return model


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_world_model_and_policy_losses_match_oracle(variant, random_params):
    cfg = load_config([*TINY, *VARIANTS[variant]])
    rng = np.random.default_rng(3)
    params = random_params(cfg)
    batch = random_batch(cfg, rng)
    noise = draw_numpy("update", cfg, rng)
    stats = (0.2, 1.5)
    expected = ref.world_model_losses(params, cfg, batch, noise, stats)
    wm = make_model(cfg, params)
    jstats = (jnp.float32(stats[0]), jnp.float32(stats[1]))
    jbatch = device_batch(batch, cfg, None)
    total, aux = world_model_loss(wm, jbatch, to_device(noise, None), jstats)
    np.testing.assert_allclose(float(total), aux["total_loss"])
    got = {k: aux[k] for k in LOSSES[:7]}
    got["energy_mean"], got["energy_std"] = aux["energy_stats"]
    for key in LOSSES:
        np.testing.assert_allclose(
            float(got[key]), expected[key], rtol=1e-4, atol=1e-5, err_msg=key
        )
    np.testing.assert_allclose(aux["zs"], expected["zs"], atol=1e-5)
    np.testing.assert_allclose(aux["td"], expected["td"], rtol=1e-4, atol=1e-4)
    if variant != "score":
        assert float(aux["score_loss"]) == 0.0

    task = None if batch.task is None else jnp.asarray(batch.task)
    loss, info = policy_loss(wm, aux["zs"], task, to_device(noise, None), jnp.float32(1.7))
    ref_loss, ref_scale, ref_info = ref.policy_loss(
        params, cfg, expected["zs"], noise, 1.7, batch.task
    )
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(info["pi_scale"]), ref_scale, rtol=1e-5)
    for key in ("pi_entropy", "pi_scaled_entropy"):
        np.testing.assert_allclose(float(info[key]), ref_info[key], rtol=1e-4, atol=1e-5)


def test_published_pairing_differs_from_aligned(random_params):
    """The switch must change the positives (guards against a no-op option)."""
    base = load_config(TINY)
    pub = load_config([*TINY, "energy_pairing=published"])
    rng = np.random.default_rng(4)
    params = random_params(base)
    batch = random_batch(base, rng)
    noise = to_device(draw_numpy("update", base, rng), None)
    stats = (jnp.float32(0.0), jnp.float32(1.0))
    losses = [
        float(
            world_model_loss(make_model(c, params), device_batch(batch, c, None), noise, stats)[1][
                "energy_loss"
            ]
        )
        for c in (base, pub)
    ]
    assert abs(losses[0] - losses[1]) > 1e-6
