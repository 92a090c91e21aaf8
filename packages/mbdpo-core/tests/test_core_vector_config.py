"""The keys of vectorised acting (docs/design.md#vectorised-acting): num_envs and
updates_per_step are counts, num_envs divides steps, and seeding lasts until the first episodes
of all environments are in the replay."""

import pytest
from mbdpo_core.config import load_config
from mbdpo_core.errors import ConfigError
from mbdpo_core.noise import expected_shapes

WALKER = ["task=walker-walk", "preset=cpu"]  # episodes of 500 steps


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["num_envs=0"], "Invalid num_envs=0: must be >= 1"),
        (["updates_per_step=0"], "Invalid updates_per_step=0: must be >= 1"),
        (["num_envs=3", "steps=1000"], "Invalid num_envs=3: must divide steps=1000"),
        (
            ["num_envs=4", "seed_steps=1000"],
            "Invalid seed_steps=1000: must be >= num_envs=4 x 500",
        ),
    ],
)
def test_bad_values_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config([*WALKER, *overrides])


def test_defaults_and_seeding_that_scales_with_the_envs():
    cfg = load_config(WALKER)
    assert (cfg.num_envs, cfg.updates_per_step, cfg.seed_steps) == (1, 1, 2500)
    assert load_config([*WALKER, "num_envs=4"]).seed_steps == 2500  # max(1000, 5 x 500)
    assert load_config([*WALKER, "num_envs=8"]).seed_steps == 4000  # 8 x 500


def test_plan_noise_gets_a_leading_env_axis():
    cfg = load_config([*WALKER, "planner=diffusion"])
    single, batched = expected_shapes("plan", cfg), expected_shapes("plan", cfg, envs=3)
    assert batched.keys() == single.keys()
    for name, shape in single.items():
        assert batched[name] == (None if shape is None else (3, *shape)), name
    with pytest.raises(ValueError, match="only plan bundles"):
        expected_shapes("update", cfg, envs=3)
