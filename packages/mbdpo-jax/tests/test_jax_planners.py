"""Planners against the numpy oracle (mbdpo_core.reference.planning) and on a synthetic model
whose best action is known."""

import jax.numpy as jnp
import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.noise import draw, draw_numpy
from mbdpo_core.reference import model as ref_model
from mbdpo_core.reference import planning as ref
from mbdpo_jax import Agent, WorldModel
from mbdpo_jax.math import two_hot
from mbdpo_jax.noise import Sampler
from mbdpo_jax.planners import make_planner

TINY = [
    "preset=cpu",
    "mlp_dim=32",
    "latent_dim=16",
    "enc_dim=32",
    "num_q=3",
    "num_bins=21",
    "diffusion_num_samples=32",
    "diffusion_num_elites=8",
    "diffusion_num_pi_trajs=4",
    "diffusion_steps=5",
    "num_samples=32",
    "num_elites=8",
    "num_pi_trajs=4",
    "iterations=3",
]
CASES = {
    "diffusion": (["planner=diffusion"], ref.diffusion_plan),
    "score_only": (
        ["planner=diffusion", "use_score_network=true", "score_only_inference=true"],
        ref.diffusion_plan,
    ),
    "mppi": (["planner=mppi"], ref.mppi_plan),
    "policy": (["planner=policy"], ref.policy_plan),
    "diffusion_multitask": (["planner=diffusion", "task=mt30", "task_dim=8"], ref.diffusion_plan),
}


@pytest.mark.parametrize("case", list(CASES))
def test_planner_matches_oracle(case, random_params):
    overrides, oracle = CASES[case]
    cfg = load_config([*TINY, *overrides])
    agent = Agent(cfg)
    params = random_params(cfg)
    agent.import_params(params)
    rng = np.random.default_rng(5)
    obs = rng.standard_normal(cfg.obs_shape).astype(np.float32)
    task = 7 if cfg.multitask else None
    stats = (0.1, 0.8)
    state = agent.get_state()
    state.energy_stats = stats
    agent.set_state(state)
    prev = np.zeros((cfg.horizon, cfg.action_dim))
    z = ref_model.encode(params, cfg, obs, task)
    for t0, eval_mode in ((True, False), (False, True)):
        noise = draw_numpy("plan", cfg, rng)
        action = agent.plan_with_noise(obs, t0, eval_mode, task, noise)
        plan = agent.get_state().prev_plan
        ref_action, ref_plan = oracle(params, cfg, z, prev, t0, eval_mode, task, noise, stats)
        np.testing.assert_allclose(action, ref_action, atol=1e-4)
        np.testing.assert_allclose(plan, ref_plan, atol=1e-4)
        assert action.shape == (cfg.action_dim,) and plan.shape == (cfg.horizon, cfg.action_dim)
        prev = ref_plan


class PeakedModel(WorldModel):
    """Latent stays put; reward -10 ||a - target||^2 exactly; Q, F zero; policy mean `pi_mean`."""

    def __init__(self, cfg, target, pi_mean):
        super().__init__(cfg)
        self.target, self.pi_mean = tuple(float(t) for t in target), pi_mean

    def _logits(self, value):
        return jnp.log(two_hot(value, self.cfg) + 1e-12)

    def reward(self, z, a, task):
        r = -10.0 * jnp.sum(jnp.square(a - jnp.asarray(self.target)), axis=-1, keepdims=True)
        return self._logits(
            jnp.broadcast_to(r, (*jnp.broadcast_shapes(z.shape[:-1], r.shape[:-1]), 1))
        )

    def next(self, z, a, task):
        return jnp.broadcast_to(z, (*jnp.broadcast_shapes(z.shape[:-1], a.shape[:-1]), z.shape[-1]))

    def F(self, z, a, task):
        return jnp.zeros((*jnp.broadcast_shapes(z.shape[:-1], a.shape[:-1]), 1))

    def Q(self, z, a, task, target=False, keep=None, members=None, detach=False):
        lead = jnp.broadcast_shapes(z.shape[:-1], a.shape[:-1])
        return self._logits(jnp.zeros((2, *lead, 1)))

    def pi(self, z, task, eps):
        mean = jnp.full(eps.shape, np.arctanh(self.pi_mean), jnp.float32)
        action = jnp.tanh(mean + 0.05 * eps)
        return action, {"mean": jnp.tanh(mean)}


@pytest.mark.parametrize("name", ["diffusion", "mppi", "policy"])
def test_planner_finds_the_best_action(name):
    cfg = load_config(
        [
            "preset=cpu",
            "task=reacher-easy",
            f"planner={name}",
            "diffusion_steps=20",
            "diffusion_num_samples=256",
            "diffusion_num_elites=32",
            "num_samples=256",
            "num_elites=32",
            "iterations=6",
        ]
    )
    A = cfg.action_dim
    target = np.linspace(-0.6, 0.6, A).astype(np.float32)
    pi_mean = -0.5  # the prior is not the answer: the searches must find the target
    wm = PeakedModel(cfg, target, pi_mean)
    planner = make_planner(cfg)
    z = jnp.ones((1, cfg.latent_dim)) / 8
    prev = jnp.zeros((cfg.horizon, A))
    noise = draw("plan", cfg, Sampler(jnp.asarray(np.array([0, 0], np.uint32))))
    stats = (jnp.float32(0.0), jnp.float32(1.0))
    action, plan = planner(wm, z, prev, jnp.asarray(True), jnp.asarray(True), None, noise, stats)
    if name == "policy":  # acts with the prior, whatever the values
        np.testing.assert_allclose(action, np.full(A, pi_mean), atol=1e-6)
        return
    np.testing.assert_allclose(action, target, atol=0.08)
    np.testing.assert_allclose(plan, np.broadcast_to(target, plan.shape), atol=0.1)
