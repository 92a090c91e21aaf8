"""grads_with_noise: the unclipped gradients of one update, without changing the agent."""

from __future__ import annotations

import numpy as np
from mbdpo_core.noise import draw_numpy
from mbdpo_torch import Agent


def test_grads_with_noise_leaves_agent_unchanged(tiny, rparams, rbatch):
    cfg = tiny("use_score_network=true")
    agent = Agent(cfg)
    agent.import_params(rparams(cfg))
    agent.update(rbatch(cfg, 0))  # non-empty Adam state, stats and scale away from the init
    before_arrays, before_meta = agent.state_dict()
    batch, noise = rbatch(cfg, 1), draw_numpy("update", cfg, np.random.default_rng(3))

    grads = agent.grads_with_noise(batch, noise)

    after_arrays, after_meta = agent.state_dict()
    assert before_meta == after_meta
    for name, value in before_arrays.items():
        np.testing.assert_array_equal(after_arrays[name], value, err_msg=name)
    params = agent.export_params()
    assert set(grads) == {k for k in params if not k.startswith("target_q.")}
    for name, g in grads.items():
        assert g.shape == params[name].shape and np.isfinite(g).all(), name
    assert np.abs(grads["pi.0.weight"]).max() > 0 and np.abs(grads["score.0.weight"]).max() > 0

    # the same update applied for real: Adam's first moment moves by 0.1 x the clipped gradient
    metrics = agent.update_with_noise(batch, noise)
    after_arrays, _ = agent.state_dict()
    for name, kind, norm in (
        ("reward.0.weight", "model", metrics["grad_norm"]),
        ("pi.0.weight", "pi", metrics["pi_grad_norm"]),
    ):
        key = f"optim/{kind}/{name}/exp_avg"
        step = (after_arrays[key] - 0.9 * before_arrays[key]) / 0.1
        clipped = grads[name] * min(1.0, cfg.grad_clip_norm / (norm + 1e-6))
        np.testing.assert_allclose(step, clipped, rtol=1e-3, atol=1e-6, err_msg=name)
