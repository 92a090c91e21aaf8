"""The torch MBDPO agent (mbdpo_core.protocols.Agent; docs/design.md#mirrored-backends).

act / update draw their noise bundles from the agent's one torch.Generator (seeded from
cfg.seed) with mbdpo_core.noise.draw; the `*_with_noise` entry points take a caller's bundle
(numpy or torch arrays) instead, which is how the parity tests feed both backends the same
draws. Checkpoints (state_dict / load_state_dict / save / load) come from
mbdpo_core.agent_state.CheckpointingAgent on top of get_state / set_state.

The planner is cfg.planner (diffusion | mppi | policy) and is never switched silently;
cfg.compile compiles the planner only (compiling the update, with autograd.grad and the
optimiser steps inside, had not finished after 3 minutes on CPU in our trial).

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
from .losses import device_batch
from .noise import Sampler, to_device
from .params_io import export_params, from_agent_state, import_params, to_agent_state
from .planners import make_planner
from .runtime import configure, make_rng, resolve_device
from .update import make_optimizers, update_step
from .world_model import WorldModel


class Agent(CheckpointingAgent):
    """MBDPO agent on one torch device."""

    backend = "torch"

    def __init__(self, cfg: Config, device: str | None = None) -> None:
        """device: cfg.device when None (auto | cpu | cuda | cuda:N)."""
        self.cfg = cfg
        self.device = resolve_device(device or cfg.device)
        configure(self.device)
        self._model = WorldModel(cfg).to(self.device)
        import_params(self._model, init_params(cfg, np.random.default_rng(cfg.seed)))
        self.optimizers = make_optimizers(self._model)
        self.generator = make_rng(cfg.seed, self.device)
        self.sampler = Sampler(self.generator)
        plan = make_planner(cfg)
        self.planner = torch.compile(plan, dynamic=False) if cfg.compile else plan
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
        z = self._model.encode(obs_t[None], task_t)
        action, self._prev_plan = self.planner(
            self._model, z, self._prev_plan, t0, eval_mode, task_t, noise, self.energy_stats
        )
        return action.cpu().numpy().astype(np.float32)

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
        """update with a caller's UpdateNoise (numpy or torch arrays)."""
        metrics, self.energy_stats, self.scale = update_step(
            self._model,
            self.optimizers,
            device_batch(batch, self.cfg, self.device),
            to_device(noise, self.device),
            self.energy_stats,
            self.scale,
        )
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
        update_step(
            model,
            optimizers,
            device_batch(batch, self.cfg, self.device),
            to_device(noise, self.device),
            self.energy_stats,
            self.scale,
            grads,
        )
        return {n: g.detach().cpu().numpy().astype(np.float32) for n, g in grads.items()}

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
