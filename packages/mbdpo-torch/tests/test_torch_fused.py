"""The fused kernels (mbdpo_torch.fused) against the numpy oracle, incl. deeper MLPs.

The fused computation is the only one the backend has: the planning value estimate with the
first-step [z0, e] part shared and the three heads' layers stacked, the pair-only bootstrap,
the reward + Q first layers as one matmul and F's latent part shared. Core builds every MLP
with two hidden layers; the deeper models here are built by hand (module by module) to check
that nothing assumes that depth.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from mbdpo_core.metrics import LOSS_TERMS
from mbdpo_core.noise import draw_numpy
from mbdpo_core.params import Layer, module_layers
from mbdpo_core.reference import losses as ref_losses
from mbdpo_core.reference import model as ref_model
from mbdpo_core.reference import planning as ref_planning
from mbdpo_torch import WorldModel, make_planner
from mbdpo_torch.fused import energy_from_part, energy_latent_part, reward_and_q
from mbdpo_torch.layers import MLP
from mbdpo_torch.losses import device_batch, policy_loss, world_model_loss
from mbdpo_torch.noise import to_device
from mbdpo_torch.params_io import import_params
from mbdpo_torch.value import value_estimate

CPU = torch.device("cpu")
CASES = [((), "cheetah-run"), ((), "mt30"), (("episodic=true",), "cheetah-run")]
TOL = {"rtol": 1e-4, "atol": 2e-5}
DEEPER = ("dynamics", "reward", "energy", "pi")


def t(x, dtype=torch.float32):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def model_for(cfg, params):
    model = WorldModel(cfg)
    import_params(model, params)
    return model


def deeper_model(cfg, rng: np.random.Generator):
    """A WorldModel whose dynamics, reward, energy, pi and Q MLPs have three hidden layers of
    widths (M, 24, M), and random canonical parameters for it."""
    model = WorldModel(cfg)
    layers = module_layers(cfg)
    M = cfg.mlp_dim

    def deeper(module):
        first, *rest = layers[module]
        return [first, Layer(M, 24, True), Layer(24, M, True), *rest]

    for module in DEEPER:
        model.nets[module] = MLP(deeper(module), simnorm_dim=cfg.simnorm_dim)
    model.nets["q"] = MLP(deeper("q"), (cfg.num_q,))
    model.nets["target_q"] = MLP(deeper("q"), (cfg.num_q,)).requires_grad_(False)
    params = {}
    for name, p in model._canonical_parameters().items():
        if name.endswith("ln.weight"):
            value = 1.0 + 0.2 * rng.standard_normal(p.shape)
        elif name.endswith("bias"):
            value = 0.2 * rng.standard_normal(p.shape)
        elif name == "task_emb.weight":
            value = 0.6 * rng.standard_normal(p.shape)
        else:
            value = rng.standard_normal(p.shape) / np.sqrt(p.shape[-2])
            value = 0.3 * value if name.startswith("pi.") and name.endswith(".weight") else value
        params[name] = value.astype(np.float32)
    import_params(model, params)
    return model, params


def check_value_estimate(cfg, model, params, rng):
    task = 1 if cfg.multitask else None
    task_t = None if task is None else torch.tensor([task])
    z0 = ref_model.encode(params, cfg, rng.normal(0, 1, cfg.obs_shape), task)
    N = 32
    actions = rng.uniform(-1, 1, (N, cfg.horizon, cfg.action_dim))
    stats = (0.1, 0.9)
    for dropout in (False, True):  # with dropout in the bootstrap pair: the score target
        noise = draw_numpy("value", cfg, rng, N)
        if dropout:
            keep = (rng.random((2, N, cfg.mlp_dim)) < 0.7).astype(np.float32)
            noise = dataclasses.replace(noise, q_keep=keep)
        want = ref_planning.value_estimate(
            params, cfg, np.repeat(z0[None], N, 0), actions, task, noise, stats
        )
        with torch.no_grad():
            got = value_estimate(
                model, t(z0[None]), t(actions), task_t, to_device(noise, CPU), t(stats)
            )
        assert got.shape == (N, 1)
        np.testing.assert_allclose(got.numpy(), want, **TOL)


@pytest.mark.parametrize(("over", "task_name"), CASES)
def test_value_estimate_matches_oracle(tiny, rparams, over, task_name):
    cfg = tiny(*over, task=task_name)
    params = rparams(cfg, 3)
    check_value_estimate(cfg, model_for(cfg, params), params, np.random.default_rng(0))


@pytest.mark.parametrize(("over", "task_name"), CASES[:2])
def test_update_kernels_match_oracle(tiny, rparams, over, task_name):
    cfg = tiny(*over, task=task_name)
    params = rparams(cfg, 4)
    model = model_for(cfg, params)
    rng = np.random.default_rng(1)
    H, B, A = 2, 5, cfg.action_dim
    task = rng.integers(0, cfg.n_tasks, B) if cfg.multitask else None
    z = ref_model.encode(params, cfg, rng.normal(0, 1, (H, B, *cfg.obs_shape)), task)
    a = rng.uniform(-1, 1, (H, B, A))
    tt = None if task is None else t(task, torch.long)
    keep = (rng.random((cfg.num_q, H, B, cfg.mlp_dim)) < 0.7).astype(np.float32)
    r, q = reward_and_q(model, t(z), t(a), tt, t(keep))
    np.testing.assert_allclose(r.detach().numpy(), ref_model.reward(params, cfg, z, a, task), **TOL)
    want_q = ref_model.Q(params, cfg, z, a, task, keep=keep)
    np.testing.assert_allclose(q.detach().numpy(), want_q, **TOL)
    cands = rng.uniform(-1, 1, (3, H, B, A))  # F's latent part broadcast over candidates
    f = energy_from_part(model, energy_latent_part(model, t(z), tt), t(cands))
    want_f = np.stack([ref_model.F(params, cfg, z, c, task) for c in cands])
    np.testing.assert_allclose(f.detach().numpy(), want_f, **TOL)


@pytest.mark.parametrize(("over", "task_name"), [*CASES, (("use_score_network=true",), "mt30")])
def test_deeper_mlps_match_oracle(tiny, rbatch, over, task_name):
    cfg = tiny(*over, task=task_name)
    rng = np.random.default_rng(7)
    model, params = deeper_model(cfg, rng)
    assert "dynamics.3.weight" in params and "q.3.weight" in params
    check_value_estimate(cfg, model, params, rng)

    # both searching planners, with policy rollouts
    task = 2 if cfg.multitask else None
    task_t = None if task is None else torch.tensor([task])
    z = ref_model.encode(params, cfg, rng.normal(0, 1, cfg.obs_shape), task)
    prev = rng.uniform(-1, 1, (cfg.horizon, cfg.action_dim))
    for name, ref_plan in (
        ("diffusion", ref_planning.diffusion_plan),
        ("mppi", ref_planning.mppi_plan),
    ):
        pcfg = tiny(*over, f"planner={name}", task=task_name)
        noise = draw_numpy("plan", pcfg, rng)
        want = ref_plan(params, pcfg, z, prev, False, False, task, noise, (0.2, 0.8))
        model.cfg = pcfg
        got = make_planner(pcfg)(
            model, t(z[None]), t(prev), False, False, task_t, to_device(noise, CPU), t((0.2, 0.8))
        )
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g.numpy(), w, err_msg=name, **TOL)
    model.cfg = cfg

    # the update's losses and the policy objective
    batch = rbatch(cfg, 2)
    noise = draw_numpy("update", cfg, rng)
    want = ref_losses.world_model_losses(params, cfg, batch, noise, (0.3, 1.7))
    tb = device_batch(batch, cfg, CPU)
    total, aux = world_model_loss(model, tb, to_device(noise, CPU), t((0.3, 1.7)))
    np.testing.assert_allclose(aux["zs"].detach().numpy(), want["zs"], **TOL)
    np.testing.assert_allclose(aux["td"].numpy(), want["td"], rtol=1e-4, atol=1e-4)
    for key in LOSS_TERMS:
        np.testing.assert_allclose(float(aux[key].detach()), want[key], err_msg=key, **TOL)
    np.testing.assert_allclose(float(total.detach()), want["total_loss"], **TOL)
    task_b = None if batch.task is None else np.asarray(batch.task)
    want_pi, want_scale, _ = ref_losses.policy_loss(params, cfg, want["zs"], noise, 1.3, task_b)
    loss, info = policy_loss(model, t(want["zs"]), tb.task, to_device(noise, CPU), t(1.3))
    np.testing.assert_allclose(float(loss.detach()), want_pi, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(info["pi_scale"]), want_scale, rtol=1e-5)
