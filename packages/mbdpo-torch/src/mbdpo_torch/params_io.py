"""Native parameters <-> the canonical numpy dict of mbdpo_core.params (the parity contract).

Weights are stored in the canonical [in, out] layout already, so both directions are plain
float32 copies; names and shapes are checked with mbdpo_core.checkpoint.check_arrays.
"""

from __future__ import annotations

import numpy as np
import torch
from mbdpo_core.checkpoint import check_arrays
from mbdpo_core.params import init_params

from .world_model import WorldModel


def export_params(model: WorldModel) -> dict[str, np.ndarray]:
    """Every parameter incl. `target_q.*`, canonical names, float32 numpy copies."""
    return {
        name: p.detach().cpu().numpy().astype(np.float32, copy=True)
        for name, p in model.canonical_parameters().items()
    }


@torch.no_grad()
def import_params(model: WorldModel, params: dict[str, np.ndarray]) -> None:
    """Copy canonical parameters into the model.

    Raises:
        CheckpointError: names missing or unexpected, or shapes that differ (all listed).
    """
    native = model.canonical_parameters()
    check_arrays({name: tuple(p.shape) for name, p in native.items()}, params)
    for name, p in native.items():
        p.copy_(torch.as_tensor(np.asarray(params[name], dtype=np.float32)))


def init_model(model: WorldModel, seed: int) -> None:
    """TD-MPC2 initialisation from core's numpy init (identical in both backends for a seed)."""
    import_params(model, init_params(model.cfg, np.random.default_rng(seed)))
