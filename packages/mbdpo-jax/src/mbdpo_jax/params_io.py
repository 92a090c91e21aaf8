"""The NNX state <-> the canonical numpy arrays of mbdpo_core.params and core's AgentState
(docs/design.md#agent-state-and-checkpoints).

A parameter's canonical name is its state path without the leading `nets`, joined by dots:
`('nets', 'q', 0, 'ln', 'weight')` <-> `q.0.ln.weight`; Adam moments (optax `mu`, `nu` of
each nnx.Optimizer) carry the same paths. Weights are [in, out] on both sides, so values
cross as plain float32 copies; names and shapes are checked by mbdpo_core.checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from mbdpo_core.agent_state import AgentState
from mbdpo_core.checkpoint import check_arrays
from mbdpo_core.params import optimizer_group

from .world_model import WorldModel

if TYPE_CHECKING:
    from .agent import Agent


def _name(path: tuple) -> str:
    """Canonical name of a state path (its first key is `nets`)."""
    return ".".join(str(k) for k in path[1:])


def _in_group(group: str | None) -> Callable[[tuple, Any], bool]:
    """nnx filter: the parameters that optimiser `group` ("model" | "pi" | None) updates."""
    return lambda path, _: optimizer_group(_name(path)) == group


def _flat(state: Any) -> dict[str, Any]:
    """Canonical name -> leaf of a state (or Adam moment tree) over the model's paths."""
    return {_name(path): leaf for path, leaf in nnx.to_flat_state(state)}


def export_params(model: WorldModel) -> dict[str, np.ndarray]:
    """Every parameter incl. target_q.*, canonical names, float32 numpy copies."""
    return {k: np.array(v[...], np.float32) for k, v in _flat(nnx.state(model)).items()}


def import_params(model: WorldModel, params: Mapping[str, np.ndarray]) -> None:
    """Set the model's parameters (in place) from canonical numpy arrays.

    Raises:
        CheckpointError: names missing or unexpected, or shapes that differ (all listed).
    """
    state = nnx.state(model)
    check_arrays({k: tuple(v.shape) for k, v in _flat(state).items()}, params)
    values = [
        (path, jnp.asarray(np.asarray(params[_name(path)], np.float32)))
        for path, _ in nnx.to_flat_state(state)
    ]
    nnx.update(model, nnx.from_flat_state(values))


def _adam(optim: nnx.Optimizer) -> Any:
    """The optax ScaleByAdamState (count, mu, nu) of an optimiser of update.make_optimizers."""
    return optim.opt_state[0]


def to_agent_state(agent: Agent) -> AgentState:
    """The agent's state as core's AgentState (numpy)."""
    s = agent._state
    optims = dict(zip(("model", "pi"), agent._optimizers(), strict=True))
    adam = {}
    for group, optim in optims.items():
        mu, nu = _flat(_adam(optim).mu), _flat(_adam(optim).nu)
        adam[group] = {
            k: (np.array(mu[k][...], np.float32), np.array(nu[k][...], np.float32)) for k in mu
        }
    mean, std = np.asarray(s.energy_stats, np.float64)
    return AgentState(
        params=export_params(agent.model),
        adam=adam,
        optim_step={g: int(_adam(o).count[...]) for g, o in optims.items()},
        running_scale=float(s.scale),
        energy_stats=(float(mean), float(std)),
        prev_plan=np.array(s.prev_plan, np.float32),
        rng={"backend": "jax", "key": np.asarray(s.key, np.uint32).tolist()},
    )


def from_agent_state(agent: Agent, state: AgentState) -> None:
    """Set the agent from core's AgentState (of either backend; a torch generator state gives
    the key fold_in(key(seed), model step))."""
    model = agent.model
    import_params(model, state.params)
    optims = agent._optimizers()
    for group, optim in zip(("model", "pi"), optims, strict=True):
        adam, moments = _adam(optim), state.adam[group]
        for tree, i in ((adam.mu, 0), (adam.nu, 1)):
            for path, leaf in nnx.to_flat_state(tree):
                leaf[...] = jnp.asarray(moments[_name(path)][i], jnp.float32)
        adam.count[...] = jnp.asarray(state.optim_step[group], adam.count[...].dtype)
        optim.step[...] = jnp.asarray(state.optim_step[group], optim.step[...].dtype)
    rng = state.rng
    if rng.get("backend") == "jax":
        key = jnp.asarray(np.asarray(rng["key"], np.uint32))
    else:
        key = jax.random.fold_in(jax.random.PRNGKey(agent.cfg.seed), state.optim_step["model"])
    agent._state = jax.device_put(
        agent._state.replace(
            model=nnx.to_pure_dict(nnx.state(model)),
            optim=nnx.to_pure_dict(nnx.state(optims)),
            scale=jnp.float32(state.running_scale),
            energy_stats=jnp.asarray(state.energy_stats, jnp.float32),
            prev_plan=jnp.asarray(state.prev_plan, jnp.float32),
            key=key,
        ),
        agent.device,
    )
