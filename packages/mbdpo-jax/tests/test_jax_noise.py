"""noise.Sampler draws every bundle of mbdpo_core.noise with the declared shapes and laws,
inside jit; to_device keeps the pytree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.noise import bundle_shapes, draw, draw_numpy, expected_shapes
from mbdpo_jax.noise import Sampler, to_device

CFG = load_config(["preset=cpu", "num_q=5", "batch_size=4", "use_score_network=true"])


@pytest.mark.parametrize("kind", ["diffusion", "mppi", "policy", "update"])
def test_jitted_draw_has_the_declared_shapes(kind):
    bundle = jax.jit(lambda key: draw(kind, CFG, Sampler(key), 3))(jax.random.key(1))
    assert bundle_shapes(bundle) == expected_shapes(kind, CFG, 3)


def test_laws():
    s = Sampler(jax.random.key(0))
    pairs = np.asarray(s.pairs((4000,), 5))
    assert pairs.dtype == np.int32 and pairs.min() >= 0 and pairs.max() < 5
    assert np.all(pairs[:, 0] != pairs[:, 1])
    counts = np.bincount(pairs[:, 0] * 5 + pairs[:, 1], minlength=25).reshape(5, 5)
    off = counts[~np.eye(5, dtype=bool)]
    assert off.min() > 120 and off.max() < 280  # 20 ordered pairs, 200 expected each
    u = np.asarray(s.uniform((10000,)))
    assert -1.0 <= u.min() < -0.99 and 0.99 < u.max() <= 1.0
    keep = np.asarray(s.bernoulli((10000,), 0.7))
    assert set(np.unique(keep)) == {0.0, 1.0} and abs(keep.mean() - 0.7) < 0.02
    ints = np.asarray(s.integers((1000,), 1, 4))
    assert set(np.unique(ints)) == {1, 2, 3}
    a, b = np.asarray(s.normal((3,))), np.asarray(s.normal((3,)))
    assert not np.array_equal(a, b)  # every draw advances the key


def test_to_device_keeps_the_bundle():
    noise = draw_numpy("update", CFG, np.random.default_rng(0))
    moved = to_device(noise, jax.devices("cpu")[0])
    assert type(moved) is type(noise) and isinstance(moved.q_keep, jax.Array)
    assert bundle_shapes(moved) == bundle_shapes(noise)
    np.testing.assert_array_equal(np.asarray(moved.score.tau), noise.score.tau)
    assert moved.obs_shift is None and jnp.issubdtype(moved.pi_q_pair.dtype, jnp.integer)
