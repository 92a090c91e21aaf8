"""What a chunk must satisfy before it is converted (docs/data.md#validation).

`infer_layout` and `check_structure` look at the pickled records only (shapes, dtypes, names),
so a chunk of the wrong kind is refused before anything is written; `check_values` looks at a
block of whole episodes while it streams: finite values (action, reward and terminated outside
row 0, the filler row), task ids in range and constant over each episode, terminated 0/1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from mbdpo_core.errors import DataFormatError

from .layouts import ARRAYS, DTYPES_VALID, LAYOUTS, OPTIONAL_ARRAYS, DatasetLayout, dtype_ok
from .pt_chunk import StoredArray

__all__ = ["infer_layout", "check_structure", "check_values"]


def infer_layout(path: Path, arrays: Mapping[str, StoredArray]) -> DatasetLayout:
    """The published dataset whose T and padded widths the chunk has, or DataFormatError."""
    obs = arrays.get("obs")
    if obs is not None and len(obs.shape) == 3:
        for layout in LAYOUTS.values():
            if obs.shape[1:] == (layout.episode_rows, layout.obs_dim):
                return layout
    found = obs.shape if obs is not None else "no obs"
    valid = "; ".join(
        f"{n}: [episodes, {lay.episode_rows}, {lay.obs_dim}]" for n, lay in LAYOUTS.items()
    )
    raise DataFormatError(f"{path}: obs is {found}, which matches no published dataset ({valid}).")


def check_structure(
    path: Path,
    arrays: Mapping[str, StoredArray],
    batch_size: tuple[int, ...] | None,
    layout: DatasetLayout,
) -> int:
    """Check names, shapes and dtypes against `layout`; return the number of episodes."""
    missing = [name for name in ARRAYS if name not in arrays]
    extra = [name for name in arrays if name not in ARRAYS + OPTIONAL_ARRAYS]
    if missing or extra:
        raise DataFormatError(
            f"{path}: arrays {sorted(arrays)}; a {layout.name} chunk holds "
            f"{', '.join(ARRAYS)} and optionally {', '.join(OPTIONAL_ARRAYS)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
            + "."
        )
    episodes = arrays["obs"].shape[0]
    expected = layout.shapes(episodes)
    for name, array in arrays.items():
        if array.shape != expected[name]:
            raise DataFormatError(
                f"{path}: {name} has shape {list(array.shape)}, expected "
                f"{list(expected[name])} for {layout.name} (T={layout.episode_rows})."
            )
        if not dtype_ok(name, array.dtype):
            raise DataFormatError(
                f"{path}: {name} has dtype {array.dtype}, expected {DTYPES_VALID[name]}."
            )
    if batch_size is not None and tuple(batch_size) != (episodes, layout.episode_rows):
        raise DataFormatError(
            f"{path}: TensorDict batch size {list(batch_size)}, expected "
            f"[{episodes}, {layout.episode_rows}]."
        )
    return episodes


def check_values(name: str, block: np.ndarray, layout: DatasetLayout) -> str | None:
    """The first problem in `block` ([episodes, T, ...] of array `name`), or None."""
    if name == "task":
        low, high = int(block.min()), int(block.max())
        if low < 0 or high >= layout.n_tasks:
            return f"task ids span [{low}, {high}], outside [0, {layout.n_tasks})"
        if (block != block[:, :1]).any():
            return "a task id changes within an episode"
        return None
    values = block if name == "obs" else block[:, 1:]  # row 0's action/reward are filler
    if values.dtype != np.bool_ and not np.isfinite(values).all():
        where = "" if name == "obs" else " outside row 0"
        return f"{name} holds NaN or infinite values{where}"
    if name == "terminated" and values.dtype != np.bool_ and ((values != 0) & (values != 1)).any():
        return "terminated holds values other than 0 and 1"
    return None
