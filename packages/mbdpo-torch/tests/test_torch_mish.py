"""The one-exp Mish (math.mish) equals torch's Mish, value and derivative, incl. large |x|."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mbdpo_torch.math import mish

EXTREME = [-1e30, -1e5, -200.0, -103.0, -20.0, 0.0, 19.9999, 20.0, 20.0001, 200.0, 1e5, 1e30]


def _inputs() -> torch.Tensor:
    return torch.cat([torch.linspace(-120.0, 120.0, 100_001), torch.tensor(EXTREME)])


def _value_and_grad(fn, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_()
    y = fn(x)
    (dx,) = torch.autograd.grad(y, x, g)
    return y.detach(), dx


def test_mish_value_and_derivative_match_torch():
    x = _inputs()
    g = torch.rand(x.shape) + 0.5
    y, dx = _value_and_grad(mish, x, g)
    assert torch.isfinite(y).all() and torch.isfinite(dx).all()
    # float64 torch Mish as the exact function, float32 torch Mish as the usual computation
    y64, dx64 = _value_and_grad(F.mish, x.double(), g.double())
    y32, dx32 = _value_and_grad(F.mish, x, g)
    scale = y64.abs().clamp(min=1.0)
    assert ((y.double() - y64).abs() / scale).max() <= 1e-6
    assert (dx.double() - dx64).abs().max() <= 1e-6
    torch.testing.assert_close(y, y32, rtol=1e-6, atol=1e-6)
    # F.mish's own float32 derivative is ~1e-6 off the exact one; ours is within 2e-7 of it
    torch.testing.assert_close(dx, dx32, rtol=0.0, atol=2e-6)
    with torch.no_grad():  # the planning path (no autograd) computes the same values
        torch.testing.assert_close(mish(x), y, rtol=0.0, atol=0.0)


def test_mish_derivative_is_used_in_training_graphs():
    """A wrong derivative formula would fail this check of the chain through two layers."""
    torch.manual_seed(0)
    x = torch.randn(64, 32, dtype=torch.float64, requires_grad=True)
    w = torch.randn(32, 32, dtype=torch.float64) * 2
    assert torch.autograd.gradcheck(lambda v: mish(mish(v) @ w).sum(), (x,))
