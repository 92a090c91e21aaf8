"""The numpy world-model forward (mbdpo_core.reference.model): shapes, identities, hand checks."""

import dataclasses
import math

import numpy as np
import pytest
from mbdpo_core.config import load_config
from mbdpo_core.errors import ConfigError
from mbdpo_core.params import init_params
from mbdpo_core.reference import model
from mbdpo_core.reference.math import gaussian_logprob, tanh_squash, two_hot_inv

TINY = ["preset=cpu", "mlp_dim=32", "latent_dim=16", "enc_dim=32", "num_q=3", "horizon=3"]


def tiny(task="cartpole-balance", *extra):
    return load_config([*TINY, f"task={task}", *extra])


def multitask(cfg):
    """Two tasks, A = 2 with task 1 using one action dim (a hand-made multi-task Config)."""
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


@pytest.fixture(scope="module")
def setup():
    cfg = tiny()
    rng = np.random.default_rng(1)
    params = init_params(cfg, rng)
    # Non-zero last layers so that the heads depend on their inputs.
    for name in ("reward.2.weight", "energy.2.weight", "q.2.weight"):
        params[name] = rng.standard_normal(params[name].shape).astype(np.float32) * 0.1
    params["target_q.2.weight"] = params["q.2.weight"].copy()
    return cfg, params, rng


def _manual_mlp(params, prefix, x, n, last_simnorm):
    """Independent NormedLinear stack: Linear -> LN(eps 1e-5) -> Mish, last plain or SimNorm."""
    h = x
    for i in range(n):
        h = h @ params[f"{prefix}.{i}.weight"].astype(np.float64) + params[f"{prefix}.{i}.bias"]
        if i < n - 1 or last_simnorm:
            mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
            h = (h - mu) / np.sqrt(var + 1e-5) * params[f"{prefix}.{i}.ln.weight"]
            h = h + params[f"{prefix}.{i}.ln.bias"]
            if i < n - 1:
                h = h * np.tanh(np.log1p(np.exp(h)))
            else:
                g = np.exp(h.reshape(*h.shape[:-1], -1, 8))
                h = (g / g.sum(-1, keepdims=True)).reshape(h.shape)
    return h


def test_shapes(setup):
    cfg, params, rng = setup
    Z, A, K, H = cfg.latent_dim, cfg.action_dim, cfg.num_bins, cfg.horizon
    obs = rng.standard_normal((4, 2, 5))
    z = model.encode(params, cfg, obs)
    a = rng.uniform(-1, 1, (4, 2, A))
    assert z.shape == (4, 2, Z) and z.dtype == np.float64
    assert model.next(params, cfg, z, a).shape == (4, 2, Z)
    assert model.reward(params, cfg, z, a).shape == (4, 2, K)
    assert model.F(params, cfg, z, a).shape == (4, 2, 1)
    assert model.Q(params, cfg, z, a).shape == (cfg.num_q, 4, 2, K)
    assert model.score(params, cfg, z, np.zeros((H, A)), 3).shape == (4, 2, H, A)
    assert model.score(params, cfg, z[0, 0], np.zeros((H, A)), 3).shape == (H, A)
    action, info = model.pi(params, cfg, z, eps=rng.standard_normal((4, 2, A)))
    assert action.shape == (4, 2, A)
    assert {k: v.shape for k, v in info.items()} == {
        "mean": (4, 2, A),
        "log_std": (4, 2, A),
        "entropy": (4, 2, 1),
        "scaled_entropy": (4, 2, 1),
    }
    np.testing.assert_allclose(z.reshape(4, 2, Z // 8, 8).sum(-1), 1.0)
    with pytest.raises(ConfigError, match="episodic"):
        model.termination(params, cfg, z)


def test_against_manual_forward(setup):
    cfg, params, rng = setup
    obs = rng.standard_normal((3, 5))
    z = model.encode(params, cfg, obs)
    np.testing.assert_allclose(z, _manual_mlp(params, "encoder", obs, 2, True), rtol=1e-12)
    a = rng.uniform(-1, 1, (3, 1))
    za = np.concatenate([z, a], -1)
    np.testing.assert_allclose(
        model.next(params, cfg, z, a), _manual_mlp(params, "dynamics", za, 3, True), rtol=1e-12
    )
    np.testing.assert_allclose(
        model.reward(params, cfg, z, a), _manual_mlp(params, "reward", za, 3, False), rtol=1e-12
    )
    q1 = {k: v[1] for k, v in params.items() if k.startswith("q.")}
    np.testing.assert_allclose(
        model.Q(params, cfg, z, a)[1], _manual_mlp(q1, "q", za, 3, False), rtol=1e-12
    )


def test_reward_at_init_decodes_to_zero():
    cfg = tiny()
    params = init_params(cfg, np.random.default_rng(0))
    z = model.encode(params, cfg, np.ones((2, 5)))
    # Last reward weight and bias are zero -> uniform logits -> symexp(mean of centres) = 0.
    logits = model.reward(params, cfg, z, np.zeros((2, 1)))
    np.testing.assert_array_equal(logits, 0.0)
    np.testing.assert_allclose(two_hot_inv(logits, cfg=cfg), 0.0, atol=1e-12)


def test_pi_identities(setup):
    cfg, params, rng = setup
    z = model.encode(params, cfg, rng.standard_normal((6, 5)))
    eps = rng.standard_normal((6, 1))
    action, info = model.pi(params, cfg, z, eps=eps)
    # eps = 0 gives action = tanh(mean) = info["mean"].
    action0, info0 = model.pi(params, cfg, z, eps=np.zeros((6, 1)))
    np.testing.assert_allclose(action0, info0["mean"])
    np.testing.assert_allclose(info0["mean"], info["mean"])
    assert np.all(info["log_std"] > cfg.log_std_min) and np.all(info["log_std"] < cfg.log_std_max)
    # Recompose the log-probability: lp = lp_gauss - log_det; entropy = -lp.
    mean = np.arctanh(info["mean"])
    squashed, log_det = tanh_squash(mean, eps, info["log_std"])
    lp = gaussian_logprob(eps, info["log_std"]) - log_det
    np.testing.assert_allclose(squashed, action, rtol=1e-9)
    np.testing.assert_allclose(info["entropy"], -lp, rtol=1e-9)
    # scaled_entropy = -lp (lp_gauss n) / (lp + 1e-8), n = A = 1.
    lp_gauss = gaussian_logprob(eps, info["log_std"])
    np.testing.assert_allclose(info["scaled_entropy"], -lp * lp_gauss / (lp + 1e-8), rtol=1e-9)


def test_q_dropout_and_target(setup):
    cfg, params, rng = setup
    z = model.encode(params, cfg, rng.standard_normal((5, 5)))
    a = rng.uniform(-1, 1, (5, 1))
    full = model.Q(params, cfg, z, a)
    ones = np.ones((cfg.num_q, 5, cfg.mlp_dim))
    # keep = 1 everywhere equals layer 0 (weight and bias) scaled by 1/(1 - p).
    scaled = dict(params)
    for name in ("q.0.weight", "q.0.bias"):
        scaled[name] = params[name].astype(np.float64) / (1.0 - cfg.dropout)
    np.testing.assert_allclose(
        model.Q(params, cfg, z, a, keep=ones), model.Q(scaled, cfg, z, a), rtol=1e-12
    )
    assert not np.allclose(model.Q(params, cfg, z, a, keep=ones), full, rtol=1e-9)
    # keep = 0: layer-0 output is 0 -> LN gives its bias -> every row identical.
    dropped = model.Q(params, cfg, z, a, keep=np.zeros_like(ones))
    np.testing.assert_allclose(dropped, np.broadcast_to(dropped[:, :1], dropped.shape))
    assert not np.allclose(full, np.broadcast_to(full[:, :1], full.shape))
    # target=True reads target_q.*, not q.*.
    params2 = dict(params)
    params2["target_q.2.bias"] = params["target_q.2.bias"] + 1.0
    np.testing.assert_allclose(model.Q(params2, cfg, z, a), full)
    np.testing.assert_allclose(model.Q(params2, cfg, z, a, target=True), full + 1.0)
    pair = model.q_pair_values(params, cfg, z, a, [2, 0])
    np.testing.assert_allclose(pair[0], two_hot_inv(full[2], cfg=cfg))


def test_task_embedding_max_norm():
    """torch's Embedding(max_norm=1): looked-up rows of norm > 1 are scaled by 1/(norm + 1e-7)
    in the table; the lookup returns the table's rows."""
    table = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 2.0], [30.0, 40.0]], np.float32)
    params = {"task_emb.weight": table.copy(), "pi.0.bias": np.zeros(2, np.float32)}
    task = np.array([[0, 1], [2, 0]])
    after = model.renorm_task_rows(params, task)
    # row 0: norm 5; row 2: norm 2; row 1 (norm 0.5) is kept; row 3 is not looked up
    want = np.array(
        [[3 / (5 + 1e-7), 4 / (5 + 1e-7)], [0.3, 0.4], [0.0, 2 / (2 + 1e-7)], [30.0, 40.0]],
        np.float32,
    )
    np.testing.assert_array_equal(after["task_emb.weight"], want)
    assert after["task_emb.weight"].dtype == np.float32
    assert after["pi.0.bias"] is params["pi.0.bias"]
    np.testing.assert_array_equal(params["task_emb.weight"], table)  # a new dict and table
    e = model.task_embedding(params, task)
    assert e.shape == (2, 2, 2)
    np.testing.assert_array_equal(e, want[task].astype(np.float64))
    # a renormalised row stays as it is (norm 5 / (5 + 1e-7) < 1)
    again = model.renorm_task_rows(after, [0, 2])["task_emb.weight"]
    np.testing.assert_array_equal(again, want)


def test_multitask_masks_and_embedding():
    cfg = multitask(tiny())
    params = init_params(cfg, np.random.default_rng(2))
    assert params["task_emb.weight"].shape == (2, 8)
    obs = np.random.default_rng(3).standard_normal((2, 4, 5))
    task = np.array([0, 1, 1, 0])
    z = model.encode(params, cfg, obs, task)  # task [B] broadcasts against [2, B, O]
    assert z.shape == (2, 4, 16)
    np.testing.assert_allclose(z[0, 1], model.encode(params, cfg, obs[0, 1], 1))
    eps = np.ones((2, 4, 2))
    action, info = model.pi(params, cfg, z, task, eps)
    # Task 1 uses one action dim: its padded dim has action 0, mean 0 and log_std 0.
    np.testing.assert_array_equal(action[:, [1, 2], 1], 0.0)
    np.testing.assert_array_equal(info["log_std"][:, [1, 2], 1], 0.0)
    assert np.all(action[:, [0, 3], 1] != 0.0)
    # scaled entropy uses n = mask.sum(): 2 for task 0, 1 for task 1.
    eps_m = eps * model.action_mask(cfg, task)
    lp_gauss = gaussian_logprob(eps_m, info["log_std"])
    lp = -info["entropy"]
    n = np.array([2.0, 1.0, 1.0, 2.0])[:, None]
    np.testing.assert_allclose(info["scaled_entropy"], -lp * lp_gauss * n / (lp + 1e-8))
    with pytest.raises(ConfigError, match="task"):
        model.encode(params, cfg, obs)


def test_score_time_embedding_enters():
    cfg = tiny()
    params = init_params(cfg, np.random.default_rng(4))
    z = model.encode(params, cfg, np.ones(5))
    x = np.zeros((cfg.horizon, 1))
    s3, s4 = model.score(params, cfg, z, x, 3), model.score(params, cfg, z, x, 4)
    assert not np.allclose(s3, s4)
    batched = model.score(params, cfg, np.stack([z, z]), x, np.array([3, 4]))
    np.testing.assert_allclose(batched, np.stack([s3, s4]))
    assert math.isfinite(float(s3.sum()))
