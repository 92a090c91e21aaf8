"""Agent: one compile per shape, the optimizer step against a numpy Adam, state_dict naming,
AgentState round trips, checkpoint save/load equality and checked imports."""

from dataclasses import replace

import jax
import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.errors import CheckpointError
from mbdpo_core.noise import draw_numpy
from mbdpo_core.params import param_shapes
from mbdpo_jax import Agent
from mbdpo_jax import agent as agent_module


def random_batch(cfg, rng):
    H, B, A = cfg.horizon, cfg.batch_size, cfg.action_dim
    return Batch(
        obs=rng.standard_normal((H + 1, B, cfg.obs_shape[0])).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        reward=rng.standard_normal((H, B, 1)).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
    )


def _compiled() -> dict[str, int]:
    """Programs in the in-memory caches of the jitted act and update (one per config/shape)."""
    return {"act": agent_module._act._cache_size(), "update": agent_module._train._cache_size()}


@pytest.fixture(scope="module")
def trained(tiny):
    """An agent after a few updates and acts (module-scoped: compiled once)."""
    cfg = load_config([*tiny, "num_bins=21"])
    agent = Agent(cfg)
    agent.compiled_before = _compiled()
    rng = np.random.default_rng(0)
    for i in range(3):
        agent.act(rng.standard_normal(cfg.obs_shape).astype(np.float32), i == 0, False)
        agent.update(random_batch(cfg, rng))
    return agent


def test_act_and_update_compile_once(trained):
    cfg, rng = trained.cfg, np.random.default_rng(1)

    def traced(name):
        return _compiled()[name] - trained.compiled_before[name]

    assert traced("act") == 1 and traced("update") == 1
    for t0, eval_mode in ((True, True), (False, False), (False, True)):
        action = trained.act(rng.standard_normal(cfg.obs_shape).astype(np.float32), t0, eval_mode)
        assert action.shape == (cfg.action_dim,) and np.all(np.abs(action) <= 1.0)
    metrics = trained.update(random_batch(cfg, rng))
    Agent(replace(cfg, seed=9)).act(np.zeros(cfg.obs_shape, np.float32), True, True)  # shared
    assert traced("act") == 1 and traced("update") == 1
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())


def _adam(p, g, m, v, step, lr, eps):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    mhat, vhat = m / (1 - 0.9**step), v / (1 - 0.999**step)
    return p - lr * mhat / (np.sqrt(vhat) + eps), m, v


def test_update_equals_numpy_clip_adam_polyak(trained):
    """Parameters after update_with_noise == numpy clip + Adam (encoder lr scaled) + Polyak,
    applied to the gradients that grads_with_noise reports."""
    cfg, rng = trained.cfg, np.random.default_rng(2)
    batch, noise = random_batch(cfg, rng), draw_numpy("update", cfg, rng)
    before, _ = trained.state_dict()
    grads = trained.grads_with_noise(batch, noise)
    assert set(grads) == {k for k in param_shapes(cfg) if not k.startswith("target_q.")}
    trained.update_with_noise(batch, noise)
    after, meta = trained.state_dict()
    step = meta["optim_step"]["model"]
    for group, eps in (("model", 1e-8), ("pi", 1e-5)):
        names = [k for k in grads if k.startswith("pi.") == (group == "pi")]
        norm = np.sqrt(sum(np.sum(grads[k].astype(np.float64) ** 2) for k in names))
        factor = min(1.0, cfg.grad_clip_norm / (norm + 1e-6))
        for k in names:
            lr = cfg.lr * (cfg.enc_lr_scale if k.startswith("encoder.") else 1.0)
            m0, v0 = before[f"optim/{group}/{k}/exp_avg"], before[f"optim/{group}/{k}/exp_avg_sq"]
            p, m, v = _adam(before[f"params/{k}"], grads[k] * factor, m0, v0, step, lr, eps)
            np.testing.assert_allclose(after[f"params/{k}"], p, atol=2e-6, err_msg=k)
            np.testing.assert_allclose(after[f"optim/{group}/{k}/exp_avg"], m, atol=1e-6)
    for k in (k for k in param_shapes(cfg) if k.startswith("target_q.")):
        online = after[f"params/{k[len('target_') :]}"]
        expected = before[f"params/{k}"] + cfg.tau * (online - before[f"params/{k}"])
        np.testing.assert_allclose(after[f"params/{k}"], expected, atol=1e-6)


def test_state_dict_naming(trained):
    arrays, meta = trained.state_dict()
    cfg = trained.cfg
    shapes = param_shapes(cfg)
    expected = {f"params/{k}" for k in shapes} | {"agent/prev_plan"}
    for k in shapes:
        if not k.startswith("target_q."):
            group = "pi" if k.startswith("pi.") else "model"
            expected |= {f"optim/{group}/{k}/exp_avg", f"optim/{group}/{k}/exp_avg_sq"}
    assert set(arrays) == expected
    assert meta["backend"] == "jax"
    assert meta["optim_step"]["model"] == meta["optim_step"]["pi"] > 0
    assert set(meta["energy_stats"]) == {"mean", "std"} and meta["running_scale"] >= 1.0
    assert np.asarray(meta["rng"]["key"], np.uint32).shape == (2,)


def test_checkpoint_roundtrip_gives_identical_state_and_actions(trained, tmp_path):
    cfg, rng = trained.cfg, np.random.default_rng(3)
    trained.save(tmp_path / "ckpt", extra={"loop": {"step": 7}})
    other = Agent(replace(cfg, seed=123))
    meta = other.load(tmp_path / "ckpt")
    assert meta["loop"] == {"step": 7}
    a1, m1 = trained.state_dict()
    a2, m2 = other.state_dict()
    assert set(a1) == set(a2)
    assert {**m1, "config": None} == {**m2, "config": None}  # the configs differ in the seed
    for k in a1:
        np.testing.assert_array_equal(a1[k], a2[k], err_msg=k)
    obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
    for t0 in (False, True):  # same key: same noise in training mode too
        np.testing.assert_array_equal(trained.act(obs, t0, False), other.act(obs, t0, False))
    batch = random_batch(cfg, rng)
    assert trained.update(batch) == other.update(batch)


def test_import_params_reports_every_mismatch(trained):
    params = trained.export_params()
    params.pop("reward.0.bias")
    params["extra.weight"] = np.zeros(3, np.float32)
    params["q.0.weight"] = np.zeros((5, 1, 1), np.float32)
    with pytest.raises(CheckpointError) as err:
        trained.import_params(params)
    text = str(err.value)
    assert "missing (1): reward.0.bias" in text
    assert "unexpected (1): extra.weight" in text
    assert "q.0.weight: checkpoint (5, 1, 1) vs agent" in text


def test_same_seed_same_initial_parameters(tiny):
    cfg = load_config([*tiny, "num_bins=21"])
    a, b = Agent(replace(cfg, seed=4)).export_params(), Agent(replace(cfg, seed=4)).export_params()
    c = Agent(replace(cfg, seed=5)).export_params()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert jax.tree.structure(a) == jax.tree.structure(c)


def test_update_noise_has_the_batch_size(trained):
    """A batch smaller than cfg.batch_size: the update's noise is drawn at the batch's B."""
    cfg = trained.cfg
    batch = random_batch(replace(cfg, batch_size=3), np.random.default_rng(4))
    assert batch.action.shape[1] == 3 != cfg.batch_size
    metrics = Agent(cfg).update(batch)
    assert all(np.isfinite(v) for v in metrics.values())


def test_get_state_set_state_round_trip(trained):
    state = trained.get_state()
    other = Agent(replace(trained.cfg, seed=77))
    other.set_state(state)
    again = other.get_state()
    for k in state.params:
        np.testing.assert_array_equal(state.params[k], again.params[k], err_msg=k)
    for group in ("model", "pi"):
        for k, (m, v) in state.adam[group].items():
            np.testing.assert_array_equal(m, again.adam[group][k][0], err_msg=k)
            np.testing.assert_array_equal(v, again.adam[group][k][1], err_msg=k)
    assert again.optim_step == state.optim_step and again.rng == state.rng
    assert again.running_scale == state.running_scale
    assert again.energy_stats == state.energy_stats
    np.testing.assert_array_equal(again.prev_plan, state.prev_plan)
