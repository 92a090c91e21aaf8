"""Meta-World adapter: all 50 goal-observable v3 tasks on the installed metaworld."""

import numpy as np
import pytest
from mbdpo_core import tasks
from mbdpo_core.errors import UnknownTaskError
from mbdpo_envs import make
from mbdpo_envs.metaworld import env_class

MW_TASKS = tasks.TASK_SETS["metaworld"]


def test_registry_lists_fifty_v3_tasks():
    assert len(MW_TASKS) == 50
    for name in MW_TASKS:
        spec = tasks.get(name)
        assert spec.source == name.removeprefix("mw-") + "-v3"
        assert (spec.episode_length, spec.action_repeat, spec.episodic) == (100, 2, False)


@pytest.mark.parametrize("name", MW_TASKS)
def test_task_makes_resets_and_steps(name):
    spec = tasks.get(name)
    env = make(name, seed=0)
    assert env.observation_shape == (spec.obs_dim,) == (39,)
    assert env.action_dim == spec.action_dim == 4
    assert env.episode_length == 100
    obs, info = env.reset()
    assert obs.shape == (39,) and obs.dtype == np.float32
    assert np.all(np.isfinite(obs))
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4))
        assert obs.shape == (39,) and obs.dtype == np.float32
        assert isinstance(reward, float) and np.isfinite(reward)
        assert not terminated and not truncated
        assert isinstance(info["success"], float) and info["success"] in (0.0, 1.0)
    env.close()


def test_episode_truncates_at_100_agent_steps_of_two_sim_steps():
    env = make("mw-reach", seed=1)
    env.reset()
    sim = env.unwrapped.simulator
    for t in range(1, 101):
        _, _, terminated, truncated, _ = env.step(np.zeros(4))
        assert sim.curr_path_length == 2 * t  # action repeat 2
        assert not terminated
        assert truncated == (t == 100)
    env.reset()
    assert sim.curr_path_length == 0


def test_same_seed_same_episodes_and_goals_change_between_resets():
    a, b, c = make("mw-push", seed=3), make("mw-push", seed=3), make("mw-push", seed=4)
    a0, b0, c0 = a.reset()[0], b.reset()[0], c.reset()[0]
    np.testing.assert_array_equal(a0, b0)
    assert not np.array_equal(a0, c0)
    a1, b1 = a.reset()[0], b.reset()[0]
    np.testing.assert_array_equal(a1, b1)
    assert not np.array_equal(a0[-3:], a1[-3:])  # obs[-3:] is the goal: re-sampled
    np.testing.assert_array_equal(a.reset(seed=7)[0], c.reset(seed=7)[0])


def test_success_is_the_env_success():
    env = make("mw-reach", seed=0)
    env.reset()
    sim = env.unwrapped.simulator
    goal = sim._target_pos.copy()
    for _ in range(100):  # a proportional controller drives the hand onto the goal
        _, _, _, truncated, info = env.step(
            np.append(np.clip(10 * (goal - sim.tcp_center), -1, 1), 0)
        )
        if info["success"] or truncated:
            break
    assert info["success"] == 1.0


def test_render_corner2():
    env = make("mw-reach", seed=0)
    env.reset()
    frame = env.render(64, 48)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert frame.std() > 10


def test_unknown_source_names_close_matches():
    with pytest.raises(UnknownTaskError, match="reach-v3"):
        env_class("reach-v2")
