"""Loss values of one update vs the numpy oracle (mbdpo_core.reference.losses) on a tiny batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbdpo_core.metrics import LOSS_TERMS, UPDATE_METRICS
from mbdpo_core.noise import draw_numpy
from mbdpo_core.reference import losses as ref
from mbdpo_torch import Agent
from mbdpo_torch.losses import device_batch, policy_loss, world_model_loss
from mbdpo_torch.noise import to_device

CASES = [
    ((), "cheetah-run"),
    (("energy_pairing=published",), "mt30"),
    (("episodic=true", "use_score_network=true"), "cheetah-run"),
    (("use_score_network=true", "energy_pairing=published"), "mt30"),
]
CPU = torch.device("cpu")


def setup(tiny, rparams, rbatch, over, task_name):
    cfg = tiny(*over, task=task_name)
    params = rparams(cfg, 1)
    agent = Agent(cfg)
    agent.import_params(params)
    batch = rbatch(cfg, 2)
    noise = draw_numpy("update", cfg, np.random.default_rng(4))
    return cfg, params, agent, batch, noise


@pytest.mark.parametrize(("over", "task_name"), CASES)
def test_world_model_loss_matches_reference(tiny, rparams, rbatch, over, task_name):
    cfg, params, agent, batch, noise = setup(tiny, rparams, rbatch, over, task_name)
    stats = (0.3, 1.7)
    want = ref.world_model_losses(params, cfg, batch, noise, stats)
    tb, tn = device_batch(batch, cfg, CPU), to_device(noise, CPU)
    total, aux = world_model_loss(agent.model, tb, tn, torch.tensor(stats))
    if cfg.use_score_network:
        assert aux["score_loss"] > 0
    np.testing.assert_allclose(aux["zs"].detach().numpy(), want["zs"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(aux["td"].numpy(), want["td"], rtol=1e-4, atol=1e-4)
    for key in (*LOSS_TERMS, "total_loss"):
        got = float((total if key == "total_loss" else aux[key]).detach())
        np.testing.assert_allclose(got, want[key], rtol=1e-4, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(
        aux["energy_stats"].numpy(),
        [want["energy_mean"], want["energy_std"]],
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.parametrize(("over", "task_name"), CASES[:2])
def test_policy_loss_matches_reference(tiny, rparams, rbatch, over, task_name):
    cfg, params, agent, batch, noise = setup(tiny, rparams, rbatch, over, task_name)
    zs = ref.world_model_losses(params, cfg, batch, noise)["zs"]
    task = None if batch.task is None else np.asarray(batch.task)
    want_loss, want_scale, want_info = ref.policy_loss(params, cfg, zs, noise, 1.3, task)
    tb, tn = device_batch(batch, cfg, CPU), to_device(noise, CPU)
    zs_t = torch.as_tensor(zs, dtype=torch.float32)
    loss, info = policy_loss(agent.model, zs_t, tb.task, tn, torch.tensor(1.3))
    np.testing.assert_allclose(float(loss.detach()), want_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(info["pi_scale"]), want_scale, rtol=1e-5)
    for key in ("pi_entropy", "pi_scaled_entropy"):
        np.testing.assert_allclose(float(info[key]), want_info[key], rtol=1e-4, err_msg=key)


def test_update_metrics_and_zero_gradient_adam(tiny, rparams, rbatch):
    cfg, params, agent, batch, noise = setup(tiny, rparams, rbatch, (), "cheetah-run")
    want = ref.world_model_losses(params, cfg, batch, noise)
    metrics = agent.update_with_noise(batch, noise)
    assert list(metrics) == list(UPDATE_METRICS)
    assert all(isinstance(v, float) for v in metrics.values())
    for key in (*LOSS_TERMS, "total_loss", "energy_mean", "energy_std"):
        np.testing.assert_allclose(metrics[key], want[key], rtol=1e-4, atol=1e-6, err_msg=key)
    # the score net gets no gradient (use_score_network=false): Adam still counts a zero grad
    after = agent.export_params()
    optim, pi_optim = agent.optimizers
    for name, p in agent.model._canonical_parameters().items():
        if name.startswith("target_q."):
            continue
        state = (pi_optim if name.startswith("pi.") else optim).state[p]
        assert float(state["step"]) == 1.0, name
        if name.startswith("score."):
            np.testing.assert_array_equal(after[name], params[name])
            assert not state["exp_avg"].any()
    changed = [n for n in after if not np.array_equal(after[n], params[n])]
    assert any(n.startswith("pi.") for n in changed)
    assert any(n.startswith("target_q.") for n in changed)
    assert any(n.startswith("encoder.") for n in changed)


def test_update_draws_noise_at_the_batch_size(tiny, rbatch):
    cfg = tiny()  # batch_size=6
    agent = Agent(cfg)
    batch = rbatch(tiny("batch_size=4"), 0)
    assert np.isfinite(agent.update(batch)["total_loss"])
