"""The JAX agent (mbdpo_core.protocols.Agent): one jitted act, one jitted update.

The agent keeps its NNX objects split: the states of the world model and of its two
optimisers live in one pytree (`_TrainState`) as pure dicts of arrays (nnx.to_pure_dict: no
Variable objects to rebuild on every call), and the jitted functions merge them with graph
definitions cached per config (`nnx.merge` runs while tracing only, so a compiled call pays no
graph traversal). `act` runs encode, the planner (every reverse step inside a lax.scan) and the
action choice in one compiled call whose noise is drawn inside from the agent's key; `update`
is one compiled call of update.update_step. Each compiles once per config and input shape and
is shared by every agent of that config (`_act._cache_size()` counts the compilations). The
`*_with_noise` entry points take numpy noise bundles of mbdpo_core.noise (the parity tests).

cfg.precision=bf16: the compiled act and update trace the model inside
layers.matmul_precision, so their matmuls take bfloat16 operands with float32 accumulation
(docs/design.md#runtime). Donation: `_train` donates the train state, `_act` / `_act_envs` the
warm start(s) and the key they replace.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from mbdpo_core.agent_state import AgentState, CheckpointingAgent
from mbdpo_core.batch import Batch
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import ShapeError
from mbdpo_core.metrics import UPDATE_METRICS
from mbdpo_core.noise import UpdateNoise, draw
from mbdpo_core.params import init_params

from .augment import acting_obs
from .data_parallel import (
    _one_device,
    _replicate,
    _replicated_constraint,
    check_devices,
    shard_batch,
    shard_noise,
)
from .layers import matmul_precision, renorm_rows
from .losses import DeviceBatch, device_batch
from .noise import Sampler, to_device
from .params_io import export_params, from_agent_state, import_params, to_agent_state
from .planners import make_env_planner, make_planner
from .runtime import configure, make_rng, resolve_device
from .update import make_optimizers, update_step
from .world_model import WorldModel


@struct.dataclass
class _TrainState:
    """Everything an agent carries between calls (a pytree of arrays): model and optim, the
    states of the WorldModel and of its (model, pi) optimisers as pure dicts (`_pure`);
    energy_stats [2] (mean, std of F logits); scale [] (RunningScale); prev_plan [H, A]; key."""

    model: dict
    optim: dict
    energy_stats: jax.Array
    scale: jax.Array
    prev_plan: jax.Array
    key: jax.Array


def _pure(node: Any) -> dict:
    """The state of an NNX object as nested dicts of arrays (what nnx.merge takes back)."""
    return nnx.to_pure_dict(nnx.state(node))


@functools.cache
def _graphdefs(cfg: Config) -> tuple[nnx.GraphDef, nnx.GraphDef]:
    """The graph definitions of WorldModel(cfg) and of its optimisers (built abstractly)."""
    model = nnx.eval_shape(lambda: WorldModel(cfg))
    optims = nnx.eval_shape(lambda: make_optimizers(WorldModel(cfg)))
    return nnx.graphdef(model), nnx.graphdef(optims)


# Module-level compiled functions with the (hashable, frozen) Config static: every agent of one
# config shares one compilation per input shape.


def _plan_core(cfg: Config, model_state, stats, prev_plan, obs, t0, eval_mode, task, noise):
    model = nnx.merge(_graphdefs(cfg)[0], model_state)
    obs = acting_obs(cfg, obs, noise.obs_shift)  # rgb: shifted unless obs_shift=update
    plan = make_planner(cfg)
    with matmul_precision(cfg.precision, None):
        z = model.encode(obs[None], None if task is None else task[None])
        return plan(model, z, prev_plan, t0, eval_mode, task, noise, (stats[0], stats[1]))


@functools.partial(jax.jit, static_argnums=0)
def _plan(cfg: Config, model_state, stats, prev_plan, obs, t0, eval_mode, task, noise):
    return _plan_core(cfg, model_state, stats, prev_plan, obs, t0, eval_mode, task, noise)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=(3, 4))
def _act(cfg: Config, model_state, stats, prev_plan, key, obs, t0, eval_mode, task):
    key, sub = jax.random.split(key)
    noise = draw("plan", cfg, Sampler(sub))
    action, plan = _plan_core(cfg, model_state, stats, prev_plan, obs, t0, eval_mode, task, noise)
    return action, plan, key


def _plan_envs_core(cfg: Config, model_state, stats, plans, obs, t0, eval_mode, task, noise):
    """_plan_core for N environments: each observation encoded alone, one batched planner call.
    Shapes: plans [N, H, A], obs [N, *O], t0 [N] -> (actions [N, A], plans [N, H, A])."""
    model = nnx.merge(_graphdefs(cfg)[0], model_state)

    def encode(obs, shift):
        obs = acting_obs(cfg, obs, shift)
        return model.encode(obs[None], None if task is None else task[None])

    plan_envs = make_env_planner(cfg)
    with matmul_precision(cfg.precision, None):
        z = jax.vmap(encode)(obs, noise.obs_shift)
        return plan_envs(model, z, plans, t0, eval_mode, task, noise, (stats[0], stats[1]))


@functools.partial(jax.jit, static_argnums=0)
def _plan_envs(cfg: Config, model_state, stats, plans, obs, t0, eval_mode, task, noise):
    return _plan_envs_core(cfg, model_state, stats, plans, obs, t0, eval_mode, task, noise)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=(3, 4))
def _act_envs(cfg: Config, model_state, stats, plans, key, obs, t0, eval_mode, task):
    key, sub = jax.random.split(key)
    noise = draw("plan", cfg, Sampler(sub), envs=obs.shape[0])
    actions, plans = _plan_envs_core(
        cfg, model_state, stats, plans, obs, t0, eval_mode, task, noise
    )
    return actions, plans, key


def _step(cfg: Config, state: _TrainState, batch: DeviceBatch, noise: UpdateNoise, grads=None):
    model_def, optim_def = _graphdefs(cfg)
    model, optims = nnx.merge(model_def, state.model), nnx.merge(optim_def, state.optim)
    with matmul_precision(cfg.precision, None):
        metrics, stats, scale = update_step(
            model, optims, batch, noise, state.energy_stats, state.scale, grads
        )
    new = state.replace(model=_pure(model), optim=_pure(optims), energy_stats=stats, scale=scale)
    return _replicated_constraint(new, cfg), metrics


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def _train(cfg: Config, state: _TrainState, batch: DeviceBatch):
    key, sub = jax.random.split(state.key)
    noise = draw("update", cfg, Sampler(sub), batch.action.shape[1])
    # materialise the draws once: XLA would otherwise fuse (recompute) the random bits into
    # each consumer of a dropout mask, forward and backward (+3% of an update on CPU)
    noise = jax.lax.optimization_barrier(noise)
    return _step(cfg, state.replace(key=key), batch, noise)


@functools.partial(jax.jit, static_argnums=0)
def _train_with_noise(cfg: Config, state: _TrainState, batch: DeviceBatch, noise: UpdateNoise):
    grads: dict[str, jax.Array] = {}
    state, metrics = _step(cfg, state, batch, noise, grads)
    return state, metrics, grads


_renorm_table = jax.jit(renorm_rows)


def _renorm_task_row(state: _TrainState, task: jax.Array) -> _TrainState:
    """The state with the acting task's embedding row renormalised, as torch's lookups do in
    place when acting (docs/method.md#task-embedding-and-action-masks)."""
    nets = state.model["nets"]
    emb = {**nets["task_emb"], "weight": _renorm_table(nets["task_emb"]["weight"], task)}
    return state.replace(model={**state.model, "nets": {**nets, "task_emb": emb}})


def _floats(metrics: dict[str, jax.Array]) -> dict[str, float]:
    """Device metrics -> floats in the order of UPDATE_METRICS."""
    values = jax.device_get(metrics)
    return {k: float(values[k]) for k in UPDATE_METRICS}


class Agent(CheckpointingAgent):
    """MBDPO agent on one JAX device, or updating on cfg.data_parallel_devices devices with its
    state replicated over them (data_parallel; it acts on one); parameters start from
    mbdpo_core.params.init_params with cfg.seed. Shapes: O observation, A action, H horizon."""

    backend = "jax"

    def __init__(self, cfg: Config, device: str | None = None) -> None:
        self.cfg = cfg
        # the compiled programs do not depend on the seed: agents of every seed share them
        self._program_cfg = dataclasses.replace(cfg, seed=0)
        self.device = resolve_device(device or cfg.device)
        configure(self.device)
        self._sharded = cfg.data_parallel_devices > 1
        if self._sharded:
            check_devices(cfg)
        make_planner(cfg)  # fail early on an unknown planner
        model = WorldModel(cfg)
        import_params(model, init_params(cfg, np.random.default_rng(cfg.seed)))
        state = _TrainState(
            model=_pure(model),
            optim=_pure(make_optimizers(model)),
            energy_stats=jnp.array([0.0, 1.0], jnp.float32),
            scale=jnp.float32(1.0),
            prev_plan=jnp.zeros((cfg.horizon, cfg.action_dim), jnp.float32),
            key=make_rng(cfg.seed),
        )
        self._state: _TrainState = self._place(state)
        self._env_plans: jax.Array | None = None  # warm starts of act_envs [N, H, A]

    def _place(self, tree: Any) -> Any:
        """tree on the agent's device, or replicated over its data mesh."""
        return _replicate(tree, self.cfg) if self._sharded else jax.device_put(tree, self.device)

    @property
    def model(self) -> WorldModel:
        """The world model of the current parameters (a fresh NNX object; eager use, tests)."""
        return nnx.merge(_graphdefs(self._program_cfg)[0], self._state.model)

    @property
    def prev_plan(self) -> np.ndarray:
        """The planner's warm start [H, A] (float32 numpy copy)."""
        return np.array(self._state.prev_plan, np.float32)

    def _optimizers(self) -> tuple[nnx.Optimizer, nnx.Optimizer]:
        """The (model, pi) optimisers of the current state (fresh NNX objects)."""
        return nnx.merge(_graphdefs(self._program_cfg)[1], self._state.optim)

    # ----- acting -----------------------------------------------------------------------------
    def _act_inputs(self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None):
        cfg, s = self.cfg, self._state
        obs = np.asarray(obs)
        if obs.shape != tuple(cfg.obs_shape):
            raise ShapeError(f"obs has shape {obs.shape}, expected {cfg.obs_shape}.")
        if cfg.multitask:
            if task is None or not 0 <= int(task) < cfg.n_tasks:
                raise ValueError(
                    f"task={task!r}: a multi-task agent needs a task id in 0..{cfg.n_tasks - 1}."
                )
            task = jnp.asarray(int(task), jnp.int32)
            self._state = s = _renorm_task_row(s, task)
        else:
            task = None
        obs = jnp.asarray(obs if obs.dtype == np.uint8 else obs.astype(np.float32))
        flags = jnp.asarray(bool(t0)), jnp.asarray(bool(eval_mode))
        acting = (s.model, s.energy_stats, s.prev_plan)
        if self._sharded:  # the planner runs on this process's own copy
            acting = _one_device(acting, self.device)
        return (*acting, obs, *flags, task)

    def _keep_plan(self, plan: jax.Array, key: jax.Array | None = None) -> None:
        """Store the warm start (and the advanced key) where the state lives."""
        new = {"prev_plan": plan} if key is None else {"prev_plan": plan, "key": key}
        self._state = self._state.replace(**(self._place(new) if self._sharded else new))

    def act(
        self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None = None
    ) -> np.ndarray:
        """obs [*O] -> action [A] in [-1, 1] (float32 numpy); keeps the plan as warm start."""
        model, stats, prev, obs, t0, ev, task = self._act_inputs(obs, t0, eval_mode, task)
        key = self._state.key
        if self._sharded:
            key = _one_device(key, self.device)
        action, plan, key = _act(self._program_cfg, model, stats, prev, key, obs, t0, ev, task)
        self._keep_plan(plan, key)
        return np.asarray(action)

    def plan_with_noise(
        self, obs: np.ndarray, t0: bool, eval_mode: bool, task: int | None, noise: Any
    ) -> np.ndarray:
        """act with a numpy noise bundle of cfg.planner; keeps the plan (the warm start)."""
        model, stats, prev, obs, t0, ev, task = self._act_inputs(obs, t0, eval_mode, task)
        noise = to_device(noise, self.device)
        action, plan = _plan(self._program_cfg, model, stats, prev, obs, t0, ev, task, noise)
        self._keep_plan(plan)
        return np.asarray(action)

    @property
    def env_plans(self) -> np.ndarray | None:
        """The warm starts of act_envs [N, H, A] (float32 numpy copy; None before its first
        call). They are not part of the agent state (docs/design.md#vectorised-acting)."""
        return None if self._env_plans is None else np.array(self._env_plans, np.float32)

    @env_plans.setter
    def env_plans(self, plans: np.ndarray) -> None:
        """Restore the warm starts of act_envs [N, H, A] (a loop resuming mid-episode)."""
        self._env_plans = jax.device_put(jnp.asarray(plans, jnp.float32), self.device)

    def act_envs(
        self, obs: np.ndarray, t0: np.ndarray, eval_mode: bool, task: int | None = None
    ) -> np.ndarray:
        """obs [N, *O] of N environments of one task, t0 [N] bool -> actions [N, A] in [-1, 1]
        from one batched planner call; keeps each environment's warm start."""
        model, stats, plans, obs, t0, ev, task = self._env_inputs(obs, t0, eval_mode, task)
        key = self._state.key
        if self._sharded:
            key = _one_device(key, self.device)
        actions, self._env_plans, key = _act_envs(
            self._program_cfg, model, stats, plans, key, obs, t0, ev, task
        )
        self._state = self._state.replace(key=self._place(key) if self._sharded else key)
        return np.asarray(actions)

    def plan_envs_with_noise(
        self, obs: np.ndarray, t0: np.ndarray, eval_mode: bool, task: int | None, noise: Any
    ) -> np.ndarray:
        """act_envs with a numpy bundle of cfg.planner with an env axis (every field [N, ...]);
        environment n gets what plan_with_noise gives on its slices."""
        model, stats, plans, obs, t0, ev, task = self._env_inputs(obs, t0, eval_mode, task)
        noise = to_device(noise, self.device)
        actions, self._env_plans = _plan_envs(
            self._program_cfg, model, stats, plans, obs, t0, ev, task, noise
        )
        return np.asarray(actions)

    def _env_inputs(self, obs: np.ndarray, t0: np.ndarray, eval_mode: bool, task: int | None):
        """_act_inputs for N environments: obs [N, *O], t0 [N]; the warm starts [N, H, A]."""
        obs, t0 = np.asarray(obs), np.asarray(t0, dtype=bool)
        n = obs.shape[0] if obs.ndim else 0
        if obs.shape[1:] != tuple(self.cfg.obs_shape) or n < 1:
            raise ShapeError(f"obs has shape {obs.shape}, expected [N, *{self.cfg.obs_shape}].")
        if t0.shape != (n,):
            raise ShapeError(f"t0 has shape {t0.shape}, expected ({n},).")
        model, stats, _, first, _, ev, task = self._act_inputs(obs[0], False, eval_mode, task)
        if self._env_plans is None or self._env_plans.shape[0] != n:
            shape = (n, self.cfg.horizon, self.cfg.action_dim)
            self._env_plans = jax.device_put(jnp.zeros(shape, jnp.float32), self.device)
        obs = jnp.asarray(obs, first.dtype)
        return model, stats, self._env_plans, obs, jnp.asarray(t0), ev, task

    # ----- training ---------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        """One world-model, policy and Polyak step; noise drawn from the agent's key.
        Returns UPDATE_METRICS (mbdpo_core.metrics) as floats."""
        self._state, metrics = _train(self._program_cfg, self._state, self._batch(batch))
        return _floats(metrics)

    def update_with_noise(self, batch: Batch, noise: UpdateNoise) -> dict[str, float]:
        """update with a numpy UpdateNoise (the parity tests)."""
        noise = self._noise(noise)
        self._state, metrics, _ = _train_with_noise(
            self._program_cfg, self._state, self._batch(batch), noise
        )
        return _floats(metrics)

    def grads_with_noise(self, batch: Batch, noise: UpdateNoise) -> dict[str, np.ndarray]:
        """The unclipped gradients of that update by canonical name; the agent is unchanged.

        The model group gets d total_loss; pi.* get d pi_loss with the Q parameters after the
        model step (as in update).
        """
        noise = self._noise(noise)
        _, _, grads = _train_with_noise(self._program_cfg, self._state, self._batch(batch), noise)
        return {k: np.asarray(v, np.float32) for k, v in grads.items()}

    def _batch(self, batch: Batch) -> DeviceBatch:
        if self._sharded:
            return shard_batch(batch, self.cfg)
        return device_batch(batch, self.cfg, self.device)

    def _noise(self, noise: UpdateNoise) -> UpdateNoise:
        return shard_noise(noise, self.cfg) if self._sharded else to_device(noise, self.device)

    # ----- parameters and state ---------------------------------------------------------------
    def export_params(self) -> dict[str, np.ndarray]:
        """Every parameter incl. target_q.*, canonical names (mbdpo_core.params), float32."""
        return export_params(self.model)

    def import_params(self, params: dict[str, np.ndarray]) -> None:
        """Set every parameter from canonical numpy arrays (checked: CheckpointError)."""
        model = self.model
        import_params(model, params)
        self._state = self._state.replace(model=self._place(_pure(model)))

    def get_state(self) -> AgentState:
        """The whole agent state as core's AgentState (numpy)."""
        return to_agent_state(self)

    def set_state(self, state: AgentState) -> None:
        """Restore an AgentState of either backend."""
        from_agent_state(self, state)
        if self._sharded:
            self._state = self._place(self._state)
