"""The agent state, framework-neutral, and its checkpoint layout, defined once
(docs/design.md#agent-state-and-checkpoints).

Each backend converts its native state (parameters, Adam moments, counters, statistics, warm
start, RNG) to and from `AgentState`; `CheckpointingAgent` gives every backend's Agent the same
`state_dict` / `load_state_dict` / `save` / `load` on top of its `get_state` / `set_state`.

Checkpoint arrays (float32):
  params/<canonical name>                 every parameter incl. target_q.* (mbdpo_core.params)
  optim/<group>/<name>/exp_avg            Adam first moment, group "model" or "pi"
  optim/<group>/<name>/exp_avg_sq         Adam second moment
  agent/prev_plan                         the planner's warm start [H, A]
Checkpoint meta: backend, config, optim_step {"model", "pi"}, running_scale, energy_stats
{"mean", "std"}, rng ({"backend": ..., backend-specific fields}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import (
    add_prefix,
    check_arrays,
    checkpoint_stem,
    load_checkpoint,
    save_checkpoint,
    split_prefix,
)
from .config.load import config_from_dict, config_to_dict
from .config.schema import Config
from .errors import CheckpointError
from .params import optimizer_group, param_shapes

GROUPS = ("model", "pi")
"""The two optimisers: the world model's Adam and the policy's Adam."""
MOMENTS = ("exp_avg", "exp_avg_sq")


def group_shapes(cfg: Config, group: str) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of the parameters that optimiser `group` updates."""
    return {n: s for n, s in param_shapes(cfg).items() if optimizer_group(n) == group}


@dataclass
class AgentState:
    """Everything an agent carries between calls, as numpy.

    Fields:
      params        canonical name -> float32 array (incl. target_q.*)
      adam          group ("model" | "pi") -> name -> (exp_avg, exp_avg_sq), parameter shapes
      optim_step    group -> Adam step count (0 = no step yet)
      running_scale the policy objective's RunningScale value
      energy_stats  (mean, std) of the running F-logit statistics
      prev_plan     the planner's warm start [H, A]
      rng           {"backend": "torch" | "jax", ...}: the generator state, backend-specific
    """

    params: dict[str, np.ndarray]
    adam: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    optim_step: dict[str, int]
    running_scale: float
    energy_stats: tuple[float, float]
    prev_plan: np.ndarray
    rng: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def initial(cls, cfg: Config, params: dict[str, np.ndarray], rng: dict[str, Any]) -> AgentState:
        """A fresh agent: zero moments, step 0, RunningScale 1, F stats (0, 1), zero plan."""
        adam = {
            g: {n: (np.zeros(s, np.float32), np.zeros(s, np.float32)) for n, s in shapes.items()}
            for g in GROUPS
            for shapes in [group_shapes(cfg, g)]
        }
        zero_plan = np.zeros((cfg.horizon, cfg.action_dim), np.float32)
        return cls(params, adam, dict.fromkeys(GROUPS, 0), 1.0, (0.0, 1.0), zero_plan, rng)

    def to_checkpoint(self, cfg: Config, backend: str) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, meta) in the layout above."""
        arrays = add_prefix(self.params, "params/")
        for group, moments in self.adam.items():
            for name, pair in moments.items():
                for key, value in zip(MOMENTS, pair, strict=True):
                    arrays[f"optim/{group}/{name}/{key}"] = value
        arrays["agent/prev_plan"] = self.prev_plan
        arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        mean, std = self.energy_stats
        meta = {
            "backend": backend,
            "config": config_to_dict(cfg),
            "optim_step": {g: int(self.optim_step[g]) for g in GROUPS},
            "running_scale": float(self.running_scale),
            "energy_stats": {"mean": float(mean), "std": float(std)},
            "rng": self.rng,
        }
        return arrays, meta

    @classmethod
    def from_checkpoint(cls, arrays: dict[str, np.ndarray], meta: dict, cfg: Config) -> AgentState:
        """Inverse of to_checkpoint, checked against the shapes `cfg` implies.

        Raises:
            CheckpointError: names missing or unexpected, shapes that differ (all listed),
                meta without the agent's counters and statistics, or an rgb checkpoint written
                before the encoder's channel-first flatten (its saved config lacks obs_shift).
        """
        saved = meta.get("config")
        if cfg.obs == "rgb" and isinstance(saved, dict) and "obs_shift" not in saved:
            raise CheckpointError(
                "this obs=rgb checkpoint was written before the rgb encoder flattened its "
                "features channel-first (docs/method.md#layers); its encoder computes another "
                "function now. Train a new agent."
            )
        params = split_prefix(arrays, "params/")
        check_arrays(param_shapes(cfg), params)
        adam = {}
        for group in GROUPS:
            found = split_prefix(arrays, f"optim/{group}/")
            shapes = group_shapes(cfg, group)
            expected = {f"{n}/{k}": s for n, s in shapes.items() for k in MOMENTS}
            check_arrays(expected, found, what=f"{group} optimizer state")
            adam[group] = {n: tuple(found[f"{n}/{k}"] for k in MOMENTS) for n in shapes}
        plan_shape = (cfg.horizon, cfg.action_dim)
        prev_plan = arrays.get("agent/prev_plan")
        if prev_plan is None or tuple(prev_plan.shape) != plan_shape:
            raise CheckpointError(f"checkpoint lacks agent/prev_plan of shape {plan_shape}.")
        try:
            steps = {g: int(meta["optim_step"][g]) for g in GROUPS}
            scale = float(meta["running_scale"])
            stats = (float(meta["energy_stats"]["mean"]), float(meta["energy_stats"]["std"]))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint meta lacks agent state: missing {err}") from None
        rng = meta.get("rng") if isinstance(meta.get("rng"), dict) else {}
        return cls(params, adam, steps, scale, stats, prev_plan, rng)


class CheckpointingAgent:
    """state_dict / load_state_dict / save / load, once for every backend's Agent.

    A subclass sets `cfg` and `backend` and implements `get_state() -> AgentState` and
    `set_state(state)`.
    """

    cfg: Config
    backend: str

    def get_state(self) -> AgentState:
        raise NotImplementedError

    def set_state(self, state: AgentState) -> None:
        raise NotImplementedError

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything to resume exactly: (arrays, JSON-ready meta)."""
        return self.get_state().to_checkpoint(self.cfg, self.backend)

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore a state_dict written by either backend."""
        self.set_state(AgentState.from_checkpoint(arrays, meta, self.cfg))

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write `<path>.safetensors` + `<path>.json` (meta extended by `extra`)."""
        arrays, meta = self.state_dict()
        save_checkpoint(path, arrays, {**meta, **(extra or {})})

    def load(self, path: str | Path) -> dict[str, Any]:
        """Read a checkpoint of either backend into this agent; returns its metadata."""
        arrays, meta = load_checkpoint(path)
        self.load_state_dict(arrays, meta)
        return meta


def start_finetuning(agent: CheckpointingAgent) -> Path:
    """Give `agent` (built from a mode=finetune config) the parameters of cfg.checkpoint, this
    project's checkpoint of either backend (`finetune_from`); returns the checkpoint's stem
    (docs/design.md#fine-tuning).

    Raises:
        CheckpointError: the checkpoint is missing or corrupt, or its parameters do not fit.
    """
    stem = checkpoint_stem(agent.cfg.checkpoint)
    arrays, meta = load_checkpoint(stem)
    finetune_from(agent, split_prefix(arrays, "params/"), config_from_dict(meta["config"]))
    return stem


def finetune_from(agent: CheckpointingAgent, params: dict[str, np.ndarray], source: Config) -> None:
    """Give `agent` (built from a mode=finetune config) `params`, the canonical parameters of a
    checkpoint trained with config `source` (docs/design.md#fine-tuning).

    A multi-task checkpoint's task embedding [M, D] grows to [M + 1, D], the new row a copy of
    cfg.source_task's. Everything else starts fresh (`load_params`), as in the published
    fine-tuning, whose agent is rebuilt around the loaded weights.

    Raises:
        CheckpointError: `params` are not those of `source`, or do not fit the agent.
    """
    params = dict(params)
    check_arrays(param_shapes(source), params)
    if source.multitask:
        table = params["task_emb.weight"]
        row = table[source.tasks.index(agent.cfg.source_task)]
        params["task_emb.weight"] = np.concatenate([table, row[None]])
    load_params(agent, params)


def load_params(agent: CheckpointingAgent, params: dict[str, np.ndarray]) -> None:
    """Give `agent` the canonical parameters `params` of its config; everything else fresh: both
    Adam optimisers, RunningScale, the energy statistics and the warm start
    (docs/design.md#agent-state-and-checkpoints).

    Raises:
        CheckpointError: names missing or unexpected, or shapes that differ.
    """
    fresh, fresh_meta = agent.state_dict()
    agent.load_state_dict({**fresh, **add_prefix(params, "params/")}, fresh_meta)
