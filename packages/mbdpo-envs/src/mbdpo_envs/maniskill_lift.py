"""LiftCube on ManiSkill3: lift a cube 0.2 m above its starting position.

ManiSkill2's LiftCube-v0 (the reference's lift-cube) has no ManiSkill3 counterpart, so it is
defined here on ManiSkill3's task API as "MBDPO-LiftCube-v1". It keeps ManiSkill2's rules: the
goal is `goal_height` straight above the cube's start; success = the cube's centre is at least
`goal_height` above its resting height and the arm is static; the state observation adds the
TCP pose, the cube pose and the TCP-to-cube offset to the robot's joint state; the dense reward
is reaching + grasping + lifting progress, with a fixed bonus on success. Scene, robot and cube
randomisation are PickCube-v1's.
"""

from __future__ import annotations

import torch
from mani_skill.envs.tasks.tabletop.pick_cube import PickCubeEnv
from mani_skill.utils.registration import REGISTERED_ENVS, register_env
from mani_skill.utils.structs.pose import Pose

ENV_ID = "MBDPO-LiftCube-v1"


class LiftCubeEnv(PickCubeEnv):
    """Grasp the red cube and lift it `goal_height` metres (Panda arm)."""

    goal_height = 0.2
    success_reward = 2.25  # 1 reach + 0.25 grasp + 1 lift, the most the shaped terms give

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        super()._initialize_episode(env_idx, options)
        with torch.device(self.device):
            start = self.cube.pose.p[env_idx]
            goal = start + torch.tensor([0.0, 0.0, self.goal_height])
            self.goal_site.set_pose(Pose.create_from_pq(goal))

    def _get_obs_extra(self, info: dict):
        obs = dict(tcp_pose=self.agent.tcp_pose.raw_pose)
        if "state" in self.obs_mode:
            obs.update(
                obj_pose=self.cube.pose.raw_pose,
                tcp_to_obj_pos=self.cube.pose.p - self.agent.tcp_pose.p,
            )
        return obs

    def evaluate(self):
        lifted = self.cube.pose.p[:, 2] >= self.cube_half_size + self.goal_height
        static = self.agent.is_static(0.2)
        return {
            "success": lifted & static,
            "is_obj_lifted": lifted,
            "is_robot_static": static,
            "is_grasped": self.agent.is_grasping(self.cube),
        }

    def compute_dense_reward(self, obs, action: torch.Tensor, info: dict):
        tcp_to_obj = torch.linalg.norm(self.cube.pose.p - self.agent.tcp_pose.p, axis=1)
        grasped = info["is_grasped"].float()
        height = self.cube.pose.p[:, 2] - self.cube_half_size
        lift = torch.clamp(height / self.goal_height, max=1.0)
        reward = (1 - torch.tanh(5 * tcp_to_obj)) + 0.25 * grasped + lift * grasped
        reward[info["success"]] = self.success_reward
        return reward

    def compute_normalized_dense_reward(self, obs, action: torch.Tensor, info: dict):
        return self.compute_dense_reward(obs, action, info) / self.success_reward


if ENV_ID not in REGISTERED_ENVS:
    register_env(ENV_ID, max_episode_steps=200)(LiftCubeEnv)
