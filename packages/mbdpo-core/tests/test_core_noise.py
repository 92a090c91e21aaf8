"""The noise declaration (mbdpo_core.noise): every bundle's shapes, laws and draw order."""

import numpy as np
import pytest
from mbdpo_core.config import load_config
from mbdpo_core.noise import (
    BUNDLES,
    DiffusionNoise,
    NumpySampler,
    bundle_shapes,
    draw,
    draw_numpy,
    expected_shapes,
)

CFG = load_config(["preset=cpu", "mlp_dim=16", "latent_dim=16", "num_q=3", "batch_size=8"])


def test_update_shapes_follow_the_batch_not_the_config():
    noise = draw_numpy("update", CFG, np.random.default_rng(0), batch_size=5)
    H, A, M, Nq = CFG.horizon, CFG.action_dim, CFG.mlp_dim, CFG.num_q
    assert noise.target_pi_eps.shape == (H, 5, A)
    assert noise.q_keep.shape == (Nq, H, 5, M)
    assert noise.pi_q_keep.shape == (2, H + 1, 5, M)
    assert noise.pi_eps.shape == (H + 1, 5, A)
    assert noise.score is None and noise.obs_shift is None


@pytest.mark.parametrize(
    "overrides",
    [["planner=diffusion"], ["planner=mppi"], ["planner=policy"], ["use_score_network=true"]],
)
def test_drawn_shapes_equal_the_declared_shapes(overrides):
    cfg = load_config(["preset=cpu", "num_q=3", *overrides])
    for kind in ("plan", "update"):
        bundle = draw_numpy(kind, cfg, np.random.default_rng(1))
        assert bundle_shapes(bundle) == expected_shapes(kind, cfg)


def test_laws():
    cfg = load_config(["preset=cpu", "num_q=4", "dropout=0.5", "use_score_network=true"])
    noise = draw_numpy("update", cfg, np.random.default_rng(2), batch_size=64)
    assert set(np.unique(noise.q_keep)) == {0.0, 1.0}
    assert abs(noise.q_keep.mean() - 0.5) < 0.05
    assert noise.energy_uniform.min() >= -1 and noise.energy_uniform.max() <= 1
    pair = noise.target_q_pair
    assert pair.shape == (2,) and pair[0] != pair[1] and 0 <= pair.min() and pair.max() < 4
    assert 1 <= int(noise.score.tau) < cfg.diffusion_steps
    assert noise.score.value.pi_eps.shape == (cfg.diffusion_num_samples_mf, cfg.action_dim)
    assert abs(noise.energy_gauss.std() - 1.0) < 0.05


@pytest.mark.parametrize(
    ("overrides", "monte_carlo"),
    [
        (["use_score_network=true", "score_only_inference=true"], False),
        (["use_score_network=true"], False),  # the net plans (published): no Monte-Carlo draws
        (["use_score_network=true", "score_planning=monte_carlo"], True),
        ([], True),
    ],
)
def test_planning_with_the_score_network_draws_only_the_action_noise(overrides, monte_carlo):
    cfg = load_config(["preset=cpu", *overrides])
    noise = draw_numpy("plan", cfg, np.random.default_rng(0))
    assert isinstance(noise, DiffusionNoise)
    assert (noise.sample_eps.size > 0) == monte_carlo
    assert noise.action_eps.shape == (cfg.action_dim,)


def test_score_target_draws_dropout_masks_planning_does_not():
    cfg = load_config(["preset=cpu", "num_q=4", "dropout=0.5", "use_score_network=true"])
    value = draw_numpy("update", cfg, np.random.default_rng(4), batch_size=8).score.value
    assert value.q_keep.shape == (2, cfg.diffusion_num_samples_mf, cfg.mlp_dim)
    assert set(np.unique(value.q_keep)) == {0.0, 1.0}
    assert abs(value.q_keep.mean() - 0.5) < 0.05
    assert draw_numpy("value", cfg, np.random.default_rng(4), 8).q_keep is None


def test_fields_are_drawn_in_declaration_order():
    """The numpy draw is reproducible from the generator alone: the first field of an update
    is the first normal draw of the generator."""
    rng = np.random.default_rng(3)
    noise = draw("update", CFG, NumpySampler(rng))
    first = np.random.default_rng(3).standard_normal(noise.target_pi_eps.shape)
    np.testing.assert_array_equal(noise.target_pi_eps, first.astype(np.float32))


def test_unknown_kind_names_the_valid_ones():
    with pytest.raises(ValueError, match="Valid kinds: plan, " + ", ".join(BUNDLES)):
        draw_numpy("sample", CFG, np.random.default_rng(0))
