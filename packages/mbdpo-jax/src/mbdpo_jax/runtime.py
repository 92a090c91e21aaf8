"""The JAX-specific knobs: matmul precision, devices and keys (docs/design.md#runtime).

Precision: `jax_default_matmul_precision` is "highest" (true float32), so that matmuls agree
with torch and the numpy oracle at float32 tolerance; on GPUs XLA would otherwise use TF32/bf16
passes. Denormals: XLA's CPU backend already flushes them to zero, so unlike torch nothing is
needed to avoid the slow denormal path.
"""

from __future__ import annotations

import os

import jax
from mbdpo_core.backends import compile_cache_dir
from mbdpo_core.errors import ConfigError
from mbdpo_core.memory import keep_freed_memory

_MATMUL_PRECISION = "highest"
_DEVICE_CHOICES = ("auto", "cpu", "gpu", "gpu:N", "cuda", "cuda:N")


def resolve_device(name: str = "auto") -> jax.Device:
    """Map a config device string to a jax.Device.

    `auto` -> the first GPU if any, else the CPU; `cpu`; `gpu` / `cuda`; `gpu:N` / `cuda:N`.
    Raises ConfigError for other strings or a device that is not there.
    """
    if name == "auto":
        return jax.local_devices()[0]  # this process's first device (multi-host: its own)
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "gpu", "cuda") or (index and not index.isdigit()):
        raise ConfigError(f"Invalid device={name!r}. Valid choices: {', '.join(_DEVICE_CHOICES)}.")
    kind = "gpu" if kind == "cuda" else kind
    try:
        devices = jax.devices(kind)
    except RuntimeError:
        raise ConfigError(
            f"device={name!r} but JAX sees no {kind} device. Use device=cpu."
        ) from None
    if int(index or 0) >= len(devices):
        raise ConfigError(f"device={name!r} but only {len(devices)} {kind} device(s) exist.")
    return devices[int(index or 0)]


def configure(device: jax.Device | None) -> None:
    """Process-wide settings (idempotent): float32 matmul precision on every device, and freed
    memory kept for reuse (mbdpo_core.memory.keep_freed_memory). This module calls it at import,
    before JAX's first computation starts the worker threads whose malloc arena it decides."""
    jax.config.update("jax_default_matmul_precision", _MATMUL_PRECISION)
    keep_freed_memory()


def use_compilation_cache() -> str | None:
    """Keep compiled XLA programs on disk, so that a new process with the same shapes, flags and
    JAX version loads them instead of compiling (the apps call this; docs/design.md#runtime).

    The folder is $JAX_COMPILATION_CACHE_DIR when set (set and empty: no cache), else
    `compile_cache_dir("jax")`, which this sets as the variable so that the processes this one
    starts (evaluation workers) use it too. Returns the folder, or None when off.
    """
    folder = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(compile_cache_dir("jax")))
    if folder:
        jax.config.update("jax_compilation_cache_dir", folder)
    return folder or None


def make_rng(seed: int, device: jax.Device | None = None) -> jax.Array:
    """A raw uint32[2] threefry key from an integer seed (on `device` when given)."""
    key = jax.random.PRNGKey(seed)
    return key if device is None else jax.device_put(key, device)


def gpu_available() -> bool:
    """Whether JAX sees a GPU."""
    try:
        return len(jax.devices("gpu")) > 0
    except RuntimeError:
        return False


configure(None)
