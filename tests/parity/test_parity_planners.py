"""Cross-backend parity of one act of each planner (diffusion MC, diffusion score-only, MPPI,
policy): the same canonical parameters and numpy noise give the same action and warm-start plan
in torch, JAX and the numpy oracle (ACT_TOL, from the error budget in parity_budget.py)."""

from functools import partial

import mbdpo_jax
import mbdpo_torch
import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.noise import draw_numpy
from mbdpo_core.reference import model as ref_model
from mbdpo_core.reference import planning as ref
from parity_budget import ACT_TOL

CASES = {
    "diffusion_mc": (["planner=diffusion"], partial(draw_numpy, "diffusion"), ref.diffusion_plan),
    "diffusion_score_only": (
        ["planner=diffusion", "use_score_network=true", "score_only_inference=true"],
        partial(draw_numpy, "diffusion"),
        ref.diffusion_plan,
    ),
    "mppi": (["planner=mppi"], partial(draw_numpy, "mppi"), ref.mppi_plan),
    "policy": (["planner=policy"], partial(draw_numpy, "policy"), ref.policy_plan),
    "diffusion_multitask": (
        ["planner=diffusion", "task=mt30", "task_dim=8"],
        partial(draw_numpy, "diffusion"),
        ref.diffusion_plan,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_act_agrees_across_backends_and_oracle(case, tiny, random_params):
    overrides, draw, oracle = CASES[case]
    cfg = load_config([*tiny, *overrides])
    params = random_params(cfg)
    agents = {"torch": mbdpo_torch.Agent(cfg), "jax": mbdpo_jax.Agent(cfg)}
    for agent in agents.values():
        agent.import_params(params)
    rng = np.random.default_rng(11)
    task = 3 if cfg.multitask else None
    prev = np.zeros((cfg.horizon, cfg.action_dim))
    for t0, eval_mode in ((True, False), (False, True)):  # the second act uses the warm start
        obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
        noise = draw(cfg, rng)
        got = {}
        for name, agent in agents.items():
            action = agent.plan_with_noise(obs, t0, eval_mode, task, noise)
            got[name] = (np.asarray(action), agent.state_dict()[0]["agent/prev_plan"])
        z = ref_model.encode(params, cfg, obs, task)
        expected = oracle(params, cfg, z, prev, t0, eval_mode, task, noise, (0.0, 1.0))
        prev = expected[1]
        for i, what in enumerate(("action", "plan")):
            np.testing.assert_allclose(got["torch"][i], got["jax"][i], atol=ACT_TOL, err_msg=what)
            np.testing.assert_allclose(got["jax"][i], expected[i], atol=ACT_TOL, err_msg=what)
            np.testing.assert_allclose(got["torch"][i], expected[i], atol=ACT_TOL, err_msg=what)
