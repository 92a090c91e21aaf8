"""The diffusion noise schedule, proposal std and time embedding against published values."""

import math

import numpy as np
import pytest
from mbdpo_core.reference import noise_schedule, proposal_std, time_embedding


def test_schedule_shapes_and_min_two_levels():
    beta, alpha, alpha_bar = noise_schedule(20, 1e-4, 1e-2)
    assert beta.shape == alpha.shape == alpha_bar.shape == (20,)
    assert beta[0] == pytest.approx(1e-4) and beta[-1] == pytest.approx(1e-2)
    np.testing.assert_allclose(alpha, 1.0 - beta)
    # T = max(steps, 2): one or zero steps still give a two-level schedule.
    assert noise_schedule(1, 1e-4, 1e-2)[2].shape == (2,)


def test_alpha_bar_values():
    _, _, ab = noise_schedule(20, 1e-4, 1e-2)
    # alpha_bar_0 = 1 - 1e-4; published: 0.99990, 0.99928, 0.97063, 0.90362.
    assert ab[0] == pytest.approx(0.9999, abs=1e-12)
    np.testing.assert_allclose(ab[[0, 1, 10, 19]], [0.99990, 0.99928, 0.97063, 0.90362], atol=5e-6)
    # alpha_bar_1 by hand: (1 - 1e-4)(1 - (1e-4 + 0.0099/19)) = 0.99990 x 0.9993789... = 0.999279
    step = (1e-2 - 1e-4) / 19
    assert ab[1] == pytest.approx((1 - 1e-4) * (1 - 1e-4 - step), rel=1e-12)


def test_proposal_std_values():
    _, _, ab = noise_schedule(20, 1e-4, 1e-2)
    sigma = proposal_std(ab)
    np.testing.assert_allclose(
        sigma[[19, 15, 10, 5, 1]], [0.327, 0.258, 0.174, 0.092, 0.027], atol=5e-4
    )
    # sigma_0 = sqrt(1e-4 / 0.9999) = 0.0100005...
    assert sigma[0] == pytest.approx(math.sqrt(1e-4 / 0.9999))


def test_time_embedding_at_zero_and_one():
    emb = time_embedding(0, 64)
    assert emb.shape == (64,)
    np.testing.assert_array_equal(emb, [0.0] * 32 + [1.0] * 32)
    # tau = 1: f_0 = 1 and f_31 = exp(-ln 10000) = 1e-4.
    emb = time_embedding(1.0, 64)
    assert emb[0] == pytest.approx(math.sin(1.0))
    assert emb[31] == pytest.approx(math.sin(1e-4))
    assert emb[32] == pytest.approx(math.cos(1.0))
    assert emb[63] == pytest.approx(math.cos(1e-4))


def test_time_embedding_batched_and_odd():
    emb = time_embedding(np.array([[0.0, 3.0]]), 7)
    assert emb.shape == (1, 2, 7)
    # half = 3: f = [1, 0.01, 1e-4]; the 7th entry is the zero pad.
    np.testing.assert_allclose(emb[0, 1, :3], np.sin(3.0 * np.array([1.0, 0.01, 1e-4])))
    np.testing.assert_allclose(emb[:, :, 6], 0.0)
