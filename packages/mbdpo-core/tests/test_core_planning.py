"""The numpy planners (mbdpo_core.reference.planning) on hand-built models."""

import dataclasses
from functools import partial

import numpy as np
import pytest
from mbdpo_core.config import load_config
from mbdpo_core.noise import ValueNoise, draw_numpy
from mbdpo_core.params import init_params
from mbdpo_core.reference import (
    diffusion_plan,
    model,
    mppi_plan,
    noise_schedule,
    policy_plan,
    value_estimate,
)
from mbdpo_core.reference.math import sigmoid, two_hot_inv

TINY = [
    "preset=cpu",
    "task=cartpole-balance",
    "mlp_dim=32",
    "latent_dim=16",
    "enc_dim=32",
    "num_q=2",
    "diffusion_num_samples=64",
    "diffusion_num_elites=8",
    "diffusion_num_pi_trajs=4",
    "num_samples=64",
    "num_elites=8",
    "num_pi_trajs=4",
]
A_STAR = 0.3


def tiny(*extra):
    return load_config([*TINY, *extra])


def peaked_reward_params(cfg, a_star, seed=0):
    """Random init, but the reward head is rewritten so that reward(z, a) peaks at a = a_star.

    Layer 0 maps a to pre-LN units [d, -d, 10, -10, 0, ...] with d = a - a_star; LayerNorm
    (mean 0, var (2 d^2 + 200) / M) keeps n = d / sigma nearly linear; LN weight keeps units 0
    and 1 only, so Mish gives [mish(n), mish(-n), 0...]. Layer 1 sums them into the even
    function e = mish(n) + mish(-n) >= 0 (0 only at d = 0), again next to +-10 constants.
    The last layer puts logit 2 - 50 mish(e') on bin 100 (centre +10) and 0 elsewhere, so the
    decoded reward is largest, about 0.81, at d = 0 (0.34 at a = 1, 0.0 at a = -1).
    """
    params = init_params(cfg, np.random.default_rng(seed))
    Z, M, K = cfg.latent_dim, cfg.mlp_dim, cfg.num_bins
    w0, b0, lnw0 = np.zeros((Z + 1, M)), np.zeros(M), np.zeros(M)
    w0[Z, 0], b0[0] = 1.0, -a_star
    w0[Z, 1], b0[1] = -1.0, a_star
    b0[2], b0[3], lnw0[:2] = 10.0, -10.0, 1.0
    w1, b1, lnw1 = np.zeros((M, M)), np.zeros(M), np.zeros(M)
    w1[:2, 0], w1[:2, 1] = 1.0, -1.0
    b1[2], b1[3], lnw1[0] = 10.0, -10.0, 1.0
    w2, b2 = np.zeros((M, K)), np.zeros(K)
    w2[0, K - 1], b2[K - 1] = -50.0, 2.0
    params.update(
        {
            "reward.0.weight": w0,
            "reward.0.bias": b0,
            "reward.0.ln.weight": lnw0,
            "reward.1.weight": w1,
            "reward.1.bias": b1,
            "reward.1.ln.weight": lnw1,
            "reward.2.weight": w2,
            "reward.2.bias": b2,
        }
    )
    return params


def randomised(cfg, seed):
    """Init params with non-zero reward/energy/Q last layers (so every term of V matters)."""
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    for name in ("reward.2.weight", "energy.2.weight", "q.2.weight"):
        params[name] = rng.standard_normal(params[name].shape) * 0.5
    return params


def test_synthetic_reward_peaks_at_a_star():
    cfg = tiny()
    params = peaked_reward_params(cfg, A_STAR)
    grid = np.linspace(-1, 1, 201)[:, None]
    r = two_hot_inv(model.reward(params, cfg, np.zeros((201, 16)), grid), cfg=cfg)[:, 0]
    assert grid[np.argmax(r), 0] == pytest.approx(A_STAR)
    assert r.max() - r.min() > 0.5


def test_value_estimate_hand_value_at_init():
    cfg = tiny()
    params = init_params(cfg, np.random.default_rng(0))
    z = model.encode(params, cfg, np.ones((5, 5)))
    actions = np.random.default_rng(1).uniform(-1, 1, (5, cfg.horizon, 1))
    noise = draw_numpy("value", cfg, np.random.default_rng(2), 5)
    # Reward, F and Q heads have zero last layers: r = 0, F = 0, Q = 0. With stats (1, 2):
    # f = (0 - 1) / 2 = -0.5, r~ = 0.01 x -0.5 = -0.005; gamma = 0.99 (500-step episodes):
    # V = -0.005 (1 + 0.99 + 0.9801) = -0.0148505.
    v = value_estimate(params, cfg, z, actions, None, noise, (1.0, 2.0))
    assert v.shape == (5, 1)
    np.testing.assert_allclose(v, -0.0148505, rtol=1e-12)
    # Clip: (0 - 100) / 1 = -100 -> -5; V = 0.01 x -5 x 2.9701 = -0.148505.
    v = value_estimate(params, cfg, z, actions, None, noise, (100.0, 1.0))
    np.testing.assert_allclose(v, -0.148505, rtol=1e-12)


def test_value_estimate_matches_manual_loop():
    cfg = tiny()
    params = randomised(cfg, 3)
    rng = np.random.default_rng(4)
    z0 = model.encode(params, cfg, rng.standard_normal((6, 5)))
    actions = rng.uniform(-1, 1, (6, cfg.horizon, 1))
    noise = ValueNoise(rng.standard_normal((6, 1)), np.array([1, 0]))
    mu, sigma = 0.2, 0.7
    G, z = np.zeros((6, 1)), z0
    for t in range(cfg.horizon):
        r = two_hot_inv(model.reward(params, cfg, z, actions[:, t]), cfg=cfg)
        f = np.clip((model.F(params, cfg, z, actions[:, t]) - mu) / sigma, -5, 5)
        G = G + 0.99**t * (r + 0.01 * f)
        z = model.next(params, cfg, z, actions[:, t])
    a_H, _ = model.pi(params, cfg, z, eps=noise.pi_eps)
    qs = model.Q(params, cfg, z, a_H)
    q = 0.5 * (two_hot_inv(qs[1], cfg=cfg) + two_hot_inv(qs[0], cfg=cfg))
    expected = G + 0.99**cfg.horizon * q
    v = value_estimate(params, cfg, z0, actions, None, noise, (mu, sigma))
    np.testing.assert_allclose(v, expected, rtol=1e-12)
    assert np.ptp(v) > 1e-3  # the candidates really differ


@pytest.mark.parametrize("bias", [100.0, -100.0])
def test_value_estimate_termination(bias):
    cfg = tiny("episodic=true")
    params = randomised(cfg, 5)
    params["termination.2.bias"] = np.array([bias])
    rng = np.random.default_rng(6)
    z0 = model.encode(params, cfg, rng.standard_normal((4, 5)))
    actions = rng.uniform(-1, 1, (4, cfg.horizon, 1))
    noise = draw_numpy("value", cfg, rng, 4)
    v = value_estimate(params, cfg, z0, actions, None, noise)
    r0 = two_hot_inv(model.reward(params, cfg, z0, actions[:, 0]), cfg=cfg)
    r0 = r0 + 0.01 * np.clip(model.F(params, cfg, z0, actions[:, 0]), -5, 5)
    z1 = model.next(params, cfg, z0, actions[:, 0])
    assert np.all((sigmoid(model.termination(params, cfg, z1)) > 0.5) == (bias > 0))
    if bias > 0:  # terminated after the first step: only r~_0 counts, no bootstrap
        np.testing.assert_allclose(v, r0, rtol=1e-12)
    else:
        assert not np.allclose(v, r0)


@pytest.mark.parametrize(("a_star", "seed"), [(A_STAR, 0), (A_STAR, 1), (-0.6, 0), (-0.6, 2)])
def test_diffusion_plan_finds_best_action(a_star, seed):
    cfg = tiny()
    params = peaked_reward_params(cfg, a_star)
    z = model.encode(params, cfg, np.ones(5))
    noise = draw_numpy("diffusion", cfg, np.random.default_rng(seed))
    prev = np.zeros((cfg.horizon, 1))
    action, plan = diffusion_plan(params, cfg, z, prev, True, True, None, noise)
    assert action.shape == (1,) and plan.shape == (cfg.horizon, 1)
    assert action[0] == pytest.approx(a_star, abs=0.05)
    np.testing.assert_allclose(plan, a_star, atol=0.05)
    # Training: plan[0] + 0.05 action_eps, clipped.
    train_action, train_plan = diffusion_plan(params, cfg, z[None], prev, True, False, None, noise)
    np.testing.assert_allclose(train_plan, plan)
    np.testing.assert_allclose(train_action, np.clip(plan[0] + 0.05 * noise.action_eps, -1, 1))


@pytest.mark.parametrize(("a_star", "seed"), [(A_STAR, 0), (A_STAR, 1), (-0.6, 0), (-0.6, 2)])
def test_mppi_plan_finds_best_action(a_star, seed):
    # MPPI's final action is one elite drawn by Gumbel-max, so it is looser than the mean.
    cfg = tiny("planner=mppi", "iterations=6")
    params = peaked_reward_params(cfg, a_star)
    z = model.encode(params, cfg, np.ones(5))
    noise = draw_numpy("mppi", cfg, np.random.default_rng(seed))
    action, mean = mppi_plan(params, cfg, z, np.zeros((cfg.horizon, 1)), True, True, None, noise)
    assert action.shape == (1,) and mean.shape == (cfg.horizon, 1)
    assert action[0] == pytest.approx(a_star, abs=0.1)
    np.testing.assert_allclose(mean, a_star, atol=0.06)
    train_action, _ = mppi_plan(params, cfg, z, mean, False, False, None, noise)
    assert -1.0 <= train_action[0] <= 1.0


@pytest.mark.parametrize("score_only", ["false", "true"])
def test_score_network_planning_warm_start_hand_value(score_only):
    # use_score_network=true plans with the score net, score_only_inference or not (published).
    cfg = tiny("use_score_network=true", f"score_only_inference={score_only}")
    params = init_params(cfg, np.random.default_rng(0))
    params["score.2.weight"] = np.zeros_like(params["score.2.weight"])
    z = model.encode(params, cfg, np.ones(5))
    noise = draw_numpy("diffusion", cfg, np.random.default_rng(1))
    prev = np.array([[0.9], [-0.4], [0.7]])
    # Zero score: x_final = sqrt(ab_{T-1}) mean0 / prod_{tau=1}^{T-1} sqrt(alpha_tau)
    #           = sqrt(alpha_0) mean0 = sqrt(1 - 1e-4) [-0.4, 0.7, 0] (shifted warm start).
    _, plan = diffusion_plan(params, cfg, z, prev, False, True, None, noise)
    np.testing.assert_allclose(plan[:, 0], np.sqrt(1 - 1e-4) * np.array([-0.4, 0.7, 0.0]))
    _, plan0 = diffusion_plan(params, cfg, z, prev, True, True, None, noise)
    np.testing.assert_array_equal(plan0, 0.0)
    _, alpha, ab = noise_schedule(cfg.diffusion_steps, cfg.diffusion_beta0, cfg.diffusion_betaT)
    assert np.sqrt(ab[-1] / np.prod(alpha[1:])) == pytest.approx(np.sqrt(alpha[0]))


def _multitask(cfg):
    return dataclasses.replace(
        cfg,
        multitask=True,
        tasks=("cartpole-balance", "cartpole-swingup"),
        obs_dims=(5, 5),
        action_dim=2,
        action_dims=(2, 1),
        episode_lengths=(500, 100),
        discounts=(0.99, 0.95),
        task_dim=8,
    )


def test_multitask_planning_masks_and_discount():
    cfg = _multitask(tiny())
    params = init_params(cfg, np.random.default_rng(0))
    z = model.encode(params, cfg, np.ones(5), 1)
    noise = draw_numpy("value", cfg, np.random.default_rng(1), 3)
    acts = np.zeros((3, cfg.horizon, 2))
    zs = np.repeat(z[None], 3, axis=0)
    # Task 1 has gamma 0.95: V = -0.005 (1 + 0.95 + 0.9025) = -0.0142625 with stats (1, 2).
    v = value_estimate(params, cfg, zs, acts, 1, noise, (1.0, 2.0))
    np.testing.assert_allclose(v, -0.0142625, rtol=1e-12)
    prev = np.full((cfg.horizon, 2), 0.5)
    for plan_fn, draw, c in (
        (diffusion_plan, partial(draw_numpy, "diffusion"), cfg),
        (mppi_plan, partial(draw_numpy, "mppi"), dataclasses.replace(cfg, iterations=2)),
    ):
        noise = draw(c, np.random.default_rng(2))
        action, plan = plan_fn(params, c, z, prev, False, False, 1, noise)
        assert action[1] == 0.0 and np.all(plan[:, 1] == 0.0)
        assert action[0] != 0.0
        action, plan = plan_fn(params, c, z, prev, False, False, 0, noise)
        assert action[1] != 0.0


def test_policy_plan():
    cfg = tiny("planner=policy")
    params = randomised(cfg, 7)
    z = model.encode(params, cfg, np.ones(5))
    noise = draw_numpy("policy", cfg, np.random.default_rng(0))
    prev = np.zeros((cfg.horizon, 1))
    sample, info = model.pi(params, cfg, z, eps=noise.action_eps)
    action, plan = policy_plan(params, cfg, z, prev, True, True, None, noise)
    np.testing.assert_allclose(action, info["mean"])
    np.testing.assert_array_equal(plan, prev)
    action, _ = policy_plan(params, cfg, z[None], prev, True, False, None, noise)
    np.testing.assert_allclose(action, sample)
    assert not np.allclose(sample, info["mean"])
