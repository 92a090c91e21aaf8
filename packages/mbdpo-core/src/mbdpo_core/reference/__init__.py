"""Numpy reference implementation (the oracle both backends are tested against).

Submodules: augment (rgb random shift and conv encoder), math (elementwise math), schedule
(diffusion schedule), scale (RunningScale), model (world-model forward), planning (value
estimate and the three planners), losses (forward values of one update). All compute in
float64.
"""

from .augment import random_shift
from .losses import policy_loss, polyak, world_model_losses
from .math import (
    bce_with_logits,
    gaussian_logprob,
    layer_norm,
    log_softmax,
    mish,
    sigmoid,
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
from .planning import diffusion_plan, mppi_plan, policy_plan, value_estimate
from .scale import RunningScale, percentile
from .schedule import noise_schedule, proposal_std, time_embedding

__all__ = [
    "RunningScale",
    "bce_with_logits",
    "diffusion_plan",
    "gaussian_logprob",
    "layer_norm",
    "log_softmax",
    "mish",
    "mppi_plan",
    "noise_schedule",
    "percentile",
    "policy_loss",
    "policy_plan",
    "polyak",
    "proposal_std",
    "random_shift",
    "sigmoid",
    "simnorm",
    "soft_ce",
    "softmax",
    "squash_log_std",
    "symexp",
    "symlog",
    "tanh_squash",
    "time_embedding",
    "two_hot",
    "two_hot_inv",
    "value_estimate",
    "world_model_losses",
]
