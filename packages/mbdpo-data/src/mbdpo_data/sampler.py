"""Batches of an `OfflineDataset` for a training loop, prepared ahead in a background thread.

`DatasetSampler` is the loop's batch source (`mbdpo_core.loops.BatchSource`): batch k is drawn
with its own generator, `np.random.default_rng((seed, k))`, so the sequence depends on the seed
alone, a background thread can prepare the next `prefetch` batches while the update runs (the update
runs in torch or XLA, which release the GIL), and a checkpoint needs only k
(`state_dict`) to resume the exact sequence (docs/data.md#reading).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from mbdpo_core.batch import Batch

from .dataset import OfflineDataset

__all__ = ["DatasetSampler"]


class DatasetSampler:
    """`sample(batch_size, horizon)` -> the next Batch of `dataset` (see module docstring).

    Args:
        dataset: the memory-mapped dataset.
        seed: the seed of the batch sequence.
        prefetch: batches prepared ahead by a background thread (0: none, drawn on call).
    """

    def __init__(self, dataset: OfflineDataset, seed: int, prefetch: int = 4) -> None:
        self.dataset = dataset
        self.seed = seed
        self.prefetch = prefetch
        self.drawn = 0  # batches handed out
        self._shape: tuple[int, int] | None = None
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def batch(self, index: int, batch_size: int, horizon: int) -> Batch:
        """Batch number `index` of the sequence (a pure function of seed and index)."""
        rng = np.random.default_rng((self.seed, index))
        return self.dataset.sample(batch_size, horizon, rng)

    def sample(self, batch_size: int, horizon: int) -> Batch:
        if self.prefetch == 0:
            batch = self.batch(self.drawn, batch_size, horizon)
        else:
            if self._shape != (batch_size, horizon):
                self._start(batch_size, horizon)
            assert self._queue is not None
            batch = self._queue.get()
            if isinstance(batch, BaseException):
                self.close()  # the thread has stopped; the next call starts it again
                raise batch
        self.drawn += 1
        return batch

    def _start(self, batch_size: int, horizon: int) -> None:
        self.close()
        self._shape = (batch_size, horizon)
        self._queue = queue.Queue(maxsize=self.prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._fill,
            args=(self._queue, self._stop, self.drawn, batch_size, horizon),
            name="DatasetSampler",
            daemon=True,
        )
        self._thread.start()

    def _fill(
        self, out: queue.Queue, stop: threading.Event, index: int, batch_size: int, horizon: int
    ) -> None:
        while not stop.is_set():
            try:
                item: Any = self.batch(index, batch_size, horizon)
            except BaseException as err:  # handed to the consumer, which raises it
                item = err
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            index += 1

    def close(self) -> None:
        """Stop the background thread (a later `sample` starts it again)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self._shape = None

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"seed": self.seed, "drawn": self.drawn}

    def load_state_dict(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.close()
        self.seed = int(meta["seed"])
        self.drawn = int(meta["drawn"])
