"""Keep freed memory in the process for reuse (docs/design.md#runtime)."""

from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_KEEP_BELOW = 256 << 20


def keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed buffers instead of returning them to the OS.

    By default a buffer above 128 KiB is a fresh mmap, released when freed, and every first
    touch of its pages faults: an out-of-place torch op on a [5, 768, 512] tensor took 4 ms
    against 0.5 ms in place. XLA's CPU runtime allocates each program's temporaries (98 MB for
    the model_size 1 update) in one block on its worker thread, whose own malloc arena cannot
    hold a block that large, so it is mapped and faulted in again at every call (24,000 page
    faults, about a quarter of that update's time). This raises the mmap and trim thresholds to
    256 MiB and makes every thread allocate from the main heap (one arena), which keeps such
    blocks and hands them out again (most calls then fault no page); the process keeps its peak
    memory.

    Threads that have already allocated keep their arena, so call this before the framework
    starts its worker threads (mbdpo_jax at import). No effect without glibc.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, 1)
    mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW)
    mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW)
