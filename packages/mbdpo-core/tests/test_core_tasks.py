"""Task registry: set sizes, dataset order, lookups and error messages."""

import re

import pytest
from mbdpo_core import tasks
from mbdpo_core.config import load_config
from mbdpo_core.errors import ConfigError, UnknownTaskError

EXPECTED_SIZES = {
    "mt30": 30,
    "mt80": 80,
    "dmcontrol": 39,
    "metaworld": 50,
    "maniskill": 5,
    "myosuite": 10,
    "locomotion": 7,
    "visual": 10,
}


@pytest.mark.parametrize("name, size", EXPECTED_SIZES.items())
def test_task_set_sizes(name, size):
    assert len(tasks.TASK_SETS[name]) == size
    assert len(set(tasks.TASK_SETS[name])) == size


def test_all_sets_are_listed():
    assert set(tasks.TASK_SETS) == set(EXPECTED_SIZES)


def test_registry_holds_104_distinct_state_tasks():
    assert len(tasks.TASKS) == 104
    suites = [t.suite for t in tasks.TASKS.values()]
    assert {s: suites.count(s) for s in set(suites)} == {
        "dmcontrol": 39,
        "metaworld": 50,
        "maniskill": 5,
        "myosuite": 10,
    }


def test_mt80_starts_with_mt30():
    assert tasks.TASK_SETS["mt80"][:30] == tasks.TASK_SETS["mt30"]
    assert all(n.startswith("mw-") for n in tasks.TASK_SETS["mt80"][30:])


def test_dataset_order_anchors():
    mt80 = tasks.TASK_SETS["mt80"]
    assert mt80[0] == "walker-stand"
    assert mt80[19] == "walker-walk-backwards"
    assert mt80[29] == "pendulum-spin"
    assert mt80[30] == "mw-assembly"
    assert mt80[65] == "mw-reach"
    assert mt80[79] == "mw-hand-insert"


def test_every_set_member_is_registered():
    for name, members in tasks.TASK_SETS.items():
        for task in members:
            assert tasks.get(task).name == task, (name, task)


def test_set_suites_match():
    for name in ("dmcontrol", "metaworld", "maniskill", "myosuite"):
        assert {tasks.get(t).suite for t in tasks.TASK_SETS[name]} == {name}
    assert {tasks.get(t).suite for t in tasks.TASK_SETS["mt30"]} == {"dmcontrol"}


def test_suite_conventions():
    for spec in tasks.TASKS.values():
        assert spec.obs_dim > 0 and spec.action_dim > 0
        if spec.suite == "dmcontrol":
            assert (spec.episode_length, spec.action_repeat, spec.episodic) == (500, 2, False)
            assert "/" in spec.source
        elif spec.suite == "metaworld":
            assert (spec.obs_dim, spec.action_dim, spec.episode_length) == (39, 4, 100)
            assert spec.source == spec.name.removeprefix("mw-") + "-v3"
        elif spec.suite == "myosuite":
            assert (spec.action_dim, spec.episode_length, spec.action_repeat) == (39, 100, 1)
            hard = spec.name.endswith("-hard")
            assert spec.source.endswith("Random-v0" if hard else "Fixed-v0")
        else:
            assert spec.episodic and spec.episode_length == 100 and spec.action_repeat == 2


def test_multitask_max_dims():
    mt30 = tasks.resolve("mt30")
    mt80 = tasks.resolve("mt80")
    assert max(t.obs_dim for t in mt30) == 24 and max(t.action_dim for t in mt30) == 6
    assert max(t.obs_dim for t in mt80) == 39 and max(t.action_dim for t in mt80) == 6


def test_resolve_single_and_set():
    assert tasks.resolve("cup-catch") == [tasks.get("cup-catch")]
    assert [t.name for t in tasks.resolve("mt30")] == tasks.TASK_SETS["mt30"]


def test_unknown_task_names_close_matches():
    with pytest.raises(UnknownTaskError) as err:
        tasks.get("cartpole-balanse")
    message = str(err.value)
    assert "'cartpole-balanse'" in message
    assert "Did you mean: cartpole-balance" in message


def test_unknown_task_without_close_match_lists_valid_choices():
    with pytest.raises(UnknownTaskError) as err:
        tasks.resolve("zzz")
    message = str(err.value)
    assert "Did you mean" not in message
    assert "walker-walk" in message and "mt80" in message


GROUPS = ["dmcontrol", "metaworld", "maniskill", "myosuite", "locomotion", "visual"]


@pytest.mark.parametrize("name", GROUPS)
def test_a_task_group_is_not_a_task_and_says_what_to_give(name):
    with pytest.raises(ConfigError) as err:
        load_config([f"task={name}"])
    assert not isinstance(err.value, UnknownTaskError)  # it is registered, just not a task
    message = str(err.value)
    size = EXPECTED_SIZES[name]
    assert f"task={name} names a group of {size} tasks to run one at a time" in message
    assert tasks.TASK_SETS[name][0] in message and "(mt30, mt80)" in message


def test_every_name_an_unknown_task_error_lists_as_valid_is_accepted():
    with pytest.raises(UnknownTaskError) as err:
        load_config(["task=zzz"])
    listed = re.findall(r"\(([^()]*)\)", str(err.value))
    names = [n for group in listed for n in group.split(", ")]
    assert "visual" not in names and "locomotion" not in names
    assert len(names) == 104 + 2 and "mt80" in names and "walker-walk" in names
    for name in names:
        assert load_config([f"task={name}"]).task == name


def test_rgb_suites_match_the_environment_adapters():
    make = pytest.importorskip("mbdpo_envs.make")
    rgb = {suite for suite, adapter in make.SUITES.items() if "rgb" in adapter.obs_modes}
    assert set(tasks.RGB_SUITES) == rgb == {"dmcontrol"}
