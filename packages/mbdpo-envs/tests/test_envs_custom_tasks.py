"""Our 11 custom dm_control tasks: each reward responds to the state as its definition says.

States are written straight into the physics (qpos/qvel) and `task.get_reward` is read back.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
from mbdpo_core import tasks
from mbdpo_envs import make
from mbdpo_envs.tasks import CUSTOM_TASKS

pytestmark = pytest.mark.filterwarnings("ignore:Setting the shape on a NumPy array")

CUSTOM = tasks.TASK_SETS["mt30"][19:]


def _env(name: str, seed: int = 0):
    env = make(name, seed=seed)
    env.reset()
    return env.unwrapped


def _reward(env, qpos=None, qvel=None) -> float:
    """Reward of the state with the given named qpos/qvel entries (the rest zero)."""
    physics = env.physics
    with physics.reset_context():
        physics.data.qpos[:] = 0
        physics.data.qvel[:] = 0
        for joint, value in (qpos or {}).items():
            physics.named.data.qpos[joint] = value
        for joint, value in (qvel or {}).items():
            physics.named.data.qvel[joint] = value
    return float(env.task.get_reward(physics))


def test_all_custom_tasks_registered():
    assert len(CUSTOM) == 11
    assert sorted(tasks.get(n).source for n in CUSTOM) == sorted(CUSTOM_TASKS)


@pytest.mark.parametrize("name, speed", [("walker-walk-backwards", 1), ("walker-run-backwards", 8)])
def test_walker_backwards_rewards_upright_backwards_motion(name, speed):
    env = _env(name)
    backwards = _reward(env, qvel={"rootx": -1.2 * speed})
    forwards = _reward(env, qvel={"rootx": 1.2 * speed})
    fallen = _reward(env, qpos={"rootz": -1.0, "rooty": np.pi / 2}, qvel={"rootx": -1.2 * speed})
    assert backwards == pytest.approx(1.0)
    assert forwards < 0.25 and fallen < 0.5 * backwards


def test_cheetah_run_backwards():
    env = _env("cheetah-run-backwards")
    assert _reward(env, qvel={"rootx": -10.0}) == pytest.approx(1.0)
    assert _reward(env, qvel={"rootx": -4.0}) == pytest.approx(0.5, abs=0.05)
    assert _reward(env, qvel={"rootx": 10.0}) == 0.0


# rooty = +pi/2 rears the cheetah up on its front foot (back foot high); -pi/2 the other way.
ON_FRONT_FOOT = {"rooty": np.pi / 2, "rootz": 0.5}
ON_BACK_FOOT = {"rooty": -np.pi / 2, "rootz": 0.5}


def test_cheetah_run_front_and_back():
    front, back = _env("cheetah-run-front"), _env("cheetah-run-back")
    fast = {"rootx": 7.0}
    assert _reward(front, ON_FRONT_FOOT, fast) == pytest.approx(1.0, abs=0.02)
    assert _reward(back, ON_BACK_FOOT, fast) == pytest.approx(1.0, abs=0.02)
    assert _reward(front, ON_BACK_FOOT, fast) < 0.6  # wrong foot lifted
    assert _reward(back, ON_FRONT_FOOT, fast) < 0.6
    assert _reward(front, ON_FRONT_FOOT) < 0.25  # standing but not running
    assert _reward(front, qvel=fast) < 0.2  # running flat on four feet


def test_cheetah_jump():
    env = _env("cheetah-jump")
    reared = _reward(env, {"rooty": np.pi / 2, "rootz": 1.2})
    flat = _reward(env)
    reared_fast = _reward(env, {"rooty": np.pi / 2, "rootz": 1.2}, {"rootx": 5.0})
    assert reared > 0.5 and flat < 0.25
    assert reared_fast < reared


def test_hopper_hop_backwards():
    env = _env("hopper-hop-backwards")
    assert _reward(env, qvel={"rootx": -2.0}) == pytest.approx(1.0)
    assert _reward(env, qvel={"rootx": 2.0}) == 0.0
    assert _reward(env, qpos={"rootz": -1.0, "rooty": np.pi / 2}, qvel={"rootx": -2.0}) < 0.5


def _finger_on_target(env, offset: float) -> float:
    """Put the target `offset` m from the finger of an arbitrary arm pose; return the reward."""
    physics = env.physics
    with physics.reset_context():
        physics.named.data.qpos[["shoulder", "elbow", "wrist"]] = [0.4, -0.8, 0.6]
    finger = physics.named.data.geom_xpos["finger", :2].copy()
    physics.named.model.geom_pos["target", ["x", "y"]] = finger + [offset, 0.0]
    physics.forward()
    return float(env.task.get_reward(physics))


def test_reacher_three_model():
    env = _env("reacher-three-easy")
    physics = env.physics
    assert physics.model.nu == 3
    np.testing.assert_allclose(
        np.degrees(physics.named.model.jnt_range[["elbow", "wrist"]]), [[-80, 80], [-80, 80]]
    )
    with physics.reset_context():
        physics.data.qpos[:] = 0
    np.testing.assert_allclose(physics.named.data.geom_xpos["finger", :2], [0.27, 0.0], atol=1e-9)


def test_reacher_three_rewards_finger_on_target():
    easy, hard = _env("reacher-three-easy"), _env("reacher-three-hard")
    assert _finger_on_target(easy, 0.0) == 1.0 and _finger_on_target(hard, 0.0) == 1.0
    assert _finger_on_target(easy, 0.04) == 1.0  # inside the big target
    assert _finger_on_target(hard, 0.04) == 0.0  # outside the small one
    assert _finger_on_target(easy, 0.2) == 0.0


def test_cup_spin():
    env = _env("cup-spin")
    physics = env.physics
    in_cup = _reward(env, qpos={"ball_z": 0.35})  # ball resting inside the cup
    assert physics.in_target() == 1.0 and in_cup == 0.0
    swinging = _reward(env, qpos={"ball_x": 0.3, "ball_z": 0.4}, qvel={"ball_z": 7.0})
    hanging = _reward(env, qpos={"ball_z": 0.1})  # still, below the cup
    assert swinging > 0.8 and 0.0 < hanging < 0.3


def test_cup_spin_mostly_starts_in_the_cup():
    env = make("cup-spin", seed=0)
    starts = []
    for seed in range(30):
        env.reset(seed=seed)
        physics = env.unwrapped.physics
        starts.append(physics.in_target())
        assert physics.data.ncon == 0
    assert 20 <= sum(starts) < 30  # 90 % in expectation, and not always


def test_pendulum_spin():
    env = _env("pendulum-spin")
    assert _reward(env, qvel={"hinge": 10.0}) == 1.0
    assert _reward(env, qvel={"hinge": -10.0}) == 1.0
    assert _reward(env, qvel={"hinge": 6.75}) == pytest.approx(0.75)
    assert _reward(env, qvel={"hinge": 0.0}) == 0.0


@pytest.mark.parametrize("name", CUSTOM)
def test_custom_task_dims_match_registry(name):
    spec = tasks.get(name)
    env = make(name, seed=1)
    obs, _ = env.reset()
    assert obs.shape == (spec.obs_dim,) and env.action_dim == spec.action_dim
