"""The JAX agent (mbdpo_core.protocols.Agent): one jitted act, one jitted update.

`act` runs encode, the whole planner (every reverse diffusion step inside a lax.scan) and the
action choice in one compiled call whose noise is drawn inside from the state's key; `update`
is one compiled call of update.train_step. Each compiles once per config and input shape
(`TRACE_COUNTS` counts the traces). The `*_with_noise` entry points take numpy noise bundles of
mbdpo_core.noise for parity tests.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from mbdpo_core.batch import Batch
from mbdpo_core.checkpoint import add_prefix, load_checkpoint, save_checkpoint, split_prefix
from mbdpo_core.config.load import config_to_dict
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import CheckpointError, ShapeError
from mbdpo_core.noise import UpdateNoise

from . import params_io, runtime
from .noise import draw_plan_noise
from .planners import make_planner
from .update import TrainState, init_state, train_step, update_step
from .world_model import WorldModel

TRACE_COUNTS: Counter[str] = Counter()
"""How often each compiled entry point was traced (= compiled), over all agents: a Python side
effect that runs only while JAX traces, never in a compiled call."""


def _batch(batch: Batch) -> dict[str, jax.Array | None]:
    return {
        "obs": jnp.asarray(batch.obs),
        "action": jnp.asarray(batch.action, jnp.float32),
        "reward": jnp.asarray(batch.reward, jnp.float32),
        "terminated": jnp.asarray(batch.terminated, jnp.float32),
        "task": None if batch.task is None else jnp.asarray(batch.task, jnp.int32),
    }


# The compiled entry points are module-level with the (hashable, frozen) Config static, so every
# agent of one config shares one compilation per input shape.


def _plan_core(cfg: Config, params, stats, prev_plan, obs, t0, eval_mode, task, noise):
    wm = WorldModel(cfg, params)
    z = wm.encode(obs[None], None if task is None else task[None])
    return make_planner(cfg)(wm, z, prev_plan, t0, eval_mode, task, noise, (stats[0], stats[1]))


@partial(jax.jit, static_argnums=0)
def _plan(cfg: Config, params, stats, prev_plan, obs, t0, eval_mode, task, noise):
    TRACE_COUNTS["plan"] += 1
    return _plan_core(cfg, params, stats, prev_plan, obs, t0, eval_mode, task, noise)


@partial(jax.jit, static_argnums=0)
def _act(cfg: Config, params, stats, prev_plan, key, obs, t0, eval_mode, task):
    TRACE_COUNTS["act"] += 1
    key, sub = jax.random.split(key)
    noise = draw_plan_noise(cfg, sub)
    action, plan = _plan_core(cfg, params, stats, prev_plan, obs, t0, eval_mode, task, noise)
    return action, plan, key


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def _train(cfg: Config, state: TrainState, batch):
    TRACE_COUNTS["update"] += 1
    return train_step(cfg, state, batch)


@partial(jax.jit, static_argnums=0)
def _update(cfg: Config, state: TrainState, batch, noise):
    TRACE_COUNTS["update_with_noise"] += 1
    return update_step(cfg, state, batch, noise, with_grads=True)


class Agent:
    """MBDPO agent on JAX. Parameters start from mbdpo_core.params.init_params(cfg, seed)."""

    def __init__(self, cfg: Config, seed: int | None = None):
        runtime.configure()
        self.cfg = cfg
        self.device = runtime.device(cfg.device)
        seed = cfg.seed if seed is None else seed
        params = params_io.initial_params(cfg, seed)
        state = init_state(cfg, runtime.to_jax(params), runtime.key_from_seed(seed))
        self.state: TrainState = jax.device_put(state, self.device)
        make_planner(cfg)  # fail early on an unknown planner

    # ----- acting ---------------------------------------------------------------------------
    def _act_inputs(self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None):
        cfg, s = self.cfg, self.state
        obs = np.asarray(obs)
        if obs.shape != tuple(cfg.obs_shape):
            raise ShapeError(f"obs has shape {obs.shape}, expected {cfg.obs_shape}.")
        if cfg.multitask:
            if task is None or not 0 <= int(task) < cfg.n_tasks:
                raise ValueError(
                    f"task={task!r}: a multi-task agent needs a task id in 0..{cfg.n_tasks - 1}."
                )
            task = jnp.asarray(int(task), jnp.int32)
        else:
            task = None
        obs = jnp.asarray(obs if obs.dtype == np.uint8 else obs.astype(np.float32))
        return (
            s.params,
            s.energy_stats,
            s.prev_plan,
            obs,
            jnp.asarray(bool(t0)),
            jnp.asarray(bool(eval_mode)),
            task,
        )

    def act(
        self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None = None
    ) -> np.ndarray:
        """obs [*O] -> action [A] in [-1, 1] (float32 numpy); keeps the plan as warm start."""
        params, stats, prev, obs, t0, ev, task = self._act_inputs(obs, t0, eval_mode, task)
        action, plan, key = _act(self.cfg, params, stats, prev, self.state.key, obs, t0, ev, task)
        self.state = self.state.replace(prev_plan=plan, key=key)
        return np.asarray(action)

    def plan_with_noise(
        self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None, noise: Any
    ) -> np.ndarray:
        """act with an explicit numpy noise bundle of cfg.planner; keeps the plan (prev_plan)."""
        params, stats, prev, obs, t0, ev, task = self._act_inputs(obs, t0, eval_mode, task)
        noise = jax.tree.map(jnp.asarray, noise)
        action, plan = _plan(self.cfg, params, stats, prev, obs, t0, ev, task, noise)
        self.state = self.state.replace(prev_plan=plan)
        return np.asarray(action)

    @property
    def prev_plan(self) -> np.ndarray:
        """The planner's warm start [H, A] (the last plan)."""
        return np.asarray(self.state.prev_plan)

    # ----- training -------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        """One world-model, policy and Polyak step; noise drawn from the agent's key."""
        self.state, metrics = _train(self.cfg, self.state, _batch(batch))
        return {k: float(v) for k, v in jax.device_get(metrics).items()}

    def update_with_noise(self, batch: Batch, noise: UpdateNoise) -> dict[str, float]:
        """update with an explicit numpy UpdateNoise (parity tests)."""
        noise = jax.tree.map(jnp.asarray, noise)
        self.state, metrics, _ = _update(self.cfg, self.state, _batch(batch), noise)
        return {k: float(v) for k, v in jax.device_get(metrics).items()}

    def grads_with_noise(self, batch: Batch, noise: UpdateNoise) -> dict[str, np.ndarray]:
        """Gradients of one update in canonical names, before clipping, without changing state.

        World-model parameters get d total_loss; pi.* get d pi_loss computed with the Q
        parameters after the world-model optimizer step (as in update).
        """
        noise = jax.tree.map(jnp.asarray, noise)
        _, _, grads = _update(self.cfg, self.state, _batch(batch), noise)
        return {k: np.asarray(v, np.float32) for k, v in grads.items()}

    # ----- parameters and checkpoints -------------------------------------------------------
    def world_model(self) -> WorldModel:
        """A WorldModel view of the current parameters (eager use, tests)."""
        return WorldModel(self.cfg, self.state.params)

    def export_params(self) -> dict[str, np.ndarray]:
        return params_io.export_params(self.state.params)

    def import_params(self, params: dict[str, np.ndarray]) -> None:
        new = params_io.import_params(self.cfg, params)
        self.state = self.state.replace(params=jax.device_put(new, self.device))

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        s = self.state
        arrays = add_prefix(self.export_params(), "params/")
        arrays.update(add_prefix(params_io.export_adam(s.model_opt), "optim/model/"))
        arrays.update(add_prefix(params_io.export_adam(s.pi_opt), "optim/pi/"))
        arrays["agent/prev_plan"] = np.array(s.prev_plan, np.float32)
        mean, std = np.asarray(s.energy_stats, np.float64)
        meta = {
            "backend": "jax",
            "config": config_to_dict(self.cfg),
            "optim_step": {"model": int(s.model_opt.count), "pi": int(s.pi_opt.count)},
            "running_scale": float(s.scale),
            "energy_stats": {"mean": float(mean), "std": float(std)},
            "rng": {"backend": "jax", "key": runtime.key_to_numpy(s.key).tolist()},
        }
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        params = params_io.import_params(self.cfg, split_prefix(arrays, "params/"))
        try:
            steps = meta["optim_step"]
            scale = float(meta["running_scale"])
            stats = [float(meta["energy_stats"]["mean"]), float(meta["energy_stats"]["std"])]
        except (KeyError, TypeError) as err:
            raise CheckpointError(f"checkpoint meta lacks agent state: missing {err}") from None
        s = self.state
        model_opt = params_io.import_adam(
            s.model_opt,
            split_prefix(arrays, "optim/model/"),
            steps["model"],
            "model optimizer state",
        )
        pi_opt = params_io.import_adam(
            s.pi_opt, split_prefix(arrays, "optim/pi/"), steps["pi"], "policy optimizer state"
        )
        if "agent/prev_plan" not in arrays:
            raise CheckpointError("checkpoint arrays lack agent/prev_plan.")
        rng = meta.get("rng")
        if isinstance(rng, dict) and rng.get("backend") == "jax":
            key = runtime.key_from_numpy(rng["key"])
        else:  # another backend's generator state: derive a key from the seed and step
            key = jax.random.fold_in(runtime.key_from_seed(self.cfg.seed), int(steps["model"]))
        new = TrainState(
            params=params,
            model_opt=model_opt,
            pi_opt=pi_opt,
            scale=jnp.float32(scale),
            energy_stats=jnp.asarray(stats, jnp.float32),
            prev_plan=jnp.asarray(arrays["agent/prev_plan"], jnp.float32),
            key=key,
        )
        self.state = jax.device_put(new, self.device)

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        arrays, meta = self.state_dict()
        save_checkpoint(path, arrays, {**meta, **(extra or {})})

    def load(self, path: str | Path) -> dict[str, Any]:
        arrays, meta = load_checkpoint(path)
        self.load_state_dict(arrays, meta)
        return meta
