"""DMControl adapter through `mbdpo_envs.make`: all 39 tasks, time limit, seeding, pixels."""

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
from mbdpo_core import tasks
from mbdpo_core.errors import ConfigError, MissingExtraError, ShapeError, UnknownTaskError
from mbdpo_envs import make
from mbdpo_envs.dmc import DMCEnv
from mbdpo_envs.wrappers import ActionRepeat

DMC = tasks.TASK_SETS["dmcontrol"]
pytestmark = pytest.mark.filterwarnings("ignore:Setting the shape on a NumPy array")


@pytest.mark.parametrize("name", DMC)
def test_every_task_makes_resets_and_steps(name):
    spec = tasks.get(name)
    env = make(name, seed=0)
    assert env.spec == spec
    assert env.observation_shape == (spec.obs_dim,) and env.action_dim == spec.action_dim
    assert env.episode_length == 500
    obs, info = env.reset()
    assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
    assert np.all(np.isfinite(obs)) and info["success"] == 0.0
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, spec.action_dim))
        assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
        assert np.all(np.isfinite(obs))
        assert isinstance(reward, float) and np.isfinite(reward)
        assert not terminated and not truncated
        assert info["success"] == 0.0


def test_episode_truncates_at_500_agent_steps():
    env = make("cartpole-balance", seed=0)
    env.reset()
    zero = np.zeros(env.action_dim)
    for t in range(1, 501):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated
        assert truncated == (t == 500), t
    env.reset()
    assert not env.step(zero)[3]


@pytest.mark.parametrize("name", ["walker-walk", "cup-spin", "reacher-three-hard"])
def test_same_seed_same_reset(name):
    first, _ = make(name, seed=3).reset()
    second, _ = make(name, seed=3).reset()
    other, _ = make(name, seed=4).reset()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_reset_with_seed_reseeds():
    env = make("finger-spin", seed=0)
    a, _ = env.reset(seed=11)
    env.step(np.ones(env.action_dim))
    b, _ = env.reset()
    c, _ = env.reset(seed=11)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


def test_action_repeat_sums_two_control_steps():
    spec = tasks.get("cheetah-run")
    action = np.full(spec.action_dim, 0.7)
    repeated = ActionRepeat(DMCEnv(spec, seed=5), 2)
    single = DMCEnv(spec, seed=5)
    repeated.reset()
    single.reset()
    obs, reward, *_ = repeated.step(action)
    steps = [single.step(action) for _ in range(2)]
    assert reward == pytest.approx(sum(step[1] for step in steps))
    np.testing.assert_array_equal(obs, steps[-1][0])


def test_actions_are_clipped_and_validated():
    a, b = make("pendulum-swingup", seed=1), make("pendulum-swingup", seed=1)
    a.reset()
    b.reset()
    np.testing.assert_array_equal(a.step(np.array([5.0]))[0], b.step(np.array([1.0]))[0])
    with pytest.raises(ShapeError, match=r"\(1,\)"):
        a.step(np.zeros(2))
    with pytest.raises(ShapeError, match="NaN"):
        a.step(np.array([np.nan]))


def test_make_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="valid: state, rgb"):
        make("walker-walk", seed=0, obs="pixels")
    with pytest.raises(ConfigError, match="valid: state"):
        make("mw-reach", seed=0, obs="rgb")
    with pytest.raises(ConfigError, match="task set"):
        make("locomotion", seed=0)
    with pytest.raises(ConfigError, match="obs='state' only"):
        make("mt30", seed=0, obs="rgb")
    with pytest.raises(UnknownTaskError, match="walker-walk"):
        make("walker-wlak", seed=0)
    with pytest.raises(ConfigError, match="seed"):
        make("walker-walk", seed=1.5)


def test_missing_simulator_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "mbdpo_envs.dmc")
    monkeypatch.setitem(sys.modules, "dm_control", None)  # what an absent package looks like
    with pytest.raises(MissingExtraError, match=r"mbdpo-envs\[dmc\].*uv sync"):
        make("walker-walk", seed=0)


@pytest.mark.parametrize("name", tasks.TASK_SETS["visual"])
def test_pixels_stack_three_frames(name):
    env = make(name, seed=0, obs="rgb")
    assert env.observation_shape == (9, 64, 64)
    first, _ = env.reset()
    assert first.shape == (9, 64, 64) and first.dtype == np.uint8
    np.testing.assert_array_equal(first[:3], first[3:6])
    np.testing.assert_array_equal(first[:3], first[6:])
    rng = np.random.default_rng(0)
    second = env.step(rng.uniform(-1, 1, env.action_dim))[0]
    third = env.step(rng.uniform(-1, 1, env.action_dim))[0]
    assert second.shape == (9, 64, 64) and second.dtype == np.uint8
    np.testing.assert_array_equal(second[:6], first[3:])  # oldest frame dropped
    np.testing.assert_array_equal(third[:6], second[3:])
    assert not np.array_equal(third[6:], second[6:])  # the newest frame moved
