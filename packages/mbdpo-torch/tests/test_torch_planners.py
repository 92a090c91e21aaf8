"""Planners vs the numpy oracle (mbdpo_core.reference.planning), and on a model whose best
action is known by construction of its weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbdpo_core.noise import draw, draw_numpy
from mbdpo_core.params import init_params
from mbdpo_core.reference import planning as ref
from mbdpo_torch import WorldModel, make_planner
from mbdpo_torch.noise import Sampler, to_device
from mbdpo_torch.params_io import import_params
from mbdpo_torch.runtime import make_rng

CPU = torch.device("cpu")
REF = {"diffusion": ref.diffusion_plan, "mppi": ref.mppi_plan, "policy": ref.policy_plan}
CASES = [
    ("diffusion", (), "cheetah-run"),
    ("diffusion", ("episodic=true",), "cheetah-run"),
    ("diffusion", (), "mt30"),
    ("diffusion", ("use_score_network=true", "score_only_inference=true"), "mt30"),
    ("mppi", (), "cheetah-run"),
    ("mppi", (), "mt30"),
    ("policy", (), "cheetah-run"),
    ("policy", (), "mt30"),
]


@pytest.mark.parametrize(("planner", "over", "task_name"), CASES)
@pytest.mark.parametrize("eval_mode", [False, True])
def test_planner_matches_reference(tiny, rparams, planner, over, task_name, eval_mode):
    cfg = tiny(f"planner={planner}", *over, task=task_name)
    params = rparams(cfg, 5)
    model = WorldModel(cfg)
    import_params(model, params)
    rng = np.random.default_rng(6)
    z = ref.model.encode(params, cfg, rng.normal(0, 1, cfg.obs_shape), 2 if cfg.multitask else None)
    prev = rng.uniform(-1, 1, (cfg.horizon, cfg.action_dim))
    task = 2 if cfg.multitask else None
    stats = (0.2, 0.8)
    plan = make_planner(cfg)
    for t0 in (True, False):
        noise = draw_numpy("plan", cfg, rng)
        want_a, want_plan = REF[planner](params, cfg, z, prev, t0, eval_mode, task, noise, stats)
        task_t = None if task is None else torch.tensor([task])
        got_a, got_plan = plan(
            model,
            torch.as_tensor(z[None], dtype=torch.float32),
            torch.as_tensor(prev, dtype=torch.float32),
            t0,
            eval_mode,
            task_t,
            to_device(noise, CPU),
            torch.tensor(stats),
        )
        assert got_a.shape == (cfg.action_dim,) and got_plan.shape == prev.shape
        np.testing.assert_allclose(got_a.numpy(), want_a, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(got_plan.numpy(), want_plan, rtol=1e-4, atol=2e-5)


def known_best_params(cfg, best, prior):
    """Weights whose value is highest at the action `best` and whose policy prior's mean is
    `prior` (single task, two hidden layers).

    Every weight is zero (LayerNorm weights one) except: reward layer 0 computes the units
    +-s (a_i - best_i) and a constant pair +-1, so after its LayerNorm the constant unit is
    sqrt(M / 2) / sqrt(s^2 |a - best|^2 + 1), largest at best; reward layer 1 passes that unit
    on as a pair +-t beside a constant pair (its normalised value rises with t); the last layer
    turns it into logits beta * centres * h, whose decoded reward rises with h. Dynamics, F and
    Q are then constant, and pi outputs its bias (atanh(prior), log-std -1).
    """
    params = {k: np.zeros_like(v) for k, v in init_params(cfg, np.random.default_rng(0)).items()}
    for name in params:
        if name.endswith("ln.weight"):
            params[name][...] = 1.0
    Z, A, s = cfg.latent_dim, cfg.action_dim, 4.0
    w0, b0 = params["reward.0.weight"], params["reward.0.bias"]
    for i in range(A):
        w0[Z + i, 2 * i], b0[2 * i] = s, -s * best[i]
        w0[Z + i, 2 * i + 1], b0[2 * i + 1] = -s, s * best[i]
    b0[2 * A], b0[2 * A + 1] = 1.0, -1.0
    w1, b1 = params["reward.1.weight"], params["reward.1.bias"]
    w1[2 * A, 0], w1[2 * A, 1] = 1.0, -1.0
    b1[2], b1[3] = 1.0, -1.0
    params["reward.2.weight"][0] = 0.02 * np.linspace(cfg.vmin, cfg.vmax, cfg.num_bins)
    lo, hi = cfg.log_std_min, cfg.log_std_max
    raw = np.arctanh(2.0 * (-1.0 - lo) / (hi - lo) - 1.0)
    params["pi.2.bias"] = np.concatenate([np.arctanh(prior), np.full(A, raw)]).astype(np.float32)
    return params


@pytest.mark.parametrize("planner", ["diffusion", "mppi", "policy"])
def test_planner_finds_the_best_action(tiny, planner):
    cfg = tiny(
        f"planner={planner}",
        "diffusion_steps=20",
        "diffusion_num_samples=256",
        "diffusion_num_elites=32",
        "num_samples=256",
        "num_elites=32",
        "iterations=6",
        task="reacher-easy",
    )
    best, prior = np.array([0.4, -0.3]), np.array([-0.5, 0.5])  # the prior is not the answer
    model = WorldModel(cfg)
    import_params(model, known_best_params(cfg, best, prior))
    sampler = Sampler(make_rng(0))
    plan = make_planner(cfg)
    z = torch.zeros(1, cfg.latent_dim)
    prev = torch.zeros(cfg.horizon, cfg.action_dim)
    stats = torch.tensor([0.0, 1.0])
    for step in range(3):  # a few acts with the warm start
        noise = draw("plan", cfg, sampler)
        action, prev = plan(model, z, prev, step == 0, True, None, noise, stats)
    # the searches find the best action; the policy planner acts with the prior, not the values
    np.testing.assert_allclose(action.numpy(), prior if planner == "policy" else best, atol=0.05)
