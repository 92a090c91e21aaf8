"""The only JAX-specific knobs: precision, devices, keys and host <-> device conversion.

Precision: `jax_default_matmul_precision` is set to "highest" (true float32) so that matmuls
agree with PyTorch and the numpy oracle at float32 tolerance; on GPUs XLA would otherwise use
TF32/bf16 passes. Denormals: XLA's CPU backend already runs with flush-to-zero (a product that
would be denormal comes out as 0), so unlike torch (`set_flush_denormal`) nothing is needed here
to avoid the slow denormal path in trained networks.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

MATMUL_PRECISION = "highest"


def configure(precision: str = MATMUL_PRECISION) -> None:
    """Set process-wide JAX options (idempotent): float32 matmul precision, no x64."""
    jax.config.update("jax_default_matmul_precision", precision)


def device(name: str = "auto") -> jax.Device:
    """Resolve a config `device` value (auto | cpu | gpu | cuda | cuda:N) to a jax.Device."""
    if name == "auto":
        return jax.devices()[0]
    kind, _, index = name.partition(":")
    kind = "gpu" if kind == "cuda" else kind
    try:
        devices = jax.devices(kind)
    except RuntimeError as err:
        raise ValueError(
            f"Invalid device={name!r}: JAX has no {kind!r} backend here ({err}). "
            f"Valid choices: auto, cpu, gpu, gpu:N."
        ) from None
    return devices[int(index) if index else 0]


def key_from_seed(seed: int) -> jax.Array:
    """A raw uint32[2] PRNG key (threefry) from an integer seed."""
    return jax.random.PRNGKey(seed)


def key_to_numpy(key: jax.Array) -> np.ndarray:
    """The key as uint32 numpy (for checkpoints)."""
    return np.asarray(jax.random.key_data(key) if _is_typed(key) else key, dtype=np.uint32)


def key_from_numpy(data: Any) -> jax.Array:
    """Inverse of key_to_numpy."""
    return jnp.asarray(np.asarray(data, dtype=np.uint32))


def _is_typed(key: jax.Array) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


def to_jax(tree: Any, dtype: Any = None) -> Any:
    """numpy pytree -> jax pytree (float arrays kept float32 unless dtype is given)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=dtype), tree)


configure()
