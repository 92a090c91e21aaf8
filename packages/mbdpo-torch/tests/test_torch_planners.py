"""Planners vs the numpy oracle (mbdpo_core.reference.planning) and on a model whose best
action is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbdpo_core.noise import draw_diffusion_noise, draw_mppi_noise, draw_policy_noise
from mbdpo_core.reference import planning as ref
from mbdpo_torch import WorldModel, make_planner
from mbdpo_torch.math import bin_centres, symlog
from mbdpo_torch.noise import Drawer, to_torch
from mbdpo_torch.params_io import import_params

CPU = torch.device("cpu")
DRAW = {"diffusion": draw_diffusion_noise, "mppi": draw_mppi_noise, "policy": draw_policy_noise}
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
        noise = DRAW[planner](cfg, rng)
        want_a, want_plan = REF[planner](params, cfg, z, prev, t0, eval_mode, task, noise, stats)
        task_t = None if task is None else torch.tensor([task])
        got_a, got_plan = plan(
            model,
            torch.as_tensor(z[None], dtype=torch.float32),
            torch.as_tensor(prev, dtype=torch.float32),
            t0,
            eval_mode,
            task_t,
            to_torch(noise, CPU),
            torch.tensor(stats),
        )
        assert got_a.shape == (cfg.action_dim,) and got_plan.shape == prev.shape
        np.testing.assert_allclose(got_a.numpy(), want_a, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(got_plan.numpy(), want_plan, rtol=1e-4, atol=2e-5)


class KnownBestModel(WorldModel):
    """A model whose return is highest at a known action: r(a) = -4 ||a - a*||^2, z fixed,
    F = 0, Q = 0; the policy prior's mean is `prior` (a* for the policy planner)."""

    def __init__(self, cfg, best, prior):
        super().__init__(cfg)
        self.best, self.prior = best, prior

    def _logits(self, value):
        y = symlog(value)
        return -((bin_centres(self.cfg, value.device) - y) ** 2) / (2 * 0.5**2)

    def next(self, z, a, task):
        return z

    def reward(self, z, a, task):
        return self._logits(-4.0 * ((a - self.best) ** 2).sum(-1, keepdim=True))

    def F(self, z, a, task):
        return torch.zeros(*a.shape[:-1], 1)

    def Q(self, z, a, task, target=False, keep=None, members=None, detach=False):
        return self._logits(torch.zeros(self.cfg.num_q, *a.shape[:-1], 1))

    def pi_dist(self, z, task):
        mean = torch.atanh(self.prior).expand(*z.shape[:-1], self.cfg.action_dim)
        return mean, torch.full_like(mean, -1.0)


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
    best = torch.tensor([0.4, -0.3])
    prior = best if planner == "policy" else -best
    model = KnownBestModel(cfg, best, prior)
    drawer = Drawer(cfg, torch.Generator().manual_seed(0), CPU)
    plan = make_planner(cfg)
    z = torch.zeros(1, cfg.latent_dim)
    prev = torch.zeros(cfg.horizon, cfg.action_dim)
    for step in range(3):  # a few acts with the warm start
        action, prev = plan(
            model,
            z,
            prev,
            step == 0,
            True,
            None,
            drawer.plan(),
            torch.tensor([0.0, 1.0]),
            fast=False,
        )
    np.testing.assert_allclose(action.numpy(), best.numpy(), atol=0.05)
