"""JAX state <-> the canonical numpy arrays of mbdpo_core.params and mbdpo_core.checkpoint.

The canonical dict IS the JAX parameter pytree (weights already [in, out]), so parameters cross
the boundary as plain float32 copies; Adam moments map to `<name>/exp_avg` (optax `mu`) and
`<name>/exp_avg_sq` (optax `nu`). Names and shapes are checked with
mbdpo_core.checkpoint.check_arrays, which lists every missing, unexpected and mismatched name.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from mbdpo_core.checkpoint import check_arrays
from mbdpo_core.config.schema import Config
from mbdpo_core.params import init_params, param_shapes


def initial_params(cfg: Config, seed: int) -> dict[str, np.ndarray]:
    """Core's numpy initialisation (identical in both backends for a seed)."""
    return init_params(cfg, np.random.default_rng(seed))


def export_params(params: Mapping[str, jax.Array]) -> dict[str, np.ndarray]:
    """Every parameter incl. target_q.*, canonical names, float32 numpy copies."""
    return {k: np.array(v, dtype=np.float32) for k, v in params.items()}


def import_params(cfg: Config, params: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """Checked canonical numpy parameters -> jax arrays.

    Raises:
        CheckpointError: names missing or unexpected, or shapes that differ (all listed).
    """
    check_arrays(param_shapes(cfg), params)
    return {k: jnp.asarray(np.asarray(params[k], dtype=np.float32)) for k in param_shapes(cfg)}


def export_adam(opt: optax.ScaleByAdamState) -> dict[str, np.ndarray]:
    """Adam moments as {<name>/exp_avg, <name>/exp_avg_sq}."""
    out = {}
    for name in opt.mu:
        out[f"{name}/exp_avg"] = np.array(opt.mu[name], dtype=np.float32)
        out[f"{name}/exp_avg_sq"] = np.array(opt.nu[name], dtype=np.float32)
    return out


def import_adam(
    template: optax.ScaleByAdamState, arrays: Mapping[str, np.ndarray], step: int, what: str
) -> optax.ScaleByAdamState:
    """Adam state with the names and shapes of `template`, moments from arrays, count = step.

    Raises:
        CheckpointError: names or shapes that differ from the template (all listed).
    """
    expected = {}
    for name, value in template.mu.items():
        expected[f"{name}/exp_avg"] = tuple(value.shape)
        expected[f"{name}/exp_avg_sq"] = tuple(value.shape)
    check_arrays(expected, arrays, what)

    def moments(suffix: str) -> dict[str, jax.Array]:
        return {n: jnp.asarray(arrays[f"{n}/{suffix}"], jnp.float32) for n in template.mu}

    return optax.ScaleByAdamState(
        count=jnp.asarray(step, template.count.dtype),
        mu=moments("exp_avg"),
        nu=moments("exp_avg_sq"),
    )
