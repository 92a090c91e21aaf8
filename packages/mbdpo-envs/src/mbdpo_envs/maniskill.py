"""ManiSkill3 adapter: lift-cube, pick-cube, stack-cube, pick-ycb and turn-faucet (Panda arm).

The reference ran these on ManiSkill2, which cannot render on CPU-only machines; here they run on
ManiSkill3 (CPU simulation, state observations). ManiSkill3 has no LiftCube, so
`mbdpo_envs.maniskill_lift` registers one ("MBDPO-LiftCube-v1"). Episodes end on success
(terminated=True; the tasks are `episodic` in the registry); action repeat 2 stops early when
the env terminates; the time limit is 100 agent steps. Rewards are ManiSkill's dense rewards,
except TurnFaucet-v1, which only defines a sparse one.

Rendering needs Vulkan even for state observations. On a machine without a GPU that is Mesa 25's
lavapipe, which `.ci/setup-vulkan.sh` installs; the adapter points `VK_ICD_FILENAMES` at that
install when the variable is unset. PickSingleYCB-v1 and TurnFaucet-v1 need downloaded assets;
`make` never downloads (or prompts), it fails with the command that fetches them.
"""

from __future__ import annotations

import os
from pathlib import Path

from mbdpo_core.errors import MbdpoError, ShapeError
from mbdpo_core.tasks import TaskSpec

SETUP_SCRIPT = ".ci/setup-vulkan.sh"


def cached_icd() -> Path:
    """Where `.ci/setup-vulkan.sh` writes the lavapipe ICD json (MBDPO_LAVAPIPE_DIR overrides)."""
    root = os.environ.get("MBDPO_LAVAPIPE_DIR", str(Path.home() / ".cache/mbdpo/lavapipe"))
    return Path(root) / "lvp_icd.json"


def vulkan_icd() -> str | None:
    """The Vulkan ICD this process uses: VK_ICD_FILENAMES, else the cached lavapipe, else None.

    Sets VK_ICD_FILENAMES to the cached lavapipe when the variable is unset and the file exists
    (it must be set before the first Vulkan device is created).
    """
    if os.environ.get("VK_ICD_FILENAMES"):
        return os.environ["VK_ICD_FILENAMES"]
    if cached_icd().is_file():
        os.environ["VK_ICD_FILENAMES"] = str(cached_icd())
        return str(cached_icd())
    return None


vulkan_icd()  # before sapien is imported

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from mani_skill.utils import assets  # noqa: E402
from mani_skill.utils.registration import REGISTERED_ENVS  # noqa: E402
from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper  # noqa: E402

from . import maniskill_lift  # noqa: E402, F401  (registers MBDPO-LiftCube-v1)
from .env import Env, Info, Obs, StepResult  # noqa: E402
from .wrappers import ActionRepeat, TimeLimit  # noqa: E402

CONTROL_MODES = {
    "lift-cube": "pd_ee_delta_pos",
    "pick-cube": "pd_ee_delta_pos",
    "stack-cube": "pd_ee_delta_pos",
    "pick-ycb": "pd_ee_delta_pose",
    "turn-faucet": "pd_ee_delta_pose",
}
"""Controller per task: end-effector position, or position + rotation, deltas
(docs/design.md#configuration)."""

SPARSE_ONLY = ("TurnFaucet-v1",)
RENDER_SIZE = 384


class VulkanError(MbdpoError, RuntimeError):
    """No Vulkan device that ManiSkill3 can render with."""


class MissingAssetError(MbdpoError, FileNotFoundError):
    """A ManiSkill task's downloadable assets are not on disk."""


def missing_assets(source: str) -> list[str]:
    """Asset (group) ids that ManiSkill env `source` needs and that are not downloaded."""
    missing = []
    for asset_id in REGISTERED_ENVS[source].asset_download_ids or []:
        if asset_id in assets.DATA_GROUPS:
            ids = assets.expand_data_group_into_individual_data_source_ids(asset_id)
        else:
            ids = [asset_id]
        if not all(assets.is_data_source_downloaded(i) for i in ids):
            missing.append(asset_id)
    return missing


def check_assets(spec: TaskSpec) -> None:
    """Raise MissingAssetError naming the download command if `spec`'s assets are missing."""
    missing = missing_assets(spec.source)
    if missing:
        from mani_skill import ASSET_DIR

        commands = " && ".join(f"python -m mani_skill.utils.download_asset {a} -y" for a in missing)
        raise MissingAssetError(
            f"ManiSkill task {spec.name!r} ({spec.source}) needs the asset(s) "
            f"{', '.join(missing)}, not found under {ASSET_DIR} (the MS_ASSET_DIR environment "
            f"variable moves it). Fetch them with: `{commands}`."
        )


def _make_raw(spec: TaskSpec):
    kwargs = dict(
        obs_mode="state",
        control_mode=CONTROL_MODES[spec.name],
        reward_mode="sparse" if spec.source in SPARSE_ONLY else "dense",
        sim_backend="cpu",
        num_envs=1,
        robot_uids="panda",
        render_mode="rgb_array",
        human_render_camera_configs=dict(width=RENDER_SIZE, height=RENDER_SIZE),
        max_episode_steps=spec.episode_length * spec.action_repeat,
    )
    try:
        return gym.make(spec.source, **kwargs)
    except RuntimeError as err:
        if "device" not in str(err):
            raise
        raise VulkanError(
            f"ManiSkill3 found no usable Vulkan device ({err}). On a machine without a GPU, "
            f"run `{SETUP_SCRIPT}` (installs Mesa 25 lavapipe) and export VK_ICD_FILENAMES to "
            f"the path it prints (the adapter uses {cached_icd()} automatically when present). "
            f"VK_ICD_FILENAMES is now {os.environ.get('VK_ICD_FILENAMES')!r}."
        ) from err


class ManiSkillEnv(Env):
    """One ManiSkill3 task (single CPU env), one controller step per `step`.

    Every reset is seeded: `reset(seed)` uses `seed`, `reset()` the next draw of a generator
    seeded once at construction, so a run is reproducible from the constructor's seed.
    `info` holds the task's evaluation (success, is_grasped, ...) as numpy values.

    Shapes:
        obs: (O,) float32; action: (A,) in [-1, 1] (A = 4 for ee-position, 7 for ee-pose control)
    """

    def __init__(self, spec: TaskSpec, seed: int):
        super().__init__(spec, (spec.obs_dim,))
        check_assets(spec)
        self._env = CPUGymWrapper(_make_raw(spec))
        self._seeds = np.random.default_rng(seed)
        obs_dim = self._env.observation_space.shape[0]
        act_dim = self._env.action_space.shape[0]
        if (obs_dim, act_dim) != (spec.obs_dim, spec.action_dim):
            raise ShapeError(
                f"{spec.name}: ManiSkill gives obs {obs_dim} / action {act_dim}, the registry "
                f"says {spec.obs_dim} / {spec.action_dim}."
            )

    @property
    def simulator(self):
        """The underlying ManiSkill environment (for tests and tools)."""
        return self._env.unwrapped

    def _reset(self, seed: int | None) -> tuple[Obs, Info]:
        if seed is None:
            seed = int(self._seeds.integers(2**31))
        obs, info = self._env.reset(seed=seed)
        return obs, _numpy_info(info)

    def _step(self, action: np.ndarray) -> StepResult:
        obs, reward, terminated, truncated, info = self._env.step(action.astype(np.float32))
        return obs, reward, terminated, truncated, _numpy_info(info)

    def render(self, width: int = RENDER_SIZE, height: int = RENDER_SIZE) -> np.ndarray:
        frame = np.asarray(self._env.render(), dtype=np.uint8)
        rows = np.arange(height) * frame.shape[0] // height  # nearest-neighbour resize
        cols = np.arange(width) * frame.shape[1] // width
        return np.ascontiguousarray(frame[rows][:, cols, :3])

    def close(self) -> None:
        self._env.close()


def _numpy_info(info: dict) -> Info:
    out = {}
    for key, value in info.items():
        value = np.asarray(value)
        out[key] = value.item() if value.size == 1 else value
    return out


def make_env(spec: TaskSpec, seed: int, obs: str) -> Env:
    """ManiSkill3 task with action repeat (2, stops on termination) and the 100-step limit."""
    del obs  # make() accepts only "state" for this suite
    env: Env = ActionRepeat(ManiSkillEnv(spec, seed), spec.action_repeat)
    return TimeLimit(env, spec.episode_length)
