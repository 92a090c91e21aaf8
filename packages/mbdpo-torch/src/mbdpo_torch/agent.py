"""The torch MBDPO agent: act, update, parameters and checkpoints (mbdpo_core.protocols.Agent).

Public entry points:
    Agent(cfg, device=None)                 device: cfg.device when None (auto | cpu | cuda[:N])
    act(obs, t0, eval_mode, task=None)      noise drawn from the agent's torch.Generator
    update(batch) -> dict[str, float]       noise drawn from the agent's torch.Generator
    plan_with_noise(obs, t0, eval_mode, task, noise) -> action
        act with a caller's noise bundle (DiffusionNoise | MppiNoise | PolicyNoise of
        mbdpo_core.noise, numpy or torch); updates the warm start like act.
    update_with_noise(batch, noise) -> dict[str, float]
        update with a caller's UpdateNoise (numpy or torch); the parity tests use both.
    grads_with_noise(batch, noise) -> dict[str, np.ndarray]
        the unclipped gradients of that update by canonical name; the agent is unchanged.
    export_params() / import_params(params)  canonical numpy dict (mbdpo_core.params naming)
    state_dict() / load_state_dict(arrays, meta), save(path) / load(path)
        core's checkpoint format (mbdpo_core.checkpoint); checkpoints of either backend load.

The planner is cfg.planner (diffusion | mppi | policy) and is never switched silently; the
diffusion planner uses the score network alone only when cfg.score_only_inference (which
requires use_score_network).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mbdpo_core.batch import Batch
from mbdpo_core.checkpoint import check_arrays, load_checkpoint, save_checkpoint, split_prefix
from mbdpo_core.config.load import config_to_dict
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import CheckpointError, ShapeError

from .losses import TorchBatch
from .noise import Drawer, to_torch
from .params_io import export_params, import_params, init_model
from .planners import make_planner
from .runtime import configure, make_generator, maybe_compile, resolve_device
from .update import METRICS, make_optimizers, param_groups, update_step
from .world_model import WorldModel, as_task


class Agent:
    """MBDPO agent on one torch device. Shapes: O observation, A action, H horizon."""

    def __init__(self, cfg: Config, device: str | None = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(device or cfg.device)
        configure(self.device)
        self.model = WorldModel(cfg).to(self.device)
        init_model(self.model, cfg.seed)
        self.optim, self.pi_optim = make_optimizers(self.model)
        self.generator = make_generator(cfg.seed, self.device)
        self.drawer = Drawer(cfg, self.generator, self.device)
        self.planner = maybe_compile(make_planner(cfg), cfg.compile)
        # cfg.compile compiles the planner only: compiling the update (autograd.grad and the
        # optimiser steps inside) had not finished after 3 minutes on CPU in our trial.
        self._update = update_step
        self.energy_stats = torch.tensor([0.0, 1.0], device=self.device)
        self.scale = torch.ones((), device=self.device)
        self.prev_plan = torch.zeros(cfg.horizon, cfg.action_dim, device=self.device)
        self.optim_step = {"model": 0, "pi": 0}

    # ----- acting -------------------------------------------------------------------------
    def act(
        self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None = None
    ) -> np.ndarray:
        """obs [*O] -> action [A] in [-1, 1] (float32 numpy)."""
        return self.plan_with_noise(obs, t0, eval_mode, task, self.drawer.plan())

    @torch.no_grad()
    def plan_with_noise(
        self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None, noise: Any
    ) -> np.ndarray:
        """act with the given noise bundle of cfg.planner (numpy or torch arrays)."""
        obs_t = torch.as_tensor(np.asarray(obs), device=self.device)
        if tuple(obs_t.shape) != tuple(self.cfg.obs_shape):
            raise ShapeError(f"obs has shape {tuple(obs_t.shape)}, expected {self.cfg.obs_shape}.")
        if obs_t.dtype != torch.uint8:
            obs_t = obs_t.float()
        task_t = self._task(task)
        z = self.model.encode(obs_t[None], task_t)
        action, self.prev_plan = self.planner(
            self.model,
            z,
            self.prev_plan,
            t0,
            eval_mode,
            task_t,
            to_torch(noise, self.device),
            self.energy_stats,
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

    # ----- learning -----------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        """One world-model, policy and Polyak step on a numpy Batch; float metrics."""
        return self.update_with_noise(batch, self.drawer.update())

    def update_with_noise(self, batch: Batch, noise: Any) -> dict[str, float]:
        """update with the given UpdateNoise (numpy or torch arrays)."""
        metrics, self.energy_stats, self.scale = self._update(
            self.model,
            self.optim,
            self.pi_optim,
            self._batch(batch),
            to_torch(noise, self.device),
            self.energy_stats,
            self.scale,
        )
        self.optim_step["model"] += 1
        self.optim_step["pi"] += 1
        values = torch.stack([metrics[k].float().reshape(()) for k in METRICS]).tolist()
        return dict(zip(METRICS, values, strict=True))

    def grads_with_noise(self, batch: Batch, noise: Any) -> dict[str, np.ndarray]:
        """Gradients of one update in canonical names, before clipping, without changing state.

        World-model parameters get d total_loss; pi.* get d pi_loss computed with the Q
        parameters after the world-model optimizer step (as in update). The update runs on a
        copy of the model and both optimisers. Shapes: each gradient has its parameter's shape.
        """
        model, optim, pi_optim = copy.deepcopy((self.model, self.optim, self.pi_optim))
        grads: dict[str, torch.Tensor] = {}
        self._update(
            model,
            optim,
            pi_optim,
            self._batch(batch),
            to_torch(noise, self.device),
            self.energy_stats,
            self.scale,
            grads_out=grads,
        )
        return {k: g.cpu().numpy().astype(np.float32) for k, g in grads.items()}

    def _batch(self, batch: Batch) -> TorchBatch:
        dev, cfg = self.device, self.cfg
        obs = torch.as_tensor(np.asarray(batch.obs), device=dev)
        obs = obs if obs.dtype == torch.uint8 else obs.float()
        task = as_task(batch.task, dev) if cfg.multitask else None
        if cfg.multitask and task is None:
            raise ShapeError("a multi-task agent needs batch.task [B].")
        gamma: torch.Tensor | float = float(cfg.discounts[0])
        if task is not None:
            gamma = torch.tensor(cfg.discounts, device=dev)[task][:, None]
        f32 = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=dev)  # noqa: E731
        return TorchBatch(
            obs, f32(batch.action), f32(batch.reward), f32(batch.terminated), task, gamma
        )

    # ----- parameters and checkpoints -----------------------------------------------------
    def export_params(self) -> dict[str, np.ndarray]:
        """Canonical parameters incl. target_q.* (float32 numpy)."""
        return export_params(self.model)

    def import_params(self, params: dict[str, np.ndarray]) -> None:
        """Load canonical parameters; names and shapes must match exactly (CheckpointError)."""
        import_params(self.model, params)

    def _optim_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for kind, (optim, params) in self._optims().items():
            for name, p in params.items():
                state = optim.state.get(p, {})
                for key in ("exp_avg", "exp_avg_sq"):
                    value = state.get(key, torch.zeros_like(p))
                    out[f"optim/{kind}/{name}/{key}"] = value.detach().cpu().numpy().copy()
        return out

    def _optims(self) -> dict[str, tuple[torch.optim.Adam, dict[str, torch.nn.Parameter]]]:
        wm, pi = param_groups(self.model)
        return {"model": (self.optim, wm), "pi": (self.pi_optim, pi)}

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, meta) in the naming of mbdpo_core.checkpoint."""
        arrays = {f"params/{k}": v for k, v in self.export_params().items()}
        arrays.update(self._optim_arrays())
        arrays["agent/prev_plan"] = self.prev_plan.cpu().numpy().copy()
        stats = self.energy_stats.tolist()
        meta = {
            "backend": "torch",
            "config": config_to_dict(self.cfg),
            "optim_step": dict(self.optim_step),
            "running_scale": float(self.scale),
            "energy_stats": {"mean": stats[0], "std": stats[1]},
            "rng": {"backend": "torch", "state": self.generator.get_state().tolist()},
        }
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore parameters, optimiser moments and steps, statistics, warm start, RNG."""
        self.import_params(split_prefix(arrays, "params/"))
        for kind, (optim, params) in self._optims().items():
            moments = split_prefix(arrays, f"optim/{kind}/")
            expected = {
                f"{n}/{k}": tuple(p.shape)
                for n, p in params.items()
                for k in ("exp_avg", "exp_avg_sq")
            }
            check_arrays(expected, moments, what=f"{kind} optimizer state")
            step = int(meta.get("optim_step", {}).get(kind, 0))
            for name, p in params.items():
                optim.state[p] = (
                    {
                        "step": torch.tensor(float(step), device=self.device),
                        "exp_avg": torch.as_tensor(moments[f"{name}/exp_avg"], device=self.device),
                        "exp_avg_sq": torch.as_tensor(
                            moments[f"{name}/exp_avg_sq"], device=self.device
                        ),
                    }
                    if step > 0
                    else {}
                )
            self.optim_step[kind] = step
        prev = arrays.get("agent/prev_plan")
        if prev is None or prev.shape != tuple(self.prev_plan.shape):
            raise CheckpointError(
                f"agent/prev_plan missing or not of shape {self.prev_plan.shape}."
            )
        self.prev_plan = torch.as_tensor(prev, dtype=torch.float32, device=self.device)
        self.scale = torch.tensor(float(meta.get("running_scale", 1.0)), device=self.device)
        stats = meta.get("energy_stats", {"mean": 0.0, "std": 1.0})
        self.energy_stats = torch.tensor([stats["mean"], stats["std"]], device=self.device)
        rng = meta.get("rng")
        if isinstance(rng, dict) and rng.get("backend") == "torch":
            self.generator.set_state(torch.tensor(rng["state"], dtype=torch.uint8))

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write `<path>.safetensors` + `<path>.json` (meta extended by `extra`)."""
        arrays, meta = self.state_dict()
        save_checkpoint(path, arrays, {**meta, **(extra or {})})

    def load(self, path: str | Path) -> dict[str, Any]:
        """Read a checkpoint of either backend into this agent; returns its metadata."""
        arrays, meta = load_checkpoint(path)
        self.load_state_dict(arrays, meta)
        return meta
