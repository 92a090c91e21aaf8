"""AgentState and its checkpoint layout (mbdpo_core.agent_state), with real files."""

import numpy as np
import pytest
from mbdpo_core.agent_state import AgentState, CheckpointingAgent
from mbdpo_core.config import load_config
from mbdpo_core.errors import CheckpointError
from mbdpo_core.params import init_params, param_shapes

CFG = load_config(["preset=cpu", "mlp_dim=16", "latent_dim=16", "enc_dim=16", "num_q=2"])


def _state(seed: int = 0) -> AgentState:
    rng = np.random.default_rng(seed)
    state = AgentState.initial(CFG, init_params(CFG, rng), {"backend": "numpy", "seed": seed})
    for group in state.adam.values():
        for name, (m, v) in group.items():
            group[name] = (m + rng.standard_normal(m.shape), v + rng.random(v.shape))
    state.optim_step = {"model": 7, "pi": 7}
    state.running_scale, state.energy_stats = 2.5, (0.1, 0.9)
    state.prev_plan = rng.uniform(-1, 1, state.prev_plan.shape).astype(np.float32)
    return state


class _Agent(CheckpointingAgent):
    backend = "numpy"

    def __init__(self, state: AgentState) -> None:
        self.cfg, self.state = CFG, state

    def get_state(self) -> AgentState:
        return self.state

    def set_state(self, state: AgentState) -> None:
        self.state = state


def test_groups_cover_every_trained_parameter_once():
    state = _state()
    model, pi = set(state.adam["model"]), set(state.adam["pi"])
    trained = {n for n in param_shapes(CFG) if not n.startswith("target_q.")}
    assert model | pi == trained and not model & pi
    assert pi == {n for n in trained if n.startswith("pi.")}


def test_save_and_load_round_trip(tmp_path):
    state = _state(1)
    _Agent(state).save(tmp_path / "ck", extra={"note": "x"})
    other = _Agent(_state(2))
    meta = other.load(tmp_path / "ck")
    assert meta["note"] == "x" and meta["backend"] == "numpy" and meta["format_version"] == 1
    got = other.state
    for name, value in state.params.items():
        np.testing.assert_array_equal(got.params[name], value)
    for group, moments in state.adam.items():
        for name, (m, v) in moments.items():
            np.testing.assert_array_equal(got.adam[group][name][0], m.astype(np.float32))
            np.testing.assert_array_equal(got.adam[group][name][1], v.astype(np.float32))
    assert got.optim_step == {"model": 7, "pi": 7} and got.running_scale == 2.5
    assert got.energy_stats == (0.1, 0.9) and got.rng == {"backend": "numpy", "seed": 1}
    np.testing.assert_array_equal(got.prev_plan, state.prev_plan)


def test_a_missing_moment_is_named():
    arrays, meta = _state().to_checkpoint(CFG, "numpy")
    del arrays["optim/pi/pi.0.weight/exp_avg_sq"]
    with pytest.raises(CheckpointError, match=r"pi optimizer state[\s\S]*pi.0.weight/exp_avg_sq"):
        AgentState.from_checkpoint(arrays, meta, CFG)


def test_meta_without_counters_is_an_error():
    arrays, meta = _state().to_checkpoint(CFG, "numpy")
    del meta["running_scale"]
    with pytest.raises(CheckpointError, match="running_scale"):
        AgentState.from_checkpoint(arrays, meta, CFG)
