"""Data-parallel updates in torch (docs/design.md#data-parallel-updates): `torchrun
--nproc_per_node=N` starts N processes (nccl on GPUs, gloo on CPU) and data_parallel_devices=N
makes each process update on its 1/N of every batch (rows rank x B/N onwards) and noise, with

- gradients averaged by one all-reduce per optimiser step (update._step): the update takes
  gradients with torch.autograd.grad of several head calls and steps two optimisers, which
  DistributedDataParallel (hooks on backward() of one module(...) call) does not see;
- every statistic over the batch computed on the all-gathered global rows: the RunningScale
  percentiles of Q, the F-logit statistics, the published energy pairing and the task rows
  renormalised in the embedding (losses, update);
- the score loss (one sample of the batch: global row 0) on rank 0, weighted by N, so that the
  averaged gradient and metric are the one-process ones.

Each process's losses are means over its rows, so their mean over processes (gradients and
metrics) is the full batch's: the update equals one process on the full batch up to float32
rounding. Every process holds the same parameters, optimiser moments and statistics.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from mbdpo_core.batch import Batch
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import ConfigError
from mbdpo_core.noise import UpdateNoise, update_batch_axes


def init_processes() -> tuple[int, int]:
    """Join torchrun's process group, once, before any agent is built (nccl when CUDA is
    available, each process on the GPU of its LOCAL_RANK; gloo otherwise); -> (rank, number
    of processes). Without torchrun (no WORLD_SIZE) this is one process: (0, 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _rank(), _world()


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def check_devices(cfg: Config) -> None:
    """Raise a ConfigError unless the processes are exactly cfg.data_parallel_devices."""
    n, world = cfg.data_parallel_devices, _world()
    if n != world:
        raise ConfigError(
            f"data_parallel_devices={n} but torch.distributed has {world} process(es); the "
            f"torch backend takes one process per device: launch with `torchrun "
            f"--nproc_per_node={n}` or give data_parallel_devices={world}."
        )


def _rows(cfg: Config, batch_size: int) -> slice:
    """This process's rows of a batch of batch_size rows."""
    n = cfg.data_parallel_devices
    if batch_size % n:
        raise ConfigError(
            f"A batch of {batch_size} rows does not split over data_parallel_devices={n}."
        )
    share = batch_size // n
    return slice(_rank() * share, (_rank() + 1) * share)


def shard_batch(batch: Batch, cfg: Config) -> Batch:
    """This process's rows of a numpy Batch. Shapes: obs [H+1, B, *O] -> [H+1, B/N, *O] ...,
    task [B] -> [B/N]."""
    rows = _rows(cfg, np.shape(batch.action)[1])
    return Batch(
        obs=batch.obs[:, rows],
        action=batch.action[:, rows],
        reward=batch.reward[:, rows],
        terminated=batch.terminated[:, rows],
        task=None if batch.task is None else batch.task[rows],
    )


def shard_noise(noise: UpdateNoise, cfg: Config) -> UpdateNoise:
    """This process's rows of an UpdateNoise drawn at the global batch size (numpy or torch):
    every field with a batch axis ([H, B, A], q_keep [Nq, H, B, M], ...) split like the batch,
    the rest (Q-member pairs, the score bundle) whole."""
    B = noise.pi_eps.shape[1]
    rows = _rows(cfg, B)
    axes = update_batch_axes(cfg, B)

    def take(bundle: Any, axes: dict[str, Any]) -> Any:
        values = {}
        for f in dataclasses.fields(bundle):
            value, axis = getattr(bundle, f.name), axes[f.name]
            if value is not None and dataclasses.is_dataclass(value):
                value = take(value, axis)
            elif value is not None and axis is not None:
                value = value[(slice(None),) * axis + (rows,)]
            values[f.name] = value
        return dataclasses.replace(bundle, **values)

    return take(noise, axes)


def _sharded(cfg: Config) -> bool:
    return cfg.data_parallel_devices > 1


def _gather_rows(x: torch.Tensor, cfg: Config, dim: int) -> torch.Tensor:
    """The global batch of a per-process tensor (no gradient): the processes' `x` concatenated
    along `dim` in rank order; `x` itself for one process."""
    if not _sharded(cfg):
        return x
    parts = [torch.empty_like(x) for _ in range(cfg.data_parallel_devices)]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=dim)


def _local_rows(x: torch.Tensor, cfg: Config, dim: int) -> torch.Tensor:
    """This process's rows along `dim` of a global-batch tensor."""
    if not _sharded(cfg):
        return x
    rows = _rows(cfg, x.shape[dim])
    return x.narrow(dim, rows.start, rows.stop - rows.start)


def _mean_over_processes(tensors: list[torch.Tensor], cfg: Config) -> list[torch.Tensor]:
    """The element-wise mean of each tensor over the processes, with one all-reduce."""
    if not _sharded(cfg) or not tensors:
        return tensors
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= cfg.data_parallel_devices
    return [
        part.view_as(t)
        for part, t in zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)
    ]


def _score_weight(cfg: Config) -> float:
    """The weight of this process's score loss: the score target is built from global row 0,
    which rank 0 holds; it counts N times there and not elsewhere."""
    if not _sharded(cfg):
        return 1.0
    return float(cfg.data_parallel_devices) if _rank() == 0 else 0.0
