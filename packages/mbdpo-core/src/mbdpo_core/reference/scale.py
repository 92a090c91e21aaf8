"""RunningScale: the policy loss's Q normaliser (5th-95th percentile range;
docs/method.md#policy-objective)."""

from __future__ import annotations

from typing import Any

import numpy as np


def percentile(x: Any, p: float) -> float:
    """p-th percentile of all entries by linear interpolation at position p (N - 1) / 100."""
    xs = np.sort(np.asarray(x, dtype=np.float64).reshape(-1))
    pos = p * (xs.size - 1) / 100.0
    lo = int(np.floor(pos))
    hi = min(lo + 1, xs.size - 1)
    return float(xs[lo] + (pos - lo) * (xs[hi] - xs[lo]))


class RunningScale:
    """Scalar S (init 1) tracking max(p95 - p5, 1) of Q values with Polyak rate tau.

    update(x): S <- S + tau (max(p95(x) - p5(x), 1) - S); calling it divides by S.
    """

    def __init__(self, tau: float, value: float = 1.0) -> None:
        self.tau = float(tau)
        self.value = float(value)

    def update(self, x: Any) -> float:
        """Update S from a batch of values. Shapes: x [B, 1] (any shape is flattened)."""
        target = max(percentile(x, 95) - percentile(x, 5), 1.0)
        self.value = self.value + self.tau * (target - self.value)
        return self.value

    def __call__(self, x: Any) -> np.ndarray:
        """x / S."""
        return np.asarray(x, dtype=np.float64) / self.value
