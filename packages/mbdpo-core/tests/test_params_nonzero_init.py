"""nonzero_init_params (the benchmarks' default weights, the bf16 bounds' weights) look like a
model at the start of training: no all-zero weight matrix, LayerNorm gains and biases as
initialised, the target Q equal to Q."""

import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.params import init_params, nonzero_init_params


@pytest.mark.parametrize("size", [1, 5])
def test_nonzero_init_params_fill_only_the_zero_matrices(size):
    cfg = load_config(["task=cheetah-run", f"model_size={size}"])
    init = init_params(cfg, np.random.default_rng(0))
    zero = {n for n, v in init.items() if n.endswith(".weight") and ".ln." not in n and not v.any()}
    assert zero >= {"reward.2.weight", "energy.2.weight", "q.2.weight"}

    params = nonzero_init_params(cfg, np.random.default_rng(0))

    assert set(params) == set(init)
    for name, value in params.items():
        if name.startswith("target_q."):
            np.testing.assert_array_equal(value, params["q." + name[len("target_q.") :]])
        elif name in zero:
            assert value.dtype == np.float32 and 0.015 < value.std() < 0.025, name
        else:  # biases, LayerNorm gains and every other matrix: their initial distribution
            assert value.shape == init[name].shape
            if ".ln.weight" in name:
                np.testing.assert_array_equal(value, 1.0)
            if name.endswith("bias"):
                np.testing.assert_array_equal(value, 0.0)
