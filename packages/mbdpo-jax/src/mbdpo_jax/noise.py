"""Noise bundles in JAX (docs/design.md#noise-bundles): the sampler that mbdpo_core.noise.draw
draws from, and the transfer of numpy bundles (parity tests) to a device.

The bundles (frozen dataclasses of core) are registered as pytrees here, so they pass through
`jax.jit` as arguments and can be drawn inside a jitted act or update.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from mbdpo_core.noise import BUNDLES

for _cls in BUNDLES.values():
    try:
        jax.tree_util.register_dataclass(
            _cls, data_fields=[f.name for f in dataclasses.fields(_cls)], meta_fields=[]
        )
    except ValueError:  # already registered (module reloaded)
        pass


class Sampler:
    """The laws of mbdpo_core.noise.Sampler over a JAX key `rng` (runtime.make_rng); each draw
    splits the key, so a bundle drawn inside a jitted function is traced and compiled with it."""

    def __init__(self, rng: jax.Array) -> None:
        self.rng = rng

    def _next(self) -> jax.Array:
        self.rng, sub = jax.random.split(self.rng)
        return sub

    def normal(self, shape: tuple[int, ...]) -> jax.Array:
        return jax.random.normal(self._next(), shape, jnp.float32)

    def uniform(self, shape: tuple[int, ...]) -> jax.Array:
        return jax.random.uniform(self._next(), shape, jnp.float32, -1.0, 1.0)

    def bernoulli(self, shape: tuple[int, ...], p: float) -> jax.Array:
        return jax.random.bernoulli(self._next(), p, shape).astype(jnp.float32)

    def pairs(self, lead: tuple[int, ...], n: int) -> jax.Array:
        """Two distinct ints in [0, n) per row, uniform over ordered pairs. -> [*lead, 2]."""
        first = jax.random.randint(self._next(), lead, 0, n, jnp.int32)
        second = (first + jax.random.randint(self._next(), lead, 1, n, jnp.int32)) % n
        return jnp.stack([first, second], axis=-1)

    def gumbel(self, shape: tuple[int, ...]) -> jax.Array:
        return jax.random.gumbel(self._next(), shape, jnp.float32)

    def integers(self, shape: tuple[int, ...], low: int, high: int) -> jax.Array:
        return jax.random.randint(self._next(), shape, low, high, jnp.int32)


def to_device(bundle: Any, device: jax.Device | None) -> Any:
    """A numpy noise bundle (mbdpo_core.noise.draw_numpy) as jax arrays on `device`."""
    return jax.device_put(jax.tree.map(jnp.asarray, bundle), device)
