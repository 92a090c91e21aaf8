"""Native state <-> the canonical numpy forms of core (docs/design.md#agent-state-and-checkpoints):
parameters by mbdpo_core.params names, and the whole agent as mbdpo_core.agent_state.AgentState.

Weights are stored in the canonical [in, out] layout already, so both directions are plain
float32 copies; names and shapes are checked with mbdpo_core.checkpoint.check_arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from mbdpo_core.agent_state import GROUPS, AgentState
from mbdpo_core.checkpoint import check_arrays
from mbdpo_core.params import optimizer_group

from .world_model import WorldModel

if TYPE_CHECKING:
    from .agent import Agent


def export_params(model: WorldModel) -> dict[str, np.ndarray]:
    """Every parameter incl. `target_q.*`, canonical names, float32 numpy copies."""
    return {
        name: p.detach().cpu().numpy().astype(np.float32, copy=True)
        for name, p in model._canonical_parameters().items()
    }


@torch.no_grad()
def import_params(model: WorldModel, params: dict[str, np.ndarray]) -> None:
    """Copy canonical parameters into the model.

    Raises:
        CheckpointError: names missing or unexpected, or shapes that differ (all listed).
    """
    native = model._canonical_parameters()
    check_arrays({name: tuple(p.shape) for name, p in native.items()}, params)
    for name, p in native.items():
        p.copy_(torch.as_tensor(np.asarray(params[name], dtype=np.float32)))


def to_agent_state(agent: Agent) -> AgentState:
    """The agent's parameters, Adam moments and steps, statistics, warm start and generator."""
    named = agent.model._canonical_parameters()
    adam: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    steps: dict[str, int] = {}
    for group, optim in zip(GROUPS, agent.optimizers, strict=True):
        adam[group], steps[group] = {}, 0
        for name, p in named.items():
            if optimizer_group(name) != group:
                continue
            state = optim.state.get(p, {})
            m, v = (state.get(k, torch.zeros_like(p)) for k in ("exp_avg", "exp_avg_sq"))
            adam[group][name] = (m.detach().cpu().numpy().copy(), v.detach().cpu().numpy().copy())
            steps[group] = int(state["step"]) if "step" in state else 0
    mean, std = agent.energy_stats.tolist()
    return AgentState(
        params=export_params(agent.model),
        adam=adam,
        optim_step=steps,
        running_scale=float(agent.scale),
        energy_stats=(mean, std),
        prev_plan=agent.prev_plan,
        rng={"backend": "torch", "state": agent.generator.get_state().tolist()},
    )


def from_agent_state(agent: Agent, state: AgentState) -> None:
    """Restore everything to_agent_state holds (from either backend; another backend's RNG
    state gives a generator seeded from (cfg.seed, model step))."""
    import_params(agent.model, state.params)
    device = agent.device
    named = agent.model._canonical_parameters()
    for group, optim in zip(GROUPS, agent.optimizers, strict=True):
        step = int(state.optim_step[group])
        for name, (m, v) in state.adam[group].items():
            optim.state[named[name]] = (
                {
                    "step": torch.tensor(float(step), device=device),
                    "exp_avg": torch.tensor(np.asarray(m, np.float32), device=device),
                    "exp_avg_sq": torch.tensor(np.asarray(v, np.float32), device=device),
                }
                if step > 0
                else {}
            )
    agent._prev_plan = torch.tensor(np.asarray(state.prev_plan, np.float32), device=device)
    agent.scale = torch.tensor(float(state.running_scale), device=device)
    agent.energy_stats = torch.tensor([float(x) for x in state.energy_stats], device=device)
    if state.rng.get("backend") == "torch":
        agent.generator.set_state(torch.tensor(state.rng["state"], dtype=torch.uint8))
    else:  # another backend's key: a generator derived from the seed and the model step
        seq = np.random.SeedSequence([agent.cfg.seed, state.optim_step["model"]])
        agent.generator.manual_seed(int(seq.generate_state(1, np.uint64)[0]))
