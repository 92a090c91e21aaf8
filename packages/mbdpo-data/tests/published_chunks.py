"""Chunks in TD-MPC2's published format, made with torch.save and tensordict (test-only).

`write_chunk` saves a TensorDict of random episodes with `torch.save`, under tensordict's
current class path (`tensordict._td.TensorDict`, pickled by tensordict itself) or the 0.2.x one
(`tensordict.tensordict.TensorDict`, pickled as tensordict 0.2.x did: the class, then its
instance `__dict__`), and returns the arrays it saved so tests compare against them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensordict
import tensordict.tensordict
import tensordict.utils
import torch
from mbdpo_data.layouts import DatasetLayout


def episodes_arrays(
    layout: DatasetLayout, episodes: int, seed: int, terminated: bool = False
) -> dict[str, np.ndarray]:
    """Random episodes of `layout`: row 0 of action/reward (and terminated) is NaN filler."""
    rng = np.random.default_rng(seed)
    T = layout.episode_rows
    arrays = {
        "obs": rng.standard_normal((episodes, T, layout.obs_dim), dtype=np.float32),
        "action": rng.uniform(-1, 1, (episodes, T, layout.action_dim)).astype(np.float32),
        "reward": rng.uniform(0, 1, (episodes, T)).astype(np.float32),
        "task": np.repeat(rng.integers(0, layout.n_tasks, (episodes, 1)), T, axis=1),
    }
    arrays["action"][:, 0] = np.nan
    arrays["reward"][:, 0] = np.nan
    if terminated:
        flags = np.zeros((episodes, T), np.float32)
        flags[:, -1] = 1.0
        flags[:, 0] = np.nan
        arrays["terminated"] = flags
    return arrays


class LegacyTensorDict:
    """Pickles as tensordict 0.2.x's TensorDict did: NEWOBJ of the class + BUILD(__dict__)."""

    def __init__(self, tensors: dict[str, torch.Tensor], batch_size: tuple[int, ...]) -> None:
        entries = tensordict.utils._StringOnlyDict()
        entries.update(tensors)
        self.__dict__.update(
            _safe=False,
            _lazy=False,
            _inplace_set=False,
            is_meta=False,
            _is_locked=False,
            _cache=None,
            _last_op=None,
            _TensorDictBase__last_op_queue=None,
            _lock_id=set(),
            _locked_tensordicts=[],
            _is_shared=False,
            _is_memmap=False,
            _device=None,
            _tensordict=entries,
            _batch_size=torch.Size(batch_size),
            _td_dim_names=None,
        )


LegacyTensorDict.__module__ = "tensordict.tensordict"
LegacyTensorDict.__qualname__ = "TensorDict"


def write_chunk(
    path: Path,
    arrays: dict[str, np.ndarray],
    class_path: str = "new",
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> None:
    """torch.save the arrays as one TensorDict of batch size [episodes, T] at `path`."""
    tensors = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
    batch_size = arrays["obs"].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    if class_path == "new":
        torch.save(tensordict.TensorDict(tensors, batch_size=batch_size), path)
        return
    assert monkeypatch is not None, "the 0.2.x class path needs monkeypatch"
    with monkeypatch.context() as patch:  # pickle finds the class under its 0.2.x path
        patch.setattr(tensordict.tensordict, "TensorDict", LegacyTensorDict)
        torch.save(LegacyTensorDict(tensors, batch_size), path)
