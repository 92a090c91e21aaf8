"""The torch MBDPO agent (mbdpo_core.protocols.Agent; docs/design.md#mirrored-backends).

act / update draw their noise bundles from the agent's one torch.Generator (seeded from
cfg.seed) with mbdpo_core.noise.draw; the `*_with_noise` entry points take a caller's bundle
(numpy or torch arrays) instead, which is how the parity tests feed both backends the same
draws. Checkpoints (state_dict / load_state_dict / save / load) come from
mbdpo_core.agent_state.CheckpointingAgent on top of get_state / set_state.

The planner is cfg.planner (diffusion | mppi | policy) and is never switched silently;
cfg.compile compiles the planners of act and act_envs and the update's two losses (update.py),
in torch.compile's cfg.compile_mode (reduce-overhead: CUDA graphs on a GPU, plain Inductor code
on CPU); autograd.grad and the optimiser steps stay eager. The outputs the agent keeps across
calls (warm starts, energy statistics, scale: a few hundred floats) are cloned, because with CUDA
graphs the next replay writes its outputs into the memory of the last one's. cfg.precision=bf16
runs encode + planner and the update under torch.autocast(bfloat16) (layers.matmul_precision;
docs/design.md#runtime); the carried tensors (warm starts, energy statistics, scale) and the
outputs stay float32.

Shapes: O observation, A action, H horizon, B batch.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from mbdpo_core.agent_state import AgentState, CheckpointingAgent
from mbdpo_core.batch import Batch
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import ShapeError
from mbdpo_core.metrics import UPDATE_METRICS
from mbdpo_core.noise import draw
from mbdpo_core.params import init_params

from .augment import acting_obs
from .data_parallel import check_devices, shard_batch, shard_noise
from .layers import matmul_precision
from .losses import DeviceBatch, device_batch
from .noise import Sampler, to_device
from .params_io import export_params, from_agent_state, import_params, to_agent_state
from .planners import make_env_planner, make_planner
from .runtime import configure, make_rng, resolve_device
from .update import make_optimizers, update_step
from .world_model import WorldModel


class Agent(CheckpointingAgent):
    """MBDPO agent on one torch device; with cfg.data_parallel_devices = N > 1, one of N
    torchrun processes, each updating on its rows of every batch (data_parallel)."""

    backend = "torch"

    def __init__(self, cfg: Config, device: str | None = None) -> None:
        """device: cfg.device when None (auto | cpu | cuda | cuda:N)."""
        self.cfg = cfg
        check_devices(cfg)
        self.device = resolve_device(device or cfg.device)
        configure(self.device)
        self._model = WorldModel(cfg).to(self.device)
        import_params(self._model, init_params(cfg, np.random.default_rng(cfg.seed)))
        self.optimizers = make_optimizers(self._model)
        self.generator = make_rng(cfg.seed, self.device)
        self.sampler = Sampler(self.generator)
        plan, plan_envs = make_planner(cfg), make_env_planner(cfg)
        if cfg.compile:
            plan, plan_envs = (
                torch.compile(f, dynamic=False, mode=cfg.compile_mode) for f in (plan, plan_envs)
            )
        self.planner, self.env_planner = plan, plan_envs
        self._env_plans: torch.Tensor | None = None  # warm starts of act_envs [N, H, A]
        self.energy_stats = torch.tensor([0.0, 1.0], device=self.device)
        self.scale = torch.ones((), device=self.device)
        self._prev_plan = torch.zeros(cfg.horizon, cfg.action_dim, device=self.device)

    @property
    def model(self) -> WorldModel:
        """The world model (its parameters are the agent's)."""
        return self._model

    @property
    def prev_plan(self) -> np.ndarray:
        """The planner's warm start [H, A] (float32 numpy copy)."""
        return self._prev_plan.cpu().numpy().copy()

    def act(
        self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None = None
    ) -> np.ndarray:
        """obs [O] -> action [A] in [-1, 1] (float32 numpy); updates the warm start."""
        return self.plan_with_noise(obs, t0, eval_mode, task, draw("plan", self.cfg, self.sampler))

    @torch.no_grad()
    def plan_with_noise(
        self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None, noise: Any
    ) -> np.ndarray:
        """act with a caller's bundle of cfg.planner (mbdpo_core.noise, numpy or torch); an rgb
        observation is first shifted by noise.obs_shift unless obs_shift=update."""
        obs_t = torch.as_tensor(np.asarray(obs), device=self.device)
        if tuple(obs_t.shape) != tuple(self.cfg.obs_shape):
            raise ShapeError(f"obs has shape {tuple(obs_t.shape)}, expected {self.cfg.obs_shape}.")
        if obs_t.dtype != torch.uint8:
            obs_t = obs_t.float()
        task_t = self._task(task)
        noise = to_device(noise, self.device)
        obs_t = acting_obs(self.cfg, obs_t, noise.obs_shift)
        with matmul_precision(self.cfg.precision, self.device):
            z = self._model.encode(obs_t[None], task_t)
            action, plan = self.planner(
                self._model, z, self._prev_plan, t0, eval_mode, task_t, noise, self.energy_stats
            )
        self._prev_plan = plan.float().clone()
        return action.float().cpu().numpy().astype(np.float32)

    @property
    def env_plans(self) -> np.ndarray | None:
        """The warm starts of act_envs [N, H, A] (float32 numpy copy; None before its first
        call). They are not part of the agent state (docs/design.md#vectorised-acting)."""
        return None if self._env_plans is None else self._env_plans.cpu().numpy().copy()

    @env_plans.setter
    def env_plans(self, plans: np.ndarray) -> None:
        """Restore the warm starts of act_envs [N, H, A] (a loop resuming mid-episode)."""
        self._env_plans = torch.as_tensor(np.asarray(plans, np.float32), device=self.device)

    def act_envs(
        self, obs: np.ndarray, t0: np.ndarray, eval_mode: bool, task: int | None = None
    ) -> np.ndarray:
        """obs [N, *O] of N environments of one task, t0 [N] bool -> actions [N, A] in [-1, 1]
        from one batched planner call; keeps each environment's warm start."""
        noise = draw("plan", self.cfg, self.sampler, envs=np.shape(obs)[0])
        return self.plan_envs_with_noise(obs, t0, eval_mode, task, noise)

    @torch.no_grad()
    def plan_envs_with_noise(
        self, obs: np.ndarray, t0: np.ndarray, eval_mode: bool, task: int | None, noise: Any
    ) -> np.ndarray:
        """act_envs with a caller's bundle of cfg.planner with an env axis (every field
        [N, ...]); environment n gets what plan_with_noise gives on its slices."""
        obs_t = torch.as_tensor(np.asarray(obs), device=self.device)
        n = obs_t.shape[0] if obs_t.ndim else 0
        if tuple(obs_t.shape[1:]) != tuple(self.cfg.obs_shape) or n < 1:
            raise ShapeError(
                f"obs has shape {tuple(obs_t.shape)}, expected [N, *{self.cfg.obs_shape}]."
            )
        t0_t = torch.as_tensor(np.asarray(t0, dtype=bool), device=self.device)
        if tuple(t0_t.shape) != (n,):
            raise ShapeError(f"t0 has shape {tuple(t0_t.shape)}, expected ({n},).")
        if obs_t.dtype != torch.uint8:
            obs_t = obs_t.float()
        task_t = self._task(task)
        noise = to_device(noise, self.device)
        shifts = [None] * n if noise.obs_shift is None else noise.obs_shift
        if self._env_plans is None or self._env_plans.shape[0] != n:
            self._env_plans = torch.zeros(n, *self._prev_plan.shape, device=self.device)
        with matmul_precision(self.cfg.precision, self.device):
            z = torch.stack(
                [
                    self._model.encode(acting_obs(self.cfg, o, s)[None], task_t)
                    for o, s in zip(obs_t, shifts, strict=True)
                ]
            )
            actions, plans = self.env_planner(
                self._model, z, self._env_plans, t0_t, eval_mode, task_t, noise, self.energy_stats
            )
        self._env_plans = plans.float().clone()
        return actions.float().cpu().numpy().astype(np.float32)

    def _task(self, task: int | None) -> torch.Tensor | None:
        if not self.cfg.multitask:
            return None
        if task is None or not 0 <= int(task) < self.cfg.n_tasks:
            raise ValueError(
                f"task={task!r}: a multi-task agent needs a task id in 0..{self.cfg.n_tasks - 1}."
            )
        return torch.tensor([int(task)], device=self.device)

    def update(self, batch: Batch) -> dict[str, float]:
        """One world-model, policy and Polyak step on a numpy Batch; UPDATE_METRICS as floats.

        The noise is drawn at the batch's own size B.
        """
        B = np.shape(batch.action)[1]
        return self.update_with_noise(batch, draw("update", self.cfg, self.sampler, B))

    def update_with_noise(self, batch: Batch, noise: Any) -> dict[str, float]:
        """update with a caller's UpdateNoise (numpy or torch arrays); data-parallel, every
        process gives the whole batch and noise and updates on its rows."""
        with matmul_precision(self.cfg.precision, self.device):
            metrics, stats, scale = update_step(
                self._model,
                self.optimizers,
                *self._update_inputs(batch, noise),
                self.energy_stats,
                self.scale,
            )
        self.energy_stats, self.scale = stats.float().clone(), scale.float().clone()
        values = torch.stack([metrics[k].float().reshape(()) for k in UPDATE_METRICS]).tolist()
        return dict(zip(UPDATE_METRICS, values, strict=True))

    def grads_with_noise(self, batch: Batch, noise: Any) -> dict[str, np.ndarray]:
        """The unclipped gradients of update_with_noise(batch, noise) by canonical name, with
        the agent unchanged (the update runs on copies of the model and optimisers).

        World-model parameters get d total_loss; pi.* get d pi_loss with the Q parameters after
        the world-model step, as in update. Parameters without a gradient get zeros; target_q.*
        are absent. Shapes: each gradient has its parameter's shape.
        """
        model, optimizers = copy.deepcopy((self._model, self.optimizers))
        grads: dict[str, torch.Tensor] = {}
        with matmul_precision(self.cfg.precision, self.device):
            update_step(
                model,
                optimizers,
                *self._update_inputs(batch, noise),
                self.energy_stats,
                self.scale,
                grads,
            )
        return {n: g.detach().cpu().numpy().astype(np.float32) for n, g in grads.items()}

    def _update_inputs(self, batch: Batch, noise: Any) -> tuple[DeviceBatch, Any]:
        """The batch and noise this process updates on, on its device (data-parallel: its
        rows of both)."""
        if self.cfg.data_parallel_devices > 1:
            batch, noise = shard_batch(batch, self.cfg), shard_noise(noise, self.cfg)
        return device_batch(batch, self.cfg, self.device), to_device(noise, self.device)

    def export_params(self) -> dict[str, np.ndarray]:
        """Canonical parameters incl. target_q.* (float32 numpy)."""
        return export_params(self._model)

    def import_params(self, params: dict[str, np.ndarray]) -> None:
        """Load canonical parameters; names and shapes must match exactly (CheckpointError)."""
        import_params(self._model, params)

    def get_state(self) -> AgentState:
        """Everything the agent carries between calls, as numpy (mbdpo_core.agent_state)."""
        return to_agent_state(self)

    def set_state(self, state: AgentState) -> None:
        """Restore a state of either backend."""
        from_agent_state(self, state)
