"""Batched planning over N environments (docs/design.md#vectorised-acting): one
`plan_envs_with_noise` call over N = 3 observations with a bundle whose env axis stacks three
bundles gives, in each backend, the actions and warm starts of three single `plan_with_noise`
calls with those bundles, and the numpy oracle's; a second call carries each environment's warm
start (one environment restarting its episode)."""

from dataclasses import fields
from functools import partial

import mbdpo_jax
import mbdpo_torch
import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.noise import draw_numpy, expected_shapes
from mbdpo_core.reference import model as ref_model
from mbdpo_core.reference import planning as ref
from parity_budget import ACT_TOL

N_ENVS = 3
CASES = {
    "diffusion_mc": (["planner=diffusion"], ref.diffusion_plan),
    "diffusion_score_only": (
        ["planner=diffusion", "use_score_network=true", "score_only_inference=true"],
        ref.diffusion_plan,
    ),
    "mppi": (["planner=mppi"], ref.mppi_plan),
    "policy": (["planner=policy"], ref.policy_plan),
}
BACKENDS = {"torch": mbdpo_torch.Agent, "jax": mbdpo_jax.Agent}
# the same arithmetic on the same inputs: a batched call may differ from single calls only by
# the rounding of a differently blocked matmul
BATCH_TOL = 1e-5


def stack_envs(bundles):
    """One bundle with a leading env axis from one bundle per environment."""
    values = {}
    for f in fields(bundles[0]):
        parts = [getattr(b, f.name) for b in bundles]
        values[f.name] = None if parts[0] is None else np.stack(parts)
    return type(bundles[0])(**values)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", list(CASES))
def test_batched_planning_equals_single_calls(case, backend, tiny, random_params):
    overrides, oracle = CASES[case]
    cfg = load_config([*tiny, *overrides])
    params = random_params(cfg)
    batched = BACKENDS[backend](cfg)
    singles = [BACKENDS[backend](cfg) for _ in range(N_ENVS)]
    for agent in (batched, *singles):
        agent.import_params(params)
    rng = np.random.default_rng(5)
    draw = partial(draw_numpy, "plan", cfg)
    prev = np.zeros((N_ENVS, cfg.horizon, cfg.action_dim), np.float32)
    # call 1: every episode starts; call 2: env 1 restarts, the others use their warm start
    for t0, eval_mode in (([True] * N_ENVS, False), ([False, True, False], True)):
        obs = rng.standard_normal((N_ENVS, *cfg.obs_shape)).astype(np.float32)
        bundles = [draw(rng) for _ in range(N_ENVS)]
        noise = stack_envs(bundles)
        assert {k: v and v[1:] for k, v in expected_shapes("plan", cfg, envs=3).items()} == (
            expected_shapes("plan", cfg)
        )
        actions = batched.plan_envs_with_noise(obs, np.array(t0), eval_mode, None, noise)
        plans = batched.env_plans
        assert actions.shape == (N_ENVS, cfg.action_dim)
        assert plans.shape == (N_ENVS, cfg.horizon, cfg.action_dim)
        for n, agent in enumerate(singles):
            single = agent.plan_with_noise(obs[n], t0[n], eval_mode, None, bundles[n])
            np.testing.assert_allclose(actions[n], single, atol=BATCH_TOL, err_msg=f"env {n}")
            np.testing.assert_allclose(plans[n], agent.prev_plan, atol=BATCH_TOL)
            z = ref_model.encode(params, cfg, obs[n], None)
            expected = oracle(params, cfg, z, prev[n], t0[n], eval_mode, None, bundles[n], (0, 1))
            np.testing.assert_allclose(actions[n], expected[0], atol=ACT_TOL, err_msg=f"env {n}")
            np.testing.assert_allclose(plans[n], expected[1], atol=ACT_TOL, err_msg=f"env {n}")
            prev[n] = expected[1]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_act_envs_draws_its_own_noise_and_checks_shapes(backend, tiny):
    cfg = load_config([*tiny, "planner=diffusion"])
    agent = BACKENDS[backend](cfg)
    obs = np.random.default_rng(0).standard_normal((2, *cfg.obs_shape)).astype(np.float32)
    actions = agent.act_envs(obs, np.array([True, True]), eval_mode=False)
    assert actions.shape == (2, cfg.action_dim) and np.all(np.abs(actions) <= 1.0)
    assert not np.array_equal(actions[0], actions[1])  # each env its own noise
    with pytest.raises(ValueError, match=r"t0 has shape \(1,\), expected \(2,\)"):
        agent.act_envs(obs, np.array([True]), eval_mode=False)
    with pytest.raises(ValueError, match="obs has shape"):
        agent.act_envs(obs[0], np.array([True]), eval_mode=False)
