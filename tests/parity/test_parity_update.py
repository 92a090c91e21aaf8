"""Cross-backend parity of one update: every loss term and metric, the gradients in canonical
naming, and the parameters and Adam moments after the step (UPDATE_TOL, from the error budget in
parity_budget.py), from the same canonical parameters and the same numpy UpdateNoise; the losses
also against the numpy oracle."""

import mbdpo_jax
import mbdpo_torch
import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.metrics import LOSS_TERMS, UPDATE_METRICS
from mbdpo_core.noise import draw_numpy
from mbdpo_core.reference import losses as ref
from parity_budget import UPDATE_TOL

VARIANTS = {
    "single": [],
    "multitask_published": ["task=mt30", "task_dim=8", "energy_pairing=published"],
    "episodic_score": ["episodic=true", "use_score_network=true"],
}
LOSSES = (*LOSS_TERMS, "total_loss", "energy_mean", "energy_std")
"""The metrics the numpy oracle computes too."""


def random_batch(cfg, rng):
    H, B, A = cfg.horizon, cfg.batch_size, cfg.action_dim
    return Batch(
        obs=rng.standard_normal((H + 1, B, cfg.obs_shape[0])).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        reward=(rng.standard_normal((H, B, 1)) * 3).astype(np.float32),
        terminated=(rng.random((H, B, 1)) < 0.3).astype(np.float32)
        if cfg.episodic
        else np.zeros((H, B, 1), np.float32),
        task=rng.integers(0, cfg.n_tasks, cfg.batch_size) if cfg.multitask else None,
    )


def agents(cfg, params):
    out = {"torch": mbdpo_torch.Agent(cfg), "jax": mbdpo_jax.Agent(cfg)}
    for agent in out.values():
        agent.import_params(params)
    return out


def assert_arrays_close(a, b, tol, what, scaled=False):
    """Max abs difference per name <= tol (scaled: <= tol x max(1, |b|), for values whose
    float32 rounding grows with their magnitude, e.g. a score loss of ~150 or its gradients)."""
    assert set(a) == set(b), f"{what}: names differ: {sorted(set(a) ^ set(b))}"
    diffs = {}
    for k in a:
        x, y = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
        scale = np.maximum(1.0, np.abs(y)) if scaled else 1.0
        diffs[k] = float(np.max(np.abs(x - y) / scale, initial=0.0))
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    assert not bad, f"{what}: max abs differences above {tol}: {bad}"
    return max(diffs.values())


@pytest.fixture(scope="module", params=list(VARIANTS))
def one_update(request, tiny, random_params):
    """Both agents after one update from the same parameters, batch and noise."""
    cfg = load_config([*tiny, *VARIANTS[request.param]])
    params = random_params(cfg)
    rng = np.random.default_rng(7)
    batch, noise = random_batch(cfg, rng), draw_numpy("update", cfg, rng)
    ag = agents(cfg, params)
    grads = {k: a.grads_with_noise(batch, noise) for k, a in ag.items()}
    metrics = {k: a.update_with_noise(batch, noise) for k, a in ag.items()}
    states = {k: a.state_dict() for k, a in ag.items()}
    return cfg, params, batch, noise, grads, metrics, states


def test_losses_and_metrics_agree(one_update):
    cfg, params, batch, noise, _, metrics, _ = one_update
    assert tuple(metrics["torch"]) == tuple(metrics["jax"]) == UPDATE_METRICS
    assert_arrays_close(metrics["torch"], metrics["jax"], UPDATE_TOL, "metrics", scaled=True)
    expected = ref.world_model_losses(params, cfg, batch, noise)
    oracle = {k: expected[k] for k in LOSSES}
    for backend in ("torch", "jax"):
        got = {k: metrics[backend][k] for k in LOSSES}
        assert_arrays_close(got, oracle, UPDATE_TOL, f"{backend} losses vs oracle", scaled=True)


def test_gradients_agree(one_update):
    _, params, _, _, grads, _, _ = one_update
    assert set(grads["jax"]) == {k for k in params if not k.startswith("target_q.")}
    assert_arrays_close(grads["torch"], grads["jax"], UPDATE_TOL, "gradients", scaled=True)


def test_parameters_and_optimizer_state_agree_after_one_update(one_update):
    *_, states = one_update
    (t_arrays, t_meta), (j_arrays, j_meta) = states["torch"], states["jax"]
    worst = assert_arrays_close(t_arrays, j_arrays, UPDATE_TOL, "state after one update")
    assert worst <= UPDATE_TOL
    assert t_meta["optim_step"] == j_meta["optim_step"] == {"model": 1, "pi": 1}
    np.testing.assert_allclose(t_meta["running_scale"], j_meta["running_scale"], atol=UPDATE_TOL)
    for key in ("mean", "std"):
        np.testing.assert_allclose(
            t_meta["energy_stats"][key], j_meta["energy_stats"][key], atol=UPDATE_TOL
        )


def test_parity_check_detects_one_perturbed_weight(tiny, random_params):
    """Perturb a single weight in the JAX agent only: the after-update comparison must fail."""
    cfg = load_config(tiny)
    params = random_params(cfg)
    rng = np.random.default_rng(8)
    batch, noise = random_batch(cfg, rng), draw_numpy("update", cfg, rng)
    ag = agents(cfg, params)
    perturbed = {k: v.copy() for k, v in params.items()}
    perturbed["reward.2.weight"][4, 50] += 1e-3
    ag["jax"].import_params(perturbed)
    for agent in ag.values():
        agent.update_with_noise(batch, noise)
    with pytest.raises(AssertionError, match="reward.2.weight"):
        assert_arrays_close(
            ag["torch"].state_dict()[0],
            ag["jax"].state_dict()[0],
            UPDATE_TOL,
            "state after one update",
        )


def test_an_update_of_another_batch_size(tiny, random_params):
    """The update noise follows the batch's own size in both backends (not cfg.batch_size)."""
    cfg = load_config(tiny)
    rng = np.random.default_rng(3)
    small = load_config([*tiny, "batch_size=3"])
    batch = random_batch(small, rng)
    for agent in agents(cfg, random_params(cfg)).values():
        metrics = agent.update(batch)
        assert tuple(metrics) == UPDATE_METRICS and np.isfinite(list(metrics.values())).all()
