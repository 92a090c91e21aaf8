"""The shape vocabulary and checks at the package boundary (mbdpo_core.shapes, batch)."""

import numpy as np
import pytest
from mbdpo_core.batch import Batch, check_batch
from mbdpo_core.config import load_config
from mbdpo_core.errors import ShapeError
from mbdpo_core.shapes import check_shape, expected_shape


def test_expected_shape():
    assert expected_shape("H+1 B O", H=3, B=8, O=17) == (4, 8, 17)
    assert expected_shape("Nq H B 2", Nq=5, H=3, B=2) == (5, 3, 2, 2)
    with pytest.raises(KeyError, match="unknown shape letter 'K'"):
        expected_shape("K B", B=1)


def test_check_shape_names_the_array():
    with pytest.raises(ShapeError, match=r"x has shape \(2, 3\), expected \[B A\] = \(2, 4\)"):
        check_shape("x", np.zeros((2, 3)), "B A", B=2, A=4)


def test_check_batch():
    cfg = load_config(["task=cartpole-balance"])
    H, B, O, A = 3, 4, cfg.obs_shape[0], cfg.action_dim
    ok = Batch(
        np.zeros((H + 1, B, O)), np.zeros((H, B, A)), np.zeros((H, B, 1)), np.zeros((H, B, 1))
    )
    check_batch(ok, cfg)
    bad = Batch(ok.obs[:, :, :-1], ok.action, ok.reward, ok.terminated)
    with pytest.raises(ShapeError, match="batch.obs"):
        check_batch(bad, cfg)
