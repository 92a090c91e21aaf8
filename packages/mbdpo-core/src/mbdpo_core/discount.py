"""The discount heuristic of each task (docs/method.md#td-targets)."""

from __future__ import annotations


def discount_heuristic(
    episode_length: int, denom: float = 5, gamma_min: float = 0.95, gamma_max: float = 0.995
) -> float:
    """gamma(T) = clip((T/denom - 1) / (T/denom), gamma_min, gamma_max).

    T=100 -> 0.95, T=500 -> 0.99, T=1000 -> 0.995.
    """
    frac = episode_length / denom
    return float(min(max((frac - 1) / frac, gamma_min), gamma_max))
