"""Forward values of one update (mbdpo_core.reference.losses), hand-derived at initialisation."""

import dataclasses
import math

import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.config import load_config
from mbdpo_core.metrics import LOSS_TERMS
from mbdpo_core.noise import draw_numpy
from mbdpo_core.params import init_params
from mbdpo_core.reference import model, noise_schedule, policy_loss, polyak, world_model_losses
from mbdpo_core.reference.losses import energy_candidates
from mbdpo_core.reference.math import gaussian_logprob

TINY = [
    "preset=cpu",
    "task=cartpole-balance",
    "mlp_dim=32",
    "latent_dim=16",
    "enc_dim=32",
    "num_q=2",
    "batch_size=8",
    "diffusion_num_samples_mf=16",
]


def tiny(*extra):
    return load_config([*TINY, *extra])


def make_batch(cfg, rng, task=None):
    H, B = cfg.horizon, cfg.batch_size
    return Batch(
        obs=rng.standard_normal((H + 1, B, cfg.obs_shape[0])).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, cfg.action_dim)).astype(np.float32),
        reward=rng.uniform(0, 1, (H, B, 1)).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
        task=task,
    )


@pytest.fixture(scope="module")
def at_init():
    cfg = tiny()
    rng = np.random.default_rng(0)
    params = init_params(cfg, rng)
    batch = make_batch(cfg, rng)
    noise = draw_numpy("update", cfg, rng)
    return cfg, params, batch, noise, world_model_losses(params, cfg, batch, noise, (0.0, 1.0))


def test_losses_finite_and_shapes(at_init):
    cfg, _, _, _, out = at_init
    for key in (*LOSS_TERMS, "total_loss", "energy_mean", "energy_std"):
        assert isinstance(out[key], float) and math.isfinite(out[key]), key
    assert out["zs"].shape == (cfg.horizon + 1, cfg.batch_size, cfg.latent_dim)
    assert out["td"].shape == (cfg.horizon, cfg.batch_size, 1)


def test_hand_values_at_init(at_init):
    cfg, params, batch, _, out = at_init
    # F's last layer is zero -> every F logit is 0 -> BCE(0, 1) = BCE(0, 0) = ln 2.
    assert out["energy_loss"] == pytest.approx(math.log(2), abs=1e-12)
    assert out["energy_loss"] == pytest.approx(0.6931, abs=1e-4)
    # Stats over all-zero logits: mean 0, std 0 -> sigma = 0.99 x 1 + 0.01 x 1e-6.
    assert out["energy_mean"] == pytest.approx(0.0, abs=1e-15)
    assert out["energy_std"] == pytest.approx(0.99 + 1e-8, rel=1e-12)
    # Reward and Q logits are all 0 -> every soft CE is ln 101; sum_t rho^t / H = 1.75 / 3.
    assert out["reward_loss"] == pytest.approx(math.log(101) * 1.75 / 3, rel=1e-12)
    assert out["value_loss"] == pytest.approx(math.log(101) * 1.75 / 3, rel=1e-12)
    # Q at init decodes to 0 -> td = reward exactly.
    np.testing.assert_allclose(out["td"], batch.reward, rtol=1e-12)
    # Consistency by hand from the rolled-out latents and the encoded next observations.
    next_z = model.encode(params, cfg, batch.obs[1:])
    err = ((out["zs"][1:] - next_z) ** 2).mean(axis=(1, 2))
    assert out["consistency_loss"] == pytest.approx(
        (err[0] + 0.5 * err[1] + 0.25 * err[2]) / 3, rel=1e-12
    )
    assert out["termination_loss"] == 0.0 and out["score_loss"] == 0.0
    total = 20 * out["consistency_loss"] + 0.1 * (out["reward_loss"] + out["value_loss"])
    assert out["total_loss"] == pytest.approx(total + math.log(2), rel=1e-12)


def test_td_target_uses_target_min_and_discount():
    cfg = tiny()
    rng = np.random.default_rng(1)
    params = init_params(cfg, rng)
    params["target_q.2.bias"] = np.zeros((2, cfg.num_bins))
    params["target_q.2.bias"][0, 60] = 5.0  # member 0 decodes higher than member 1 (= 0)
    batch = dataclasses.replace(make_batch(cfg, rng), terminated=np.ones((3, 8, 1), np.float32))
    noise = draw_numpy("update", cfg, rng)
    out = world_model_losses(params, cfg, batch, noise)
    # Terminated everywhere: td = reward regardless of the bootstrap.
    np.testing.assert_allclose(out["td"], batch.reward, rtol=1e-12)
    batch = make_batch(cfg, np.random.default_rng(2))
    out = world_model_losses(params, cfg, batch, noise)
    # min over members {0, 1}: member 1 decodes to 0 -> td = reward.
    np.testing.assert_allclose(out["td"], batch.reward, rtol=1e-12)
    params["target_q.2.bias"][1, 60] = 5.0  # now both decode to the same positive q
    out = world_model_losses(params, cfg, batch, noise)
    q = model.q_pair_values(params, cfg, np.zeros(16), np.zeros(1), [0, 1], target=True)
    np.testing.assert_allclose(out["td"], batch.reward + 0.99 * q[0, 0], rtol=1e-9)


def test_energy_hard_negative_and_pairing():
    cfg = tiny()
    rng = np.random.default_rng(3)
    params = init_params(cfg, rng)
    params["energy.2.weight"] = rng.standard_normal(params["energy.2.weight"].shape)
    batch = make_batch(cfg, rng)
    noise = draw_numpy("update", cfg, rng)
    out = world_model_losses(params, cfg, batch, noise)
    zf = out["zs"][:3]
    neg = energy_candidates(params, cfg, zf, None, noise)
    a_pi, _ = model.pi(params, cfg, zf, eps=noise.energy_pi_eps)
    cands = [a_pi, np.clip(a_pi + 0.5 * noise.energy_gauss, -1, 1), noise.energy_uniform]
    logits = np.stack([model.F(params, cfg, zf, c) for c in cands])
    np.testing.assert_allclose(model.F(params, cfg, zf, neg), logits.max(axis=0), rtol=1e-12)

    def bce_pos_neg(a_pos):
        pos, negl = model.F(params, cfg, zf, a_pos), logits.max(axis=0)
        return 0.5 * (np.mean(np.logaddexp(0, -pos)) + np.mean(np.logaddexp(0, negl)))

    assert out["energy_loss"] == pytest.approx(bce_pos_neg(batch.action), rel=1e-12)
    published = dataclasses.replace(cfg, energy_pairing="published")
    out_p = world_model_losses(params, published, batch, noise)
    mixed = np.transpose(batch.action, (1, 0, 2)).reshape(batch.action.shape)
    assert out_p["energy_loss"] == pytest.approx(bce_pos_neg(mixed), rel=1e-12)
    assert out_p["energy_loss"] != pytest.approx(out["energy_loss"], rel=1e-6)


def test_score_loss_hand_target_at_init():
    cfg = tiny("use_score_network=true")
    rng = np.random.default_rng(4)
    params = init_params(cfg, rng)
    batch = make_batch(cfg, rng)
    noise = draw_numpy("update", cfg, rng)
    out = world_model_losses(params, cfg, batch, noise)
    # At init V is the same for every sample -> std 0 -> uniform weights: a_bar = mean(a0).
    s = noise.score
    _, _, ab = noise_schedule(cfg.diffusion_steps, cfg.diffusion_beta0, cfg.diffusion_betaT)
    abt = ab[int(s.tau)]
    a0 = np.clip(s.x_tau / np.sqrt(abt) + np.sqrt((1 - abt) / abt) * s.sample_eps, -1, 1)
    target = (-s.x_tau + np.sqrt(abt) * a0.mean(axis=0)) / (1 - abt + 1e-8)
    pred = model.score(params, cfg, out["zs"][0, 0], s.x_tau, int(s.tau))
    assert out["score_loss"] == pytest.approx(np.mean((pred - target) ** 2), rel=1e-9)
    assert out["score_loss"] > 0
    assert out["total_loss"] > out["score_loss"]


def test_episodic_termination_loss():
    cfg = tiny("episodic=true")
    rng = np.random.default_rng(5)
    params = init_params(cfg, rng)
    params["termination.2.bias"] = np.array([0.0])
    params["termination.2.weight"] = np.zeros_like(params["termination.2.weight"])
    batch = make_batch(cfg, rng)
    out = world_model_losses(params, cfg, batch, draw_numpy("update", cfg, rng))
    # Logit 0 everywhere -> BCE = ln 2 whatever the labels.
    assert out["termination_loss"] == pytest.approx(math.log(2), rel=1e-12)


def test_policy_loss_at_init(at_init):
    cfg, params, _, noise, out = at_init
    zs = out["zs"]
    loss, scale, info = policy_loss(params, cfg, zs, noise, 1.0)
    # Q decodes to 0 -> percentile range 0 -> target max(0, 1) = 1 -> S stays 1.
    assert scale == pytest.approx(1.0) and info["pi_scale"] == pytest.approx(1.0)
    _, pinfo = model.pi(params, cfg, zs, eps=noise.pi_eps)
    per_step = (-1e-4 * pinfo["scaled_entropy"]).mean(axis=(1, 2))
    expected = np.mean(0.5 ** np.arange(cfg.horizon + 1) * per_step)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert info["pi_entropy"] == pytest.approx(float(pinfo["entropy"].mean()))
    # scaled entropy is about -lp_gauss x n (n = 1 here).
    lp_gauss = gaussian_logprob(noise.pi_eps, pinfo["log_std"])
    assert info["pi_scaled_entropy"] == pytest.approx(float(-lp_gauss.mean()), rel=1e-3)
    # From S = 3 the scale decays towards 1: 3 + 0.01 (1 - 3) = 2.98.
    assert policy_loss(params, cfg, zs, noise, 3.0)[1] == pytest.approx(2.98)


def test_polyak():
    params = {
        "q.0.bias": np.array([1.0, 2.0]),
        "target_q.0.bias": np.array([0.0, 4.0]),
        "pi.0.bias": np.array([7.0]),
    }
    out = polyak(params, 0.01)
    np.testing.assert_allclose(out["target_q.0.bias"], [0.01, 3.98])
    np.testing.assert_array_equal(out["q.0.bias"], params["q.0.bias"])
    np.testing.assert_array_equal(params["target_q.0.bias"], [0.0, 4.0])  # input untouched


def test_multitask_losses_finite():
    cfg = dataclasses.replace(
        tiny(),
        multitask=True,
        tasks=("cartpole-balance", "cartpole-swingup"),
        obs_dims=(5, 5),
        action_dim=2,
        action_dims=(2, 1),
        episode_lengths=(500, 100),
        discounts=(0.99, 0.95),
        task_dim=8,
        use_score_network=True,
    )
    rng = np.random.default_rng(6)
    params = init_params(cfg, rng)
    task = np.array([0, 1] * 4)
    batch = make_batch(cfg, rng, task)
    noise = draw_numpy("update", cfg, rng)
    for pairing in ("aligned", "published"):
        out = world_model_losses(
            params, dataclasses.replace(cfg, energy_pairing=pairing), batch, noise
        )
        assert all(math.isfinite(out[k]) for k in ("total_loss", "score_loss", "energy_loss"))
    assert math.isfinite(policy_loss(params, cfg, out["zs"], noise, 1.0, task)[0])
    # Per-element discount: every target member decodes to q > 0 -> td = r + gamma[task] q.
    params["target_q.2.bias"] = np.zeros_like(params["target_q.2.bias"])
    params["target_q.2.bias"][:, 60] = 5.0
    out = world_model_losses(params, cfg, batch, noise)
    q = model.q_pair_values(params, cfg, np.zeros(16), np.zeros(2), [0, 1], 0, target=True)[0]
    gamma = np.array([0.99, 0.95] * 4)[:, None]
    np.testing.assert_allclose(out["td"], batch.reward + gamma * q, rtol=1e-9)
