"""MultitaskEnv: task switching, observation padding and action slicing on mt30 and mt80."""

import numpy as np
import pytest
from mbdpo_core import tasks
from mbdpo_core.errors import ConfigError, ShapeError, UnknownTaskError
from mbdpo_envs import make
from mbdpo_envs.wrappers.multitask import MultitaskEnv, make_multitask


@pytest.fixture(scope="module")
def mt30():
    return make_multitask("mt30", seed=0)


def test_mt30_widths_and_per_task_lists(mt30):
    assert mt30.tasks == tasks.TASK_SETS["mt30"]
    assert mt30.observation_shape == (24,) and mt30.action_dim == 6
    specs = tasks.resolve("mt30")
    assert mt30.action_dims == [s.action_dim for s in specs]
    assert mt30.obs_dims == [s.obs_dim for s in specs]
    assert mt30.episode_lengths == [500] * 30


@pytest.mark.parametrize("name", ["cartpole-swingup", "walker-walk", "reacher-three-easy"])
def test_padding_slicing_and_task_id_match_the_single_task_env(mt30, name):
    task = mt30.tasks.index(name)
    single = make(name, seed=0)
    obs, info = mt30.reset(seed=11, task=task)
    ref, _ = single.reset(seed=11)
    assert mt30.task_id == task == info["task"] and mt30.spec.name == name
    assert obs.shape == (24,) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[: ref.shape[0]], ref)
    assert not obs[ref.shape[0] :].any()
    rng = np.random.default_rng(0)
    for _ in range(3):
        action = rng.uniform(-1, 1, 6)
        obs, reward, _, _, info = mt30.step(action)
        ref, ref_reward, _, _, _ = single.step(action[: single.action_dim])  # tail is ignored
        np.testing.assert_array_equal(obs[: ref.shape[0]], ref)
        assert not obs[ref.shape[0] :].any()
        assert reward == ref_reward and info["task"] == task


def test_task_persists_and_attribute_switches(mt30):
    mt30.reset(task=3)
    mt30.reset()
    assert mt30.task_id == 3
    mt30.task_id = 7
    assert mt30.reset()[1]["task"] == 7 and mt30.episode_length == 500


def test_bad_actions_and_task_ids_are_errors(mt30):
    mt30.reset(task=0)
    with pytest.raises(ShapeError, match=r"\(6,\)"):
        mt30.step(np.zeros(5))
    with pytest.raises(ConfigError, match="0..29"):
        mt30.reset(task=30)
    with pytest.raises(UnknownTaskError, match="mt30"):
        make_multitask("mt31", seed=0)
    with pytest.raises(ShapeError):
        MultitaskEnv([make("walker-walk", seed=0)], obs_dim=5)


def test_mt80_pads_dmc_to_metaworld_width():
    mt80 = make_multitask("mt80", seed=0)  # builds all 80 envs (~7 s)
    assert mt80.tasks == tasks.TASK_SETS["mt80"] and len(mt80.tasks) == 80
    assert mt80.observation_shape == (39,) and mt80.action_dim == 6
    assert mt80.episode_lengths == [500] * 30 + [100] * 50
    assert mt80.action_dims[30:] == [4] * 50
    obs, _ = mt80.reset(task=0)  # walker-stand: 24 wide
    assert obs.shape == (39,) and not obs[24:].any()
    obs, _ = mt80.reset(task=mt80.tasks.index("mw-reach"))
    obs, _, _, _, info = mt80.step(np.array([0.5, 0.0, 0.0, 0.0, 9.0, 9.0]))  # tail ignored
    assert obs.shape == (39,) and obs[36:].any()  # the goal fills the last 3 entries
    assert info["task"] == mt80.tasks.index("mw-reach")


def test_make_routes_multitask_sets_to_the_wrapper():
    env = make("mt30", seed=0)
    assert isinstance(env, MultitaskEnv) and env.tasks == tasks.TASK_SETS["mt30"]
