"""The error budget of the cross-backend parity tests: their tolerances, in one place.

Torch, JAX and the float64 numpy oracle run the same arithmetic in different orders, so they
agree to float32 rounding (EPS32, 1.19e-7) times how much each computation amplifies it. Each
tolerance is MARGIN x amplification x EPS32, the amplification being the largest error measured
over torch with 1 and 2 threads and XLA multi-threaded and single-threaded
(XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"), with these
tests' configs and seeds (issue 10). Largest errors, and the amplification taken:

  FORWARD_TOL      module outputs: torch-JAX 3.8e-6, vs oracle 3.6e-6             32 EPS32
  ACT_TOL          one act (action and plan): torch-JAX 3.5e-6, vs oracle 2.4e-6;
                   eval actions after a checkpoint of 2 updates crosses: 4.4e-6   37 EPS32
  UPDATE_TOL       one update, relative to max(1, |x|): metrics 5.0e-6, losses vs
                   oracle 4.6e-6, gradients 6.5e-6; parameters and moments after
                   1.4e-6; pixel path 7.2e-7                                       55 EPS32
  TRAINED_ACT_TOL  eval actions after a checkpoint of 20 updates crosses: 7.6e-6  64 EPS32

The threading moved no error by more than 4x (most not at all); MARGIN 5 covers that and other
CPUs' vector widths. TRAINED_ACT_TOL is also 2.5x what one-ulp jitter of every weight moves
those eval actions in one backend alone (1.5e-5). With these tolerances, +1e-3 on one weight
fails the module, update and pixel comparisons, and the planner and checkpoint ones for the
weights their few outputs depend on most (an action is a weighted mean of candidate plans).

A planner amplifies the rounding of the candidate values by |value| / std(values) through its
standardised softmax. From a fresh agent (zeroed value heads), 200 updates leave
std / |value| ~ 1e-4, and one-ulp jitter of the weights then moves eval actions by up to
1.4e-4 in one backend alone; so the checkpoint tests start from perturbed parameters, whose
candidate values differ clearly (std / |value| ~ 1e-2).
"""

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)
MARGIN = 5


def tolerance(amplification: float) -> float:
    """MARGIN x amplification x EPS32 (the amplification in units of EPS32, measured)."""
    return MARGIN * amplification * EPS32


FORWARD_TOL = tolerance(32)
"""Every world-model module's output, torch vs JAX vs the float64 oracle (1.9e-5)."""
ACT_TOL = tolerance(37)
"""One act of each planner (action and warm-start plan), torch vs JAX vs oracle, and eval
actions after a checkpoint of 2 updates crosses backends (2.2e-5)."""
UPDATE_TOL = tolerance(55)
"""One update: losses and metrics and gradients (each / max(1, |value|)), parameters, Adam
moments and statistics after it, torch vs JAX, losses vs oracle (3.3e-5)."""
TRAINED_ACT_TOL = tolerance(64)
"""Eval actions after a checkpoint of 20 updates crosses backends (3.8e-5)."""
