"""Loss values of one update vs the numpy oracle (mbdpo_core.reference.losses) on a tiny batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbdpo_core.noise import draw_update_noise
from mbdpo_core.reference import losses as ref
from mbdpo_torch import Agent
from mbdpo_torch.losses import (
    energy_loss,
    model_losses,
    policy_loss,
    rollout,
    score_loss,
    td_targets,
)
from mbdpo_torch.noise import to_torch

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
    noise = draw_update_noise(cfg, np.random.default_rng(4))
    return cfg, params, agent, batch, noise


@pytest.mark.parametrize(("over", "task_name"), CASES)
def test_world_model_losses_match_reference(tiny, rparams, rbatch, over, task_name):
    cfg, params, agent, batch, noise = setup(tiny, rparams, rbatch, over, task_name)
    stats = (0.3, 1.7)
    want = ref.world_model_losses(params, cfg, batch, noise, stats)
    model, tb, tn = agent.model, agent._batch(batch), to_torch(noise, CPU)
    stats_t = torch.tensor(stats)
    next_z, td = td_targets(model, tb, tn)
    zs = rollout(model, tb)
    got = model_losses(model, tb, zs, next_z, td, tn.q_keep)
    got["energy_loss"], new_stats = energy_loss(model, zs, tb, tn, stats_t)
    if cfg.use_score_network:
        task0 = None if tb.task is None else tb.task[:1]
        got["score_loss"] = score_loss(model, zs[0, 0], task0, tn.score, stats_t)
        assert got["score_loss"] > 0
    np.testing.assert_allclose(zs.detach().numpy(), want["zs"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(td.numpy(), want["td"], rtol=1e-4, atol=1e-4)
    for key, value in got.items():
        np.testing.assert_allclose(
            float(value.detach()), want[key], rtol=1e-4, atol=1e-5, err_msg=key
        )
    np.testing.assert_allclose(
        new_stats.numpy(), [want["energy_mean"], want["energy_std"]], rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize(("over", "task_name"), CASES[:2])
def test_policy_loss_matches_reference(tiny, rparams, rbatch, over, task_name):
    cfg, params, agent, batch, noise = setup(tiny, rparams, rbatch, over, task_name)
    zs = ref.world_model_losses(params, cfg, batch, noise)["zs"]
    task = None if batch.task is None else np.asarray(batch.task)
    want_loss, want_scale, want_info = ref.policy_loss(params, cfg, zs, noise, 1.3, task)
    tb, tn = agent._batch(batch), to_torch(noise, CPU)
    loss, scale, info = policy_loss(
        agent.model, torch.as_tensor(zs, dtype=torch.float32), tb.task, tn, torch.tensor(1.3)
    )
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(scale), want_scale, rtol=1e-5)
    for key in ("pi_entropy", "pi_scaled_entropy"):
        np.testing.assert_allclose(float(info[key]), want_info[key], rtol=1e-4, err_msg=key)


def test_update_metrics_and_zero_gradient_adam(tiny, rparams, rbatch):
    cfg, params, agent, batch, noise = setup(tiny, rparams, rbatch, (), "cheetah-run")
    want = ref.world_model_losses(params, cfg, batch, noise)
    metrics = agent.update_with_noise(batch, noise)
    assert all(isinstance(v, float) for v in metrics.values())
    for key in (
        "consistency_loss",
        "reward_loss",
        "value_loss",
        "energy_loss",
        "total_loss",
        "energy_mean",
        "energy_std",
    ):
        np.testing.assert_allclose(metrics[key], want[key], rtol=1e-4, atol=1e-6, err_msg=key)
    # the score net gets no gradient (use_score_network=false): Adam still counts a zero grad
    after = agent.export_params()
    for name, p in agent.model.canonical_parameters().items():
        if name.startswith("target_q."):
            continue
        optim = agent.pi_optim if name.startswith("pi.") else agent.optim
        assert float(optim.state[p]["step"]) == 1.0, name
        if name.startswith("score."):
            np.testing.assert_array_equal(after[name], params[name])
            assert not optim.state[p]["exp_avg"].any()
    changed = [n for n in after if not np.array_equal(after[n], params[n])]
    assert any(n.startswith("pi.") for n in changed)
    assert any(n.startswith("target_q.") for n in changed)
    assert any(n.startswith("encoder.") for n in changed)
