"""The metric names of `Agent.update` (docs/design.md#parity-contract), declared once.

Every backend returns exactly UPDATE_METRICS, as floats, from one update; the loops log them.
"""

from __future__ import annotations

LOSS_TERMS = (
    "consistency_loss",
    "reward_loss",
    "value_loss",
    "termination_loss",
    "energy_loss",
    "score_loss",
)
"""The world-model loss terms, in the order of their coefficients (LOSS_COEFS)."""

LOSS_COEFS = {
    "consistency_loss": "consistency_coef",
    "reward_loss": "reward_coef",
    "value_loss": "value_coef",
    "termination_loss": "termination_coef",
    "energy_loss": "energy_coef",
    "score_loss": "score_loss_coef",
}
"""Loss term -> the config key of its weight in the world-model loss."""

UPDATE_METRICS = (
    *LOSS_TERMS,
    "total_loss",
    "grad_norm",
    "pi_loss",
    "pi_grad_norm",
    "pi_entropy",
    "pi_scaled_entropy",
    "pi_scale",
    "energy_mean",
    "energy_std",
)
"""Names of the floats `Agent.update` returns, in this order."""
