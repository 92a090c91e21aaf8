"""The score network in the diffusion planner, as published (docs/method.md#diffusion-planner).

Every combination of use_score_network, score_planning and score_only_inference acts alike in
the numpy oracle, torch and JAX from the same parameters and noise (ACT_TOL, parity_budget.py).
With use_score_network=true (score_planning=network, the default) the action follows the score
network, and score_only_inference=true changes nothing more; otherwise the network plays no
part in acting. (score_only_inference=true alone is refused: tests of mbdpo_core.config.)
"""

import mbdpo_jax
import mbdpo_torch
import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.noise import draw_numpy
from mbdpo_core.reference import model as ref_model
from mbdpo_core.reference import planning as ref
from parity_budget import ACT_TOL

COMBOS = {
    "mc": [],
    "net": ["use_score_network=true"],
    "net_score_only": ["use_score_network=true", "score_only_inference=true"],
    "trained_net_mc": ["use_score_network=true", "score_planning=monte_carlo"],
    "net_multitask": ["use_score_network=true", "task=mt30", "task_dim=8"],
}
NET_PLANS = {"net", "net_score_only", "net_multitask"}
IMPLS = ("oracle", "torch", "jax")


def _acts(cfg, params, agents, seed=11):
    """Two acts (the first of an episode in training, then one from its warm start in
    evaluation) of each implementation: {impl: [(action, plan), ...]}, and the noise bundles."""
    rng = np.random.default_rng(seed)
    task = 3 if cfg.multitask else None
    for agent in agents.values():
        agent.import_params(params)
    out = {name: [] for name in IMPLS}
    bundles, prev = [], np.zeros((cfg.horizon, cfg.action_dim))
    for t0, eval_mode in ((True, False), (False, True)):
        obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
        noise = draw_numpy("diffusion", cfg, rng)
        bundles.append(noise)
        z = ref_model.encode(params, cfg, obs, task)
        action, prev = ref.diffusion_plan(params, cfg, z, prev, t0, eval_mode, task, noise)
        out["oracle"].append((action, prev))
        for name, agent in agents.items():
            action = agent.plan_with_noise(obs, t0, eval_mode, task, noise)
            plan = agent.state_dict()[0]["agent/prev_plan"]
            out[name].append((np.asarray(action, np.float64), np.asarray(plan, np.float64)))
    return out, bundles


@pytest.fixture(scope="module")
def run(tiny, random_params):
    """run(combo) -> (cfg, acts with the parameters, acts with the score net's last bias moved,
    noise bundles); computed once per combination."""
    cache = {}

    def get(combo):
        if combo not in cache:
            cfg = load_config([*tiny, "planner=diffusion", *COMBOS[combo]])
            params = random_params(cfg)
            agents = {"torch": mbdpo_torch.Agent(cfg), "jax": mbdpo_jax.Agent(cfg)}
            base, bundles = _acts(cfg, params, agents)
            moved = {**params, "score.2.bias": params["score.2.bias"] + np.float32(1.0)}
            cache[combo] = (cfg, base, _acts(cfg, moved, agents)[0], bundles)
        return cache[combo]

    return get


@pytest.mark.parametrize("combo", list(COMBOS))
def test_every_combination_acts_alike_in_oracle_torch_and_jax(run, combo):
    cfg, acts, _, _ = run(combo)
    assert cfg.score_net_plans == (combo in NET_PLANS)
    for step in range(2):
        for i, what in enumerate(("action", "plan")):
            oracle = acts["oracle"][step][i]
            for name in ("torch", "jax"):
                np.testing.assert_allclose(
                    acts[name][step][i], oracle, atol=ACT_TOL, err_msg=f"{name} {what} {step}"
                )


@pytest.mark.parametrize("combo", list(COMBOS))
def test_the_action_follows_the_score_network_only_when_it_plans(run, combo):
    cfg, acts, moved, _ = run(combo)
    for name in IMPLS:
        for step in range(2):
            for i, what in enumerate(("action", "plan")):
                a, b = acts[name][step][i], moved[name][step][i]
                if cfg.score_net_plans:  # each level's step moves by (1 - alpha_bar) x 1.0
                    assert np.max(np.abs(a - b)) > 1e-2, (name, step, what)
                else:  # Monte-Carlo score: the score network is not read
                    np.testing.assert_array_equal(a, b, err_msg=f"{name} {step} {what}")


def test_score_only_inference_plans_as_the_score_network_already_does(run):
    """The published planner with use_score_network=true computes the Monte-Carlo score and
    replaces it by the network's output; with score_only_inference=true it skips the
    Monte-Carlo part. Same draws, same actions: here both skip it and draw the same bundle."""
    _, net, _, net_bundles = run("net")
    _, only, _, only_bundles = run("net_score_only")
    for a, b in zip(net_bundles, only_bundles, strict=True):
        assert a.sample_eps.size == 0 and b.sample_eps.size == 0
        np.testing.assert_array_equal(a.action_eps, b.action_eps)
    for name in IMPLS:
        for step in range(2):
            for i in range(2):
                np.testing.assert_array_equal(net[name][step][i], only[name][step][i])
