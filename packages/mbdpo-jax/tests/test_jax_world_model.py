"""WorldModel modules against the numpy oracle (mbdpo_core.reference.model), shapes, the NNX
tree <-> canonical names, and the optimised computations (member subsets, shared first-layer
input) against the plain ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from mbdpo_core.config.load import load_config
from mbdpo_core.params import param_shapes
from mbdpo_core.reference import model as ref
from mbdpo_jax import WorldModel
from mbdpo_jax.layers import MLP, Linear, _input_dense
from mbdpo_jax.params_io import export_params, import_params

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
    return cfg, params, make_model(cfg, params), data, jtask


def make_model(cfg, params):
    model = WorldModel(cfg)
    import_params(model, params)
    return model


def test_tree_paths_are_canonical_names(setup):
    cfg, params, wm, _, _ = setup
    assert set(export_params(wm)) == set(param_shapes(cfg))
    exported = export_params(wm)
    assert all(np.array_equal(exported[k], params[k]) for k in params)
    assert isinstance(wm.nets["q"], MLP) and isinstance(wm.nets["q"][1], Linear)
    assert wm.nets["q"][1].ln.weight.shape == (cfg.num_q, cfg.mlp_dim)
    np.testing.assert_array_equal(wm.nets["reward"][0].weight[...], params["reward.0.weight"])
    paths = {p for p, _ in nnx.to_flat_state(nnx.state(wm))}
    assert ("nets", "target_q", 2, "weight") in paths and all(p[0] == "nets" for p in paths)


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
    w, b = wm.nets["q"][0].weight[...], wm.nets["q"][0].bias[...]
    a = jnp.asarray(d["a"])
    e = [] if jt is None else [wm.nets["task_emb"](jt[0])]
    cat = jnp.concatenate([jnp.repeat(z1, 5, axis=0), *[jnp.tile(x, (5, 1)) for x in e], a], -1)
    np.testing.assert_allclose(
        _input_dense([z1, *e, a], w, b), _input_dense([cat], w, b), rtol=1e-5, atol=1e-5
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
    wm = make_model(cfg, params)
    z = wm.encode(jnp.asarray(obs), None)
    assert z.shape == (2, 64)
    x = np.transpose(obs / 255.0 - 0.5, (0, 2, 3, 1))
    for i, stride in enumerate((2, 2, 2, 1)):
        x = _numpy_conv(x, params[f"encoder.{i}.weight"].astype(np.float64), stride)
        x = x + params[f"encoder.{i}.bias"]
        x = np.maximum(x, 0.0) if i < 3 else x
    flat = np.transpose(x, (0, 3, 1, 2)).reshape(2, -1)  # channel-first, as published
    close(z, ref.simnorm(flat, 8), 1e-4)


def test_q_detach_passes_gradient_to_inputs_only(setup):
    cfg, _, wm, d, jt = setup
    graphdef, q, rest = nnx.split(wm, lambda path, _: path[1] == "q", ...)
    z, a = jnp.asarray(d["z"]), jnp.asarray(d["a"])

    def loss(q, a, detach):
        return jnp.sum(nnx.merge(graphdef, q, rest).Q(z, a, jt, detach=detach))

    dq, da = jax.grad(loss, argnums=(0, 1))(q, a, True)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(dq))
    assert float(jnp.abs(da).max()) > 0.0
    dq = jax.grad(loss)(q, a, False)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(dq)) > 0.0


def test_mlp_call_on_an_array_equals_its_parts(setup):
    cfg, _, wm, d, _ = setup
    z, a = jnp.asarray(d["z"]), jnp.asarray(d["a"])
    if cfg.multitask:
        return
    np.testing.assert_allclose(
        wm.nets["reward"](jnp.concatenate([z, a], -1)), wm.nets["reward"]([z, a]), atol=1e-6
    )
    np.testing.assert_allclose(wm.nets["reward"]([z, a]), wm.reward(z, a, None), atol=0)
