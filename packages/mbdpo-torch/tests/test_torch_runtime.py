"""Device choice, the noise drawer's shapes, and the planner choice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from mbdpo_core.errors import ConfigError
from mbdpo_core.noise import draw_diffusion_noise, draw_mppi_noise, draw_update_noise
from mbdpo_torch import make_planner
from mbdpo_torch.noise import Drawer
from mbdpo_torch.planners import PLANNERS
from mbdpo_torch.runtime import resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="Valid choices"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("over", [(), ("use_score_network=true",)])
def test_native_draws_match_numpy_shapes(tiny, over):
    cfg = tiny(*over)
    drawer = Drawer(cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    rng = np.random.default_rng(0)
    pairs = [
        (drawer.update(), draw_update_noise(cfg, rng)),
        (drawer.diffusion(), draw_diffusion_noise(cfg, rng)),
        (drawer.mppi(), draw_mppi_noise(cfg, rng)),
    ]
    for native, reference in pairs:
        for field in dataclasses.fields(reference):
            got, want = getattr(native, field.name), getattr(reference, field.name)
            if want is None or dataclasses.is_dataclass(want):
                assert (got is None) == (want is None), field.name
                continue
            assert tuple(got.shape) == np.shape(want), field.name
    keep = drawer.update().q_keep
    assert set(keep.unique().tolist()) <= {0.0, 1.0}


def test_planner_choice(tiny):
    for name in PLANNERS:
        assert make_planner(tiny(f"planner={name}")) is PLANNERS[name]
