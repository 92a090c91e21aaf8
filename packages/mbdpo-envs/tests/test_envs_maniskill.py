"""ManiSkill3 adapter: every creatable task, the asset errors, and LiftCube's success rule.

Needs a Vulkan driver ManiSkill3 accepts; on a CPU-only machine `.ci/setup-vulkan.sh` installs
one. The tests skip only when no Vulkan ICD is configured or installed.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from mbdpo_core import tasks


def _icd_present() -> bool:
    env = os.environ.get("VK_ICD_FILENAMES")
    root = os.environ.get("MBDPO_LAVAPIPE_DIR", str(Path.home() / ".cache/mbdpo/lavapipe"))
    return bool(env) or (Path(root) / "lvp_icd.json").is_file()


pytestmark = [
    pytest.mark.slow,  # importing ManiSkill3 (sapien + torch) alone takes ~12 s
    pytest.mark.skipif(
        not _icd_present(),
        reason="no Vulkan ICD for ManiSkill3: run .ci/setup-vulkan.sh (or set VK_ICD_FILENAMES)",
    ),
]

ms = pytest.importorskip("mbdpo_envs.maniskill", reason="needs the maniskill extra")
from mbdpo_envs import make  # noqa: E402

MS_TASKS = tasks.TASK_SETS["maniskill"]
ASSETS = {"pick-ycb": "ycb", "turn-faucet": "partnet_mobility_faucet"}
CREATABLE = [t for t in MS_TASKS if not ms.missing_assets(tasks.get(t).source)]


def test_registry_entries():
    assert MS_TASKS == ["lift-cube", "pick-cube", "stack-cube", "pick-ycb", "turn-faucet"]
    for name in MS_TASKS:
        spec = tasks.get(name)
        assert (spec.episode_length, spec.action_repeat, spec.episodic) == (100, 2, True)
        assert spec.action_dim == (4 if ms.CONTROL_MODES[name] == "pd_ee_delta_pos" else 7)
    assert {"lift-cube", "pick-cube", "stack-cube"} <= set(CREATABLE)


@pytest.mark.parametrize("name", CREATABLE)
def test_task_makes_resets_and_steps(name):
    spec = tasks.get(name)
    env = make(name, seed=0)
    assert env.observation_shape == (spec.obs_dim,) and env.action_dim == spec.action_dim
    obs, info = env.reset()
    assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
    assert isinstance(info["success"], float)
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, spec.action_dim))
        assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
        assert isinstance(reward, float) and np.isfinite(reward)
        assert isinstance(info["success"], float)
        assert not truncated
    assert env.unwrapped.simulator.elapsed_steps.item() == 6  # action repeat 2
    again = make(name, seed=0)
    np.testing.assert_array_equal(make(name, seed=0).reset()[0], again.reset()[0])
    np.testing.assert_array_equal(env.reset(seed=3)[0], again.reset(seed=3)[0])
    env.close()


@pytest.mark.parametrize("name", [t for t in ASSETS if t not in CREATABLE])
def test_missing_assets_name_the_download_command(name):
    with pytest.raises(ms.MissingAssetError) as err:
        make(name, seed=0)
    assert f"python -m mani_skill.utils.download_asset {ASSETS[name]}" in str(err.value)


def test_seeded_episodes_differ_and_time_limit_is_100():
    env = make("pick-cube", seed=1)
    first = env.reset()[0]
    assert not np.array_equal(first, env.reset()[0])
    for t in range(1, 101):
        _, _, terminated, truncated, _ = env.step(np.zeros(4))
        assert not terminated
        assert truncated == (t == 100)


def test_lift_cube_success_terminates_within_the_action_repeat():
    from mani_skill.utils.structs.pose import Pose

    env = make("lift-cube", seed=0)
    sim = env.unwrapped.simulator
    outcomes = {}
    for height in (0.1, 0.3):  # lifted means cube centre >= 0.02 + 0.2 m
        env.reset()
        p = sim.cube.pose.p.clone()
        p[:, 2] = height
        sim.cube.set_pose(Pose.create_from_pq(p, sim.cube.pose.q))
        _, _, terminated, _, info = env.step(np.zeros(4))
        outcomes[height] = (terminated, info["success"], sim.elapsed_steps.item())
    assert outcomes[0.1] == (False, 0.0, 2)
    assert outcomes[0.3] == (True, 1.0, 1)  # the repeat stopped after the terminating step


def test_render():
    env = make("pick-cube", seed=0)
    env.reset()
    frame = env.render(64, 64)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert frame.std() > 10
