"""MyoSuite adapter: the 10 hand tasks on the installed myosuite."""

import numpy as np
import pytest
from mbdpo_core import tasks
from mbdpo_envs import make

MYO_TASKS = tasks.TASK_SETS["myosuite"]


def test_registry_lists_ten_tasks_hard_is_random():
    assert len(MYO_TASKS) == 10
    for name in MYO_TASKS:
        spec = tasks.get(name)
        variant = "Random" if name.endswith("-hard") else "Fixed"
        assert spec.source.startswith("myoHand") and spec.source.endswith(f"{variant}-v0")
        assert (spec.episode_length, spec.action_repeat, spec.episodic) == (100, 1, False)


@pytest.mark.parametrize("name", MYO_TASKS)
def test_task_makes_resets_and_steps(name):
    spec = tasks.get(name)
    env = make(name, seed=0)
    assert env.observation_shape == (spec.obs_dim,)
    assert env.action_dim == spec.action_dim == 39
    obs, _ = env.reset()
    assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, make(name, seed=0).reset()[0])
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 39))
        assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
        assert isinstance(reward, float)
        assert not terminated and not truncated
        assert isinstance(info["success"], float) and info["success"] in (0.0, 1.0)
        assert info["success"] == float(info["solved"])
    env.close()


def test_episode_is_100_steps_past_the_envs_own_limit_without_action_repeat():
    env = make("myo-pen-twirl", seed=0)  # MyoSuite's own limit is 50 steps; pens get dropped
    env.reset()
    sim = env.unwrapped.simulator
    dt = sim.model.opt.timestep * sim.frame_skip
    rng = np.random.default_rng(0)
    for t in range(1, 101):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 39))
        assert sim.data.time == pytest.approx(t * dt)  # one MyoSuite step per agent step
        assert not terminated
        assert truncated == (t == 100)


def test_random_variant_differs_by_seed_and_reset_seed_reproduces():
    a, b = make("myo-reach-hard", seed=0), make("myo-reach-hard", seed=1)
    a0, b0 = a.reset()[0], b.reset()[0]
    assert not np.array_equal(a0, b0)
    assert not np.array_equal(a0, a.reset()[0])  # a new target every episode
    np.testing.assert_array_equal(a.reset(seed=5)[0], b.reset(seed=5)[0])


def test_render_side_camera():
    env = make("myo-reach", seed=0)
    env.reset()
    frame = env.render(32, 32)
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    assert frame.std() > 1
