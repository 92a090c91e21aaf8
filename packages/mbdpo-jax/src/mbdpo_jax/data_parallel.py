"""Data-parallel updates in JAX (docs/design.md#data-parallel-updates): with
`data_parallel_devices=N` > 1 the batch and the update's noise are sharded over a one-axis mesh
("data") of N devices and everything else (parameters, optimiser states, statistics, key) is
replicated; the jitted update is the one-device program, partitioned by XLA (GSPMD). Every
statistic over the batch (RunningScale percentiles, F-logit statistics, the published energy
pairing) therefore stays global, and an update equals the one-device update on the full batch
up to float32 rounding.

Across hosts, `jax.distributed` joins the processes first (init_processes) and the mesh then
spans the devices of every process; each process feeds its devices' rows of its own batch.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec
from mbdpo_core.batch import Batch
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import ConfigError
from mbdpo_core.noise import UpdateNoise, update_batch_axes

from .losses import DeviceBatch, _host_batch

_AXIS = "data"
"""The mesh axis the batch is split along."""


def init_processes() -> tuple[int, int]:
    """Join the other processes of a multi-host run, once, before any agent is built; ->
    (this process's rank, number of processes).

    Multi-host runs set JAX_COORDINATOR_ADDRESS (host:port of process 0) on every host, with
    JAX_NUM_PROCESSES and JAX_PROCESS_ID, or run under a cluster that jax.distributed detects
    itself (SLURM, Open MPI, Kubernetes). Without JAX_COORDINATOR_ADDRESS this is one process.
    """
    if os.environ.get("JAX_COORDINATOR_ADDRESS") and not jax.distributed.is_initialized():
        count, index = os.environ.get("JAX_NUM_PROCESSES"), os.environ.get("JAX_PROCESS_ID")
        jax.distributed.initialize(
            num_processes=None if count is None else int(count),
            process_id=None if index is None else int(index),
        )
    return jax.process_index(), jax.process_count()


def check_devices(cfg: Config) -> None:
    """Raise a ConfigError unless cfg.data_parallel_devices devices can form the mesh."""
    _mesh(cfg.data_parallel_devices)


@functools.cache
def _mesh(n: int) -> Mesh:
    """The data mesh over the first n devices (of every process), with an automatic (GSPMD)
    axis: jax.make_mesh's default axis type is explicit sharding since jax 0.7."""
    devices = jax.devices()
    if n > len(devices):
        raise ConfigError(
            f"data_parallel_devices={n} but JAX sees {len(devices)} device(s); use at most "
            f"{len(devices)} (XLA_FLAGS=--xla_force_host_platform_device_count=N makes N CPU "
            "devices)."
        )
    if jax.process_count() > 1 and n != len(devices):
        raise ConfigError(
            f"data_parallel_devices={n} with {jax.process_count()} processes: a multi-host "
            f"mesh takes every device, data_parallel_devices={len(devices)}."
        )
    return jax.make_mesh((n,), (_AXIS,), axis_types=(AxisType.Auto,), devices=devices[:n])


def _put(x: Any, axis: int | None, mesh: Mesh) -> jax.Array:
    """A host array as a global array on `mesh`, split along `axis` (None: replicated); each
    process supplies only its own devices' slices."""
    host = np.asarray(x)
    spec = PartitionSpec() if axis is None else PartitionSpec(*([None] * axis), _AXIS)
    sharding = NamedSharding(mesh, spec)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _replicate(tree: Any, cfg: Config) -> Any:
    """Every array of `tree` replicated on the data mesh."""
    mesh = _mesh(cfg.data_parallel_devices)
    return jax.tree.map(lambda x: _put(x, None, mesh), tree)


def _replicated_constraint(tree: Any, cfg: Config) -> Any:
    """Inside jit: keep `tree` replicated over the data mesh (a no-op for one device)."""
    if cfg.data_parallel_devices == 1:
        return tree
    sharding = NamedSharding(_mesh(cfg.data_parallel_devices), PartitionSpec())
    return jax.lax.with_sharding_constraint(tree, sharding)


def _one_device(tree: Any, device: jax.Device) -> Any:
    """This process's copy on `device` of each replicated array (no transfer; the planner
    runs on one device)."""

    def local(x: jax.Array) -> jax.Array:
        for shard in x.addressable_shards:
            if shard.device == device:
                return shard.data
        return jax.device_put(x.addressable_shards[0].data, device)

    return jax.tree.map(local, tree)


def shard_batch(batch: Batch, cfg: Config) -> DeviceBatch:
    """A numpy Batch as a DeviceBatch split along B over the data mesh (checked as
    losses.device_batch checks it). Shapes: obs [H+1, B, *O] ... as DeviceBatch, B split."""
    mesh, host = _mesh(cfg.data_parallel_devices), _host_batch(batch, cfg)
    axes = {"obs": 1, "action": 1, "reward": 1, "terminated": 1, "task": 0, "gamma": 0}
    values = {name: getattr(host, name) for name in axes}
    return DeviceBatch(
        **{k: None if v is None else _put(v, axes[k], mesh) for k, v in values.items()}
    )


def shard_noise(noise: UpdateNoise, cfg: Config) -> UpdateNoise:
    """A numpy UpdateNoise on the data mesh: each field with a batch axis (UpdateNoise
    [H, B, A], q_keep [Nq, H, B, M], ...) split along it like the batch, the rest replicated."""
    mesh = _mesh(cfg.data_parallel_devices)
    B = np.shape(noise.pi_eps)[1]
    axes = update_batch_axes(cfg, B)

    def place(bundle: Any, axes: dict[str, Any]) -> Any:
        values = {}
        for f in dataclasses.fields(bundle):
            value = getattr(bundle, f.name)
            if value is None:
                values[f.name] = None
            elif dataclasses.is_dataclass(value):
                values[f.name] = place(value, axes[f.name])
            else:
                values[f.name] = _put(value, axes[f.name], mesh)
        return dataclasses.replace(bundle, **values)

    return place(noise, axes)
