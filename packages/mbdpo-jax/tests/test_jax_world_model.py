"""WorldModel modules against the numpy oracle (mbdpo_core.reference.model), shapes, and the
optimised computations (member subsets, shared first-layer input) against the plain ones."""

import jax.numpy as jnp
import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.reference import model as ref
from mbdpo_jax import WorldModel
from mbdpo_jax.layers import input_dense, task_embedding

TINY = ["mlp_dim=32", "latent_dim=16", "enc_dim=32", "num_q=3", "num_bins=11", "horizon=2"]
CONFIGS = {
    "single": load_config(["preset=cpu", *TINY]),
    "episodic": load_config(["preset=cpu", "episodic=true", *TINY]),
    "multitask": load_config(["preset=cpu", "task=mt30", "task_dim=8", *TINY]),
}


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=tol, atol=tol)


@pytest.fixture(params=list(CONFIGS))
def setup(request, random_params):
    cfg = CONFIGS[request.param]
    params = random_params(cfg)
    rng = np.random.default_rng(1)
    B = 5
    task = rng.integers(0, cfg.n_tasks, B) if cfg.multitask else None
    z = ref.simnorm(rng.standard_normal((B, cfg.latent_dim)))
    data = {
        "obs": rng.standard_normal((B, cfg.obs_shape[0])).astype(np.float32),
        "z": z.astype(np.float32),
        "a": rng.uniform(-1, 1, (B, cfg.action_dim)).astype(np.float32),
        "eps": rng.standard_normal((B, cfg.action_dim)).astype(np.float32),
        "x": rng.standard_normal((B, cfg.horizon, cfg.action_dim)).astype(np.float32),
        "tau": rng.integers(1, 10, B),
        "keep": (rng.random((cfg.num_q, B, cfg.mlp_dim)) < 0.7).astype(np.float32),
        "task": task,
    }
    jtask = None if task is None else jnp.asarray(task)
    return cfg, params, WorldModel(cfg, {k: jnp.asarray(v) for k, v in params.items()}), data, jtask


def test_modules_match_oracle(setup):
    cfg, p, wm, d, jt = setup
    t = d["task"]
    close(wm.encode(d["obs"], jt), ref.encode(p, cfg, d["obs"], t))
    close(wm.next(d["z"], d["a"], jt), ref.next(p, cfg, d["z"], d["a"], t))
    close(wm.reward(d["z"], d["a"], jt), ref.reward(p, cfg, d["z"], d["a"], t), 1e-4)
    close(wm.F(d["z"], d["a"], jt), ref.F(p, cfg, d["z"], d["a"], t), 1e-4)
    close(
        wm.score(d["z"], d["x"], jnp.asarray(d["tau"]), jt),
        ref.score(p, cfg, d["z"], d["x"], d["tau"], t),
        1e-4,
    )
    close(wm.Q(d["z"], d["a"], jt), ref.Q(p, cfg, d["z"], d["a"], t), 1e-4)
    close(
        wm.Q(d["z"], d["a"], jt, target=True, keep=d["keep"]),
        ref.Q(p, cfg, d["z"], d["a"], t, target=True, keep=d["keep"]),
        1e-4,
    )
    if cfg.episodic:
        close(wm.termination(d["z"], jt), ref.termination(p, cfg, d["z"], t), 1e-4)
    action, info = wm.pi(d["z"], jt, d["eps"])
    ref_action, ref_info = ref.pi(p, cfg, d["z"], t, d["eps"])
    close(action, ref_action)
    for key in ("mean", "log_std", "entropy", "scaled_entropy"):
        close(info[key], ref_info[key], 1e-4)


def test_shapes(setup):
    cfg, _, wm, d, jt = setup
    B, Z, A, K, Nq = 5, cfg.latent_dim, cfg.action_dim, cfg.num_bins, cfg.num_q
    assert wm.encode(d["obs"], jt).shape == (B, Z)
    assert wm.next(d["z"], d["a"], jt).shape == (B, Z)
    assert wm.reward(d["z"], d["a"], jt).shape == (B, K)
    assert wm.F(d["z"], d["a"], jt).shape == (B, 1)
    assert wm.Q(d["z"], d["a"], jt).shape == (Nq, B, K)
    assert wm.score(d["z"], d["x"], jnp.asarray(d["tau"]), jt).shape == (B, cfg.horizon, A)
    action, info = wm.pi(d["z"], jt, d["eps"])
    assert action.shape == info["mean"].shape == (B, A)
    assert info["entropy"].shape == info["scaled_entropy"].shape == (B, 1)


def test_q_member_subset_equals_full_ensemble(setup):
    cfg, _, wm, d, jt = setup
    pair = jnp.asarray([2, 0])
    full = wm.Q(d["z"], d["a"], jt, target=True)
    sub = wm.Q(d["z"], d["a"], jt, target=True, members=pair)
    np.testing.assert_allclose(sub, full[np.array([2, 0])], rtol=1e-6, atol=1e-6)
    keep = jnp.asarray(d["keep"])
    full = wm.Q(d["z"], d["a"], jt, keep=keep)
    sub = wm.Q(d["z"], d["a"], jt, keep=keep[pair], members=pair)
    np.testing.assert_allclose(sub, full[np.array([2, 0])], rtol=1e-6, atol=1e-6)


def test_shared_first_layer_equals_concatenation(setup):
    """One latent against N actions: the split first layer equals repeat + concat + matmul."""
    cfg, _, wm, d, jt = setup
    z1 = jnp.asarray(d["z"][:1])
    task = None if jt is None else jt[0]
    shared = wm.reward(z1, d["a"], task)
    repeated = wm.reward(
        jnp.repeat(z1, 5, axis=0), d["a"], None if jt is None else jnp.repeat(jt[:1], 5)
    )
    np.testing.assert_allclose(shared, repeated, rtol=1e-5, atol=1e-5)
    w, b = wm.params["q.0.weight"], wm.params["q.0.bias"]
    a = jnp.asarray(d["a"])
    e = [] if jt is None else [task_embedding(wm.params, jt[0])]
    cat = jnp.concatenate([jnp.repeat(z1, 5, axis=0), *[jnp.tile(x, (5, 1)) for x in e], a], -1)
    np.testing.assert_allclose(
        input_dense([z1, *e, a], w, b), input_dense([cat], w, b), rtol=1e-5, atol=1e-5
    )


def _numpy_conv(x, w, stride):
    """Valid cross-correlation, NHWC x [N, H, W, C], HWIO w."""
    k = w.shape[0]
    out = (x.shape[1] - k) // stride + 1
    y = np.zeros((x.shape[0], out, out, w.shape[-1]))
    for i in range(out):
        for j in range(out):
            patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
            y[:, i, j] = np.einsum("nhwc,hwco->no", patch, w)
    return y


def test_rgb_encoder_matches_numpy_convolution(random_params):
    cfg = load_config(["preset=cpu", "obs=rgb", "num_channels=4", "latent_dim=64", *TINY[:1]])
    params = random_params(cfg)
    obs = np.random.default_rng(2).integers(0, 255, (2, *cfg.obs_shape)).astype(np.uint8)
    wm = WorldModel(cfg, {k: jnp.asarray(v) for k, v in params.items()})
    z = wm.encode(jnp.asarray(obs), None)
    assert z.shape == (2, 64)
    x = np.transpose(obs / 255.0 - 0.5, (0, 2, 3, 1))
    for i, stride in enumerate((2, 2, 2, 1)):
        x = _numpy_conv(x, params[f"encoder.{i}.weight"].astype(np.float64), stride)
        x = x + params[f"encoder.{i}.bias"]
        x = np.maximum(x, 0.0) if i < 3 else x
    close(z, ref.simnorm(x.reshape(2, -1), 8), 1e-4)
