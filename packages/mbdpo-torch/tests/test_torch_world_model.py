"""World-model heads vs the numpy oracle (mbdpo_core.reference.model), shapes, params I/O."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbdpo_core.errors import CheckpointError
from mbdpo_core.params import init_params, param_shapes
from mbdpo_core.reference import math as ref_math
from mbdpo_core.reference import model as ref
from mbdpo_torch import WorldModel
from mbdpo_torch.params_io import export_params, import_params
from mbdpo_torch.update import polyak

TOL = {"rtol": 1e-4, "atol": 1e-5}
CASES = [((), "cheetah-run"), ((), "mt30"), (("episodic=true",), "cheetah-run")]


def build(cfg, params):
    model = WorldModel(cfg)
    import_params(model, params)
    return model


def t(x, dtype=torch.float32):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


@pytest.mark.parametrize(("over", "task_name"), CASES)
def test_heads_match_reference(tiny, rparams, over, task_name):
    cfg = tiny(*over, task=task_name)
    params = rparams(cfg)
    model = build(cfg, params)
    rng = np.random.default_rng(3)
    H, B, A, Z, M = 2, 5, cfg.action_dim, cfg.latent_dim, cfg.mlp_dim
    obs = rng.normal(0, 1, (H, B, *cfg.obs_shape))
    a = rng.uniform(-1, 1, (H, B, A))
    task = rng.integers(0, cfg.n_tasks, B) if cfg.multitask else None
    tt = None if task is None else t(task, torch.long)
    z_np = ref.encode(params, cfg, obs, task)
    z = model.encode(t(obs), tt)
    assert z.shape == (H, B, Z)
    np.testing.assert_allclose(z.detach().numpy(), z_np, **TOL)
    z = t(z_np)
    checks = {
        "next": (model.next(z, t(a), tt), ref.next(params, cfg, z_np, a, task), (H, B, Z)),
        "reward": (
            model.reward(z, t(a), tt),
            ref.reward(params, cfg, z_np, a, task),
            (H, B, cfg.num_bins),
        ),
        "F": (model.F(z, t(a), tt), ref.F(params, cfg, z_np, a, task), (H, B, 1)),
        "Q": (
            model.Q(z, t(a), tt),
            ref.Q(params, cfg, z_np, a, task),
            (cfg.num_q, H, B, cfg.num_bins),
        ),
        "target_Q": (
            model.Q(z, t(a), tt, target=True),
            ref.Q(params, cfg, z_np, a, task, target=True),
            (cfg.num_q, H, B, cfg.num_bins),
        ),
    }
    keep = (rng.random((cfg.num_q, H, B, M)) < 0.7).astype(np.float32)
    checks["Q_keep"] = (
        model.Q(z, t(a), tt, keep=t(keep)),
        ref.Q(params, cfg, z_np, a, task, keep=keep),
        checks["Q"][2],
    )
    pair = np.array([2, 0])
    checks["Q_pair"] = (
        model.Q(z, t(a), tt, keep=t(keep[pair]), members=t(pair, torch.long)),
        ref.Q(params, cfg, z_np, a, task, keep=keep)[pair],
        (2, H, B, cfg.num_bins),
    )
    if cfg.episodic:
        checks["termination"] = (
            model.termination(z, tt),
            ref.termination(params, cfg, z_np),
            (H, B, 1),
        )
    x = rng.normal(0, 1, (H, B, cfg.horizon, A))
    tau = rng.integers(1, 5, (H, B))
    checks["score"] = (
        model.score(z, t(x), t(tau, torch.long), tt),
        ref.score(params, cfg, z_np, x, tau, task),
        (H, B, cfg.horizon, A),
    )
    eps = rng.normal(0, 1, (H, B, A))
    action, info = model.pi(z, tt, t(eps))
    action_ref, info_ref = ref.pi(params, cfg, z_np, task, eps)
    checks["pi"] = (action, action_ref, (H, B, A))
    for key in ("mean", "log_std", "entropy", "scaled_entropy"):
        shape = (H, B, A) if key in ("mean", "log_std") else (H, B, 1)
        checks[f"pi_{key}"] = (info[key], info_ref[key], shape)
    for name, (got, want, shape) in checks.items():
        assert tuple(got.shape) == shape, name
        np.testing.assert_allclose(got.detach().numpy(), want, err_msg=name, **TOL)


def test_task_embedding_renormalises_looked_up_rows_in_place(tiny, rparams):
    """As torch's Embedding(max_norm=1): a lookup writes the renormalised rows into the table."""
    cfg = tiny(task="mt30")
    params = rparams(cfg)
    params["task_emb.weight"][:4] *= 5.0  # norms well above 1
    model = build(cfg, params)
    model.encode(torch.zeros(4, *cfg.obs_shape), torch.tensor([0, 2, 2, 5]))
    table = model.nets["task_emb"].weight.detach().numpy()
    want = ref.renorm_task_rows(params, [0, 2, 5])["task_emb.weight"]
    np.testing.assert_allclose(table, want, rtol=1e-6, atol=0)
    assert np.linalg.norm(table[[0, 2]], axis=-1).max() <= 1.0
    np.testing.assert_array_equal(table[[1, 3]], params["task_emb.weight"][[1, 3]])


@pytest.mark.parametrize("task_name", ["cheetah-run", "mt30"])
def test_params_round_trip_and_names(tiny, rparams, task_name):
    cfg = tiny(task=task_name)
    params = rparams(cfg)
    model = build(cfg, params)
    out = export_params(model)
    assert {k: v.shape for k, v in out.items()} == param_shapes(cfg)
    for name, value in params.items():
        np.testing.assert_array_equal(out[name], value, err_msg=name)
        assert out[name].dtype == np.float32


def test_import_reports_missing_unexpected_and_shapes(tiny):
    cfg = tiny()
    params = init_params(cfg, np.random.default_rng(0))
    bad = dict(params)
    del bad["reward.0.weight"]
    bad["bogus.weight"] = np.zeros(3, np.float32)
    bad["q.0.weight"] = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(CheckpointError) as err:
        import_params(WorldModel(cfg), bad)
    msg = str(err.value)
    assert "missing (1): reward.0.weight" in msg
    assert "unexpected (1): bogus.weight" in msg
    assert f"q.0.weight: checkpoint (1, 2, 3) vs agent {params['q.0.weight'].shape}" in msg


def test_polyak(tiny, rparams):
    cfg = tiny()
    params = rparams(cfg)
    model = build(cfg, params)
    polyak(model, 0.25)
    out = export_params(model)
    for name in (n for n in params if n.startswith("target_q.")):
        online = params[name[len("target_") :]]
        want = params[name] + 0.25 * (online - params[name])
        np.testing.assert_allclose(out[name], want, rtol=1e-6, atol=1e-7)


def test_layer_modules(tiny, rparams):
    """Linear / LayerNorm / MLP / TaskEmbedding called on their own equal the oracle."""
    cfg = tiny(task="mt30")
    params = rparams(cfg)
    model = build(cfg, params)
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (5, params["reward.0.weight"].shape[0]))
    layer = model.nets["reward"][0]
    h = x @ params["reward.0.weight"] + params["reward.0.bias"]
    np.testing.assert_allclose(layer(t(x)).detach().numpy(), h, **TOL)
    want_ln = ref_math.layer_norm(h, params["reward.0.ln.weight"], params["reward.0.ln.bias"])
    np.testing.assert_allclose(layer.ln(t(h)).detach().numpy(), want_ln, **TOL)
    task = np.array([0, 3, 7])
    np.testing.assert_allclose(
        model.nets["task_emb"](t(task, torch.long)).detach().numpy(),
        ref.task_embedding(params, task),
        **TOL,
    )
