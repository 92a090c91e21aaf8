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
    want = energy_by_rows(params, cfg, out_p["zs"], batch, noise, published_rows(3, 8))
    assert out_p["energy_loss"] == pytest.approx(want[0], rel=1e-12)
    assert (out_p["energy_mean"], out_p["energy_std"]) == pytest.approx(
        (0.01 * want[1], 0.99 + 0.01 * want[2]), rel=1e-12
    )
    assert out_p["energy_loss"] != pytest.approx(out["energy_loss"], rel=1e-6)


def published_rows(H, B):
    """The published code's flat rows r = 0 .. H*B-1 of the energy loss as (latent (t, b),
    action (t, b), task's batch index): latents flattened time-major (r = t*B + b), actions and
    task ids batch-major (r = b*H + t)."""
    return [((r // B, r % B), (r % H, r // H), r // H) for r in range(H * B)]


def energy_by_rows(params, cfg, zs, batch, noise, rows):
    """(L_F, mean, population std of the F logits) computed one flat row at a time from
    `rows` [(latent (t, b), action (t, b), task's batch index)]. Each row's negatives use the
    noise of its latent's position [t, b] and the row's task."""
    pos, neg = [], []
    for (t, b), (ta, ba), bt in rows:
        z, task = zs[t, b], None if batch.task is None else int(batch.task[bt])
        pos.append(model.F(params, cfg, z, batch.action[ta, ba], task)[0])
        a_pi, _ = model.pi(params, cfg, z, task, noise.energy_pi_eps[t, b])
        noisy = np.clip(a_pi + cfg.energy_neg_noise * noise.energy_gauss[t, b], -1.0, 1.0)
        logits = [model.F(params, cfg, z, a, task)[0] for a in (a_pi, noisy)]
        logits.append(model.F(params, cfg, z, noise.energy_uniform[t, b], task)[0])
        neg.append(max(logits))
    pos, neg = np.array(pos), np.array(neg)
    loss = 0.5 * (np.mean(np.logaddexp(0.0, -pos)) + np.mean(np.logaddexp(0.0, neg)))
    both = np.concatenate([pos, neg])
    return loss, both.mean(), both.std()


def test_energy_published_pairing_multitask_explicit_rows():
    """Published pairing with task ids (H = 3, B = 2): row r pairs latent (r // 2, r % 2) with
    action (r % 3, r // 3) and the task of sample r // 3, for F's positives and for the policy
    and F of its negatives."""
    cfg = load_config([*TINY, "task=mt30", "task_dim=8", "batch_size=2"])
    rng = np.random.default_rng(9)
    params = init_params(cfg, rng)
    params["energy.2.weight"] = rng.standard_normal(params["energy.2.weight"].shape)
    params["energy.0.weight"] = rng.standard_normal(params["energy.0.weight"].shape)
    params["task_emb.weight"] = rng.standard_normal(params["task_emb.weight"].shape) * 0.3
    params["pi.2.weight"] = rng.standard_normal(params["pi.2.weight"].shape)
    batch = make_batch(cfg, rng, task=np.array([3, 17]))
    noise = draw_numpy("update", cfg, rng)
    rows = [  # (latent (t, b), action (t, b), task's sample) of flat rows 0..5
        ((0, 0), (0, 0), 0),
        ((0, 1), (1, 0), 0),
        ((1, 0), (2, 0), 0),
        ((1, 1), (0, 1), 1),
        ((2, 0), (1, 1), 1),
        ((2, 1), (2, 1), 1),
    ]
    assert published_rows(3, 2) == rows
    published = dataclasses.replace(cfg, energy_pairing="published")
    out = world_model_losses(params, published, batch, noise)
    loss, mean, std = energy_by_rows(params, cfg, out["zs"], batch, noise, rows)
    assert out["energy_loss"] == pytest.approx(loss, rel=1e-12)
    assert out["energy_mean"] == pytest.approx(0.01 * mean, rel=1e-12)
    assert out["energy_std"] == pytest.approx(0.99 + 0.01 * std, rel=1e-12)
    # the task ids matter: the same actions with each latent's own task give another loss
    own_task = [(z, a, z[1]) for z, a, _ in rows]
    other = energy_by_rows(params, cfg, out["zs"], batch, noise, own_task)[0]
    assert other != pytest.approx(loss, rel=1e-6)
    aligned = [((t, b), (t, b), b) for t in range(3) for b in range(2)]
    want_aligned = energy_by_rows(params, cfg, out["zs"], batch, noise, aligned)[0]
    assert world_model_losses(params, cfg, batch, noise)["energy_loss"] == pytest.approx(
        want_aligned, rel=1e-12
    )
    assert want_aligned != pytest.approx(loss, rel=1e-6)


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


def _ln_unit0(h, M):
    """Unit 0 of LayerNorm (weight e_0, bias 0, eps 1e-5) of [h0, h1, h2, h3, 0, ...] (width M),
    written out: (h0 - mean) / sqrt(population variance + 1e-5). Shapes: h [4, ...] -> [...]."""
    mean = sum(h) / M
    var = sum(x * x for x in h) / M - mean**2
    return (h[0] - mean) / np.sqrt(var + 1e-5)


def _mish(x):
    return x * np.tanh(np.log1p(np.exp(x)))


def test_score_target_hand_check_non_uniform_weights():
    """The score target's values differ per sample, through F (normalised with the energy
    statistics after this batch) and the Q bootstrap (with dropout), as in the published update;
    the expected target is written out from explicit formulas of a hand-built model."""
    cfg = tiny("use_score_network=true")
    H, A, M, Z, K, S = 3, 1, 32, 16, 101, 16
    assert (cfg.horizon, cfg.action_dim, cfg.mlp_dim, cfg.latent_dim) == (H, A, M, Z)
    assert cfg.diffusion_num_samples_mf == S and cfg.discounts == (0.99,) and cfg.dropout == 0.01
    rng = np.random.default_rng(11)
    params = init_params(cfg, rng)
    e0 = np.eye(M)[0]
    # F(z, a) depends on a only: layer 0 -> [a, -a, C, -C, 0...], layer 1 -> [u, -u, C, -C, 0...]
    # (LayerNorm weight e_0 keeps unit 0), F = k mish(n1) + b.
    C, k, b = 1.0, 4.0, 0.5
    w0, b0 = np.zeros((Z + A, M)), np.zeros(M)
    w0[Z, 0], w0[Z, 1], b0[2], b0[3] = 1.0, -1.0, C, -C
    w1, b1 = np.zeros((M, M)), np.zeros(M)
    w1[0, 0], w1[0, 1], b1[2], b1[3] = 1.0, -1.0, C, -C
    w2 = np.zeros((M, 1))
    w2[0, 0] = k
    zero = np.zeros(M)
    params.update({
        "energy.0.weight": w0, "energy.0.bias": b0, "energy.0.ln.weight": e0,
        "energy.0.ln.bias": zero, "energy.1.weight": w1, "energy.1.bias": b1,
        "energy.1.ln.weight": e0, "energy.1.ln.bias": zero, "energy.2.weight": w2,
        "energy.2.bias": np.array([b]),
    })  # fmt: skip

    def F_hand(a):
        u = _mish(_ln_unit0([a, -a, C, -C], M))
        return k * _mish(_ln_unit0([u, -u, C, -C], M)) + b

    # Q (every member): layer 0 = bias [c, 0...] only, so after dropout it is [c/0.99, 0...]
    # (unit 0 kept) or all 0 (dropped); layer 1 copies unit 0; logit L y on the bin of centre 1.
    c, L, kbin = 3.0, 1.0, 55
    nq = cfg.num_q
    qb0 = np.zeros((nq, M))
    qb0[:, 0] = c
    qw1 = np.zeros((nq, M, M))
    qw1[:, 0, 0] = 1.0
    qw2 = np.zeros((nq, M, K))
    qw2[:, 0, kbin] = L
    params.update({
        "q.0.weight": np.zeros_like(params["q.0.weight"]), "q.0.bias": qb0,
        "q.0.ln.weight": np.tile(e0, (nq, 1)), "q.0.ln.bias": np.zeros((nq, M)),
        "q.1.weight": qw1, "q.1.bias": np.zeros((nq, M)),
        "q.1.ln.weight": np.tile(e0, (nq, 1)), "q.1.ln.bias": np.zeros((nq, M)),
        "q.2.weight": qw2, "q.2.bias": np.zeros((nq, K)),
    })  # fmt: skip
    for name in ("reward.2.weight", "reward.2.bias", "pi.2.weight", "pi.2.bias"):
        params[name] = np.zeros_like(params[name])  # reward 0; pi: mean 0, log_std -4
    params["score.2.weight"] = np.zeros_like(params["score.2.weight"])
    params["score.2.bias"] = np.zeros_like(params["score.2.bias"])  # prediction 0

    def q_hand(kept):
        """Decoded Q of one member: 0 when unit 0 is dropped."""
        if not kept:
            return 0.0
        h = c / (1.0 - 0.01)
        y = _mish(_ln_unit0([_mish(_ln_unit0([h, 0, 0, 0], M)), 0, 0, 0], M))
        p = np.exp(L * y) / (np.exp(L * y) + K - 1)  # softmax: L y on one bin, 0 on the others
        centre = -10.0 + 0.2 * kbin  # = 1; the centres sum to 0
        x = p * centre - (1 - p) / (K - 1) * centre
        return np.sign(x) * np.expm1(abs(x))

    batch = make_batch(cfg, rng)
    noise = draw_numpy("update", cfg, rng)
    keep = np.ones((2, S, M), np.float32)
    keep[0, [1, 4, 7, 10, 13], 0] = 0.0
    keep[1, [2, 4, 9], 0] = 0.0
    score = dataclasses.replace(
        noise.score, value=dataclasses.replace(noise.score.value, q_keep=keep)
    )
    noise = dataclasses.replace(noise, score=score)
    mu0, sigma0 = 2.0, 0.3
    out = world_model_losses(params, cfg, batch, noise, (mu0, sigma0))

    # Energy statistics after this batch, by hand: positives F(action); the negative is the
    # largest F of (pi, noisy pi, uniform), pi = tanh(exp(-4) eps).
    pos = F_hand(batch.action.astype(np.float64))
    a_pi = np.tanh(np.exp(-4.0) * noise.energy_pi_eps)
    cands = (a_pi, np.clip(a_pi + 0.5 * noise.energy_gauss, -1, 1), noise.energy_uniform)
    neg = np.max([F_hand(x.astype(np.float64)) for x in cands], axis=0)
    both = np.concatenate([pos.ravel(), neg.ravel()])
    mu1 = 0.99 * mu0 + 0.01 * both.mean()
    sigma1 = 0.99 * sigma0 + 0.01 * max(both.std(), 1e-6)
    assert out["energy_mean"] == pytest.approx(mu1, rel=1e-12)
    assert out["energy_std"] == pytest.approx(sigma1, rel=1e-12)

    T = 6  # max(diffusion_steps, 2) of the cpu preset
    ab = np.cumprod(1.0 - np.linspace(1e-4, 1e-2, T))[int(score.tau)]
    x = score.x_tau.astype(np.float64)
    a0 = np.clip(x / np.sqrt(ab) + np.sqrt((1 - ab) / ab) * score.sample_eps, -1, 1)

    def target(stats, q_parts):
        f = np.clip((F_hand(a0[:, :, 0]) - stats[0]) / stats[1], -5, 5)  # [S, H]
        v = 0.01 * (f @ 0.99 ** np.arange(H)) + 0.99**H * q_parts
        w = np.exp(((v - v.mean()) / (v.std(ddof=1) + 1e-6)) / 0.5)
        w = w / w.sum()
        return (-x + np.sqrt(ab) * np.einsum("s,sha->ha", w, a0)) / (1 - ab + 1e-8), w

    q_drop = np.array([(q_hand(keep[0, i, 0]) + q_hand(keep[1, i, 0])) / 2 for i in range(S)])
    expected, w = target((mu1, sigma1), q_drop)
    assert w.max() > 1.5 * w.min()  # the weights are far from uniform
    assert out["score_loss"] == pytest.approx(np.mean(expected**2), rel=1e-9)
    # Not the statistics before the batch, and not without dropout (old behaviour):
    stale, _ = target((mu0, sigma0), q_drop)
    no_dropout, _ = target((mu1, sigma1), np.full(S, q_hand(True)))
    for other in (stale, no_dropout):
        assert abs(np.mean(other**2) - out["score_loss"]) > 1e-4 * out["score_loss"]


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
