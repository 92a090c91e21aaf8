"""Hand-computed checks of the numpy reference math (mbdpo_core.reference.math, scale) and of
mbdpo_core.discount."""

import math

import numpy as np
import pytest
from mbdpo_core.config import load_config
from mbdpo_core.discount import discount_heuristic
from mbdpo_core.reference import (
    RunningScale,
    bce_with_logits,
    gaussian_logprob,
    layer_norm,
    log_softmax,
    mish,
    percentile,
    simnorm,
    soft_ce,
    softmax,
    squash_log_std,
    symexp,
    symlog,
    tanh_squash,
    two_hot,
    two_hot_inv,
)

K, VMIN, VMAX = 101, -10.0, 10.0
# x with symlog(x) = 0.3: x = e^0.3 - 1 = 0.3498588075760032.
X_03 = math.exp(0.3) - 1.0


def _logits_of(probs: np.ndarray) -> np.ndarray:
    """Logits whose softmax is `probs` (zero entries get a very negative logit)."""
    return np.where(probs > 0, np.log(np.where(probs > 0, probs, 1.0)), -1e9)


def test_symlog_symexp_values():
    # symlog(e - 1) = ln(e) = 1; symlog(-(e^2 - 1)) = -ln(e^2) = -2; symlog(0) = 0.
    np.testing.assert_allclose(symlog([math.e - 1, -(math.e**2 - 1), 0.0]), [1.0, -2.0, 0.0])
    # symexp(1) = e - 1 = 1.718281828...; symexp(-2) = -(e^2 - 1) = -6.389056...
    np.testing.assert_allclose(symexp([1.0, -2.0]), [1.718281828459045, -6.38905609893065])
    x = np.linspace(-50, 50, 11)
    np.testing.assert_allclose(symexp(symlog(x)), x, rtol=1e-12, atol=1e-12)


def test_two_hot_of_zero_is_bin_50():
    # bin_size = 20 / 100 = 0.2; (0 - (-10)) / 0.2 = 50 exactly -> weight 1 on bin 50.
    enc = two_hot(np.array([[0.0]]), K, VMIN, VMAX)
    assert enc.shape == (1, K)
    expected = np.zeros(K)
    expected[50] = 1.0
    np.testing.assert_allclose(enc[0], expected, atol=1e-12)


def test_two_hot_between_bins():
    # symlog(X_03) = 0.3; (0.3 + 10) / 0.2 = 51.5 -> i = 51, w = 0.5: 0.5 at bins 51 and 52.
    enc = two_hot(np.array([[X_03]]), K, VMIN, VMAX)[0]
    assert enc[51] == pytest.approx(0.5, abs=1e-9)
    assert enc[52] == pytest.approx(0.5, abs=1e-9)
    assert enc.sum() == pytest.approx(1.0)
    assert np.count_nonzero(enc > 1e-9) == 2


def test_two_hot_edges_and_cfg():
    # Values beyond symexp(10) clip to the top bin (w = 0 there); below to bin 0.
    enc = two_hot(np.array([[1e9], [-1e9]]), K, VMIN, VMAX)
    assert enc[0, K - 1] == pytest.approx(1.0) and enc[0].sum() == pytest.approx(1.0)
    assert enc[1, 0] == pytest.approx(1.0) and enc[1].sum() == pytest.approx(1.0)
    cfg = load_config(["preset=cpu", "task=cartpole-balance"])
    x = np.array([[[X_03], [-3.0]]])
    np.testing.assert_array_equal(two_hot(x, cfg=cfg), two_hot(x, K, VMIN, VMAX))
    with pytest.raises(ValueError, match="num_bins"):
        two_hot(x)


def test_two_hot_inv_inverts_two_hot():
    for x in (0.0, X_03, -7.25, 123.0):
        enc = two_hot(np.array([[x]]), K, VMIN, VMAX)
        back = two_hot_inv(_logits_of(enc), K, VMIN, VMAX)
        assert back.shape == (1, 1)
        assert back[0, 0] == pytest.approx(x, rel=1e-9, abs=1e-9)
    # Uniform logits: the mean of the symmetric centres is 0 -> symexp(0) = 0.
    assert two_hot_inv(np.zeros((2, K)), K, VMIN, VMAX) == pytest.approx(np.zeros((2, 1)))


def test_soft_ce_known_cases():
    # Uniform logits: every log_softmax entry is -ln(101), so CE = ln(101) = 4.6151205...
    ce = soft_ce(np.zeros((3, K)), np.array([[0.0], [X_03], [-40.0]]), K, VMIN, VMAX)
    np.testing.assert_allclose(ce, np.full((3, 1), math.log(101)))
    # Target X_03 (0.5 at bins 51, 52), logit ln 2 at bin 51, 0 elsewhere: normaliser 100 + 2;
    # CE = -(0.5 (ln 2 - ln 102) + 0.5 (-ln 102)) = ln 102 - 0.5 ln 2 = 4.2783992...
    logits = np.zeros((1, K))
    logits[0, 51] = math.log(2.0)
    ce = soft_ce(logits, np.array([[X_03]]), K, VMIN, VMAX)
    assert ce[0, 0] == pytest.approx(math.log(102) - 0.5 * math.log(2.0), rel=1e-9)


def test_softmax_and_log_softmax():
    x = np.array([[0.0, math.log(3.0)], [1000.0, 1000.0]])
    np.testing.assert_allclose(softmax(x), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(log_softmax(x), np.log([[0.25, 0.75], [0.5, 0.5]]))


def test_simnorm_groups():
    rng = np.random.default_rng(0)
    out = simnorm(rng.standard_normal((4, 32)) * 5, group=8)
    np.testing.assert_allclose(out.reshape(4, 4, 8).sum(-1), np.ones((4, 4)))
    # One group log([1]*7 + [9]): softmax = 1/16 seven times and 9/16.
    x = np.log(np.array([1.0] * 7 + [9.0]))
    np.testing.assert_allclose(simnorm(x), [1 / 16] * 7 + [9 / 16])
    with pytest.raises(ValueError, match="multiple"):
        simnorm(np.zeros(12))


def test_mish_layer_norm_bce():
    # mish(0) = 0; mish(1) = tanh(ln(1 + e)) = 0.8650983882673103.
    np.testing.assert_allclose(mish([0.0, 1.0]), [0.0, 0.8650983882673103])
    assert mish(-100.0) == pytest.approx(0.0, abs=1e-30)
    # [1, 3]: mean 2, population var 1 -> [-1, 1] / sqrt(1 + 1e-5); then * w + b.
    out = layer_norm([[1.0, 3.0]], [2.0, 1.0], [0.5, 0.0])
    s = 1.0 / math.sqrt(1.0 + 1e-5)
    np.testing.assert_allclose(out, [[-2 * s + 0.5, s]])
    # BCE at logit 0 is ln 2 for either target.
    np.testing.assert_allclose(bce_with_logits([0.0, 0.0], [1.0, 0.0]), [math.log(2)] * 2)


def test_policy_math():
    # raw = 0 -> halfway: -10 + 0.5 * 12 * 1 = -4.
    assert squash_log_std(0.0, -10.0, 2.0) == pytest.approx(-4.0)
    assert squash_log_std(100.0, -10.0, 2.0) == pytest.approx(2.0)
    # eps = [1, 0], log_std = [0, 0.5]: -0.5 - 0.5 - ln(2 pi) = -1 - 1.8378770664 = -2.8378770664
    lp = gaussian_logprob(np.array([[1.0, 0.0]]), np.array([[0.0, 0.5]]))
    assert lp.shape == (1, 1)
    assert lp[0, 0] == pytest.approx(-1.0 - math.log(2 * math.pi))
    # mean 0, eps 0: action 0, log_det = 2 ln(1 + 1e-6).
    action, log_det = tanh_squash(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)))
    np.testing.assert_allclose(action, 0.0)
    assert log_det[0, 0] == pytest.approx(2 * math.log(1 + 1e-6))


def test_percentile_and_running_scale():
    x = np.array([[30.0], [0.0], [20.0], [10.0], [40.0]])
    # Sorted 0..40 step 10, N = 5: p5 at position 0.2 -> 2.0; p95 at 3.8 -> 38.0.
    assert percentile(x, 5) == pytest.approx(2.0)
    assert percentile(x, 95) == pytest.approx(38.0)
    assert percentile(x, 37) == pytest.approx(np.percentile(x, 37))
    scale = RunningScale(tau=0.01)
    assert scale.value == 1.0
    # S = 1 + 0.01 (max(36, 1) - 1) = 1.35
    assert scale.update(x) == pytest.approx(1.35)
    np.testing.assert_allclose(scale(np.array([2.7])), [2.0])
    # Range 0.1 < 1 -> target 1: S = 1.35 + 0.01 (1 - 1.35) = 1.3465
    assert scale.update(np.array([[0.0], [0.1]])) == pytest.approx(1.3465)


@pytest.mark.parametrize(("length", "gamma"), [(100, 0.95), (500, 0.99), (1000, 0.995)])
def test_discount_heuristic(length, gamma):
    # T/5 = 20 -> 19/20 = 0.95; 100 -> 0.99; 200 -> 0.995.
    assert discount_heuristic(length) == pytest.approx(gamma)


def test_discount_clips():
    assert discount_heuristic(10) == pytest.approx(0.95)
    assert discount_heuristic(100000) == pytest.approx(0.995)
