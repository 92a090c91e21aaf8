"""Device choice, the torch sampler's draws (shapes and laws of core's declaration), and the
planner choice."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mbdpo_core.errors import ConfigError
from mbdpo_core.noise import bundle_shapes, draw, expected_shapes
from mbdpo_torch import make_planner
from mbdpo_torch.noise import Sampler
from mbdpo_torch.planners import diffusion, mppi, policy
from mbdpo_torch.runtime import make_rng, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="Valid choices"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("over", [(), ("use_score_network=true",), ("planner=mppi",)])
def test_sampler_draws_core_shapes(tiny, over):
    cfg = tiny(*over)
    sampler = Sampler(make_rng(0))
    for kind in ("plan", "update"):
        assert bundle_shapes(draw(kind, cfg, sampler)) == expected_shapes(kind, cfg)
    assert bundle_shapes(draw("update", cfg, sampler, 3)) == expected_shapes("update", cfg, 3)


def test_sampler_laws():
    sampler = Sampler(make_rng(1))
    keep = sampler.bernoulli((4000,), 0.75)
    assert set(keep.unique().tolist()) == {0.0, 1.0} and abs(float(keep.mean()) - 0.75) < 0.03
    pairs = sampler.pairs((500,), 3)
    assert pairs.shape == (500, 2) and bool((pairs[:, 0] != pairs[:, 1]).all())
    assert int(pairs.min()) == 0 and int(pairs.max()) == 2
    u = sampler.uniform((4000,))
    assert float(u.min()) >= -1.0 and float(u.max()) <= 1.0 and abs(float(u.mean())) < 0.05
    ints = sampler.integers((1000,), 1, 4)
    assert set(ints.unique().tolist()) == {1, 2, 3}
    assert abs(float(sampler.normal((4000,)).std()) - 1.0) < 0.05
    assert abs(float(sampler.gumbel((4000,)).mean()) - 0.5772) < 0.06


def test_planner_choice(tiny):
    for name, module in (("diffusion", diffusion), ("mppi", mppi), ("policy", policy)):
        assert make_planner(tiny(f"planner={name}")) is module.plan


def test_unknown_planner_is_a_config_error(tiny):
    cfg = dataclasses.replace(tiny(), planner="cem")
    with pytest.raises(ConfigError, match="Valid choices: diffusion, mppi, policy"):
        make_planner(cfg)
