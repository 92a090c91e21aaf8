"""Reading a TD-MPC2 `.pt` chunk safely: no torch, no tensordict, no code from the file.

`torch.save` writes a zip archive: `<name>/data.pkl`, a pickle of the TensorDict whose tensors
refer to storages by key, and one uncompressed member `<name>/data/<key>` per storage.
`read_chunk` unpickles data.pkl with `SafeUnpickler`, which resolves only the globals of
`ALLOWED`, each mapped to an inert stand-in (the TensorDict class under its old and new paths
becomes `PickledTensorDict`, a tensor becomes a `TensorRef`); any other global is refused by
name. It returns where each array's bytes lie in the file, so that a converter streams them
without loading the chunk (docs/data.md#safe-reading).
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mbdpo_core.errors import DataFormatError, MbdpoError

__all__ = [
    "ALLOWED",
    "PickledTensorDict",
    "StoredArray",
    "TensorRef",
    "UnsafeGlobal",
    "open_torch_zip",
    "read_chunk",
]


class UnsafeGlobal(pickle.UnpicklingError):
    """The pickle names a global outside `ALLOWED`."""


@dataclass(frozen=True)
class StorageRef:
    """A torch storage the pickle refers to: zip member `data/<key>` of `numel` `dtype` items."""

    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor as pickled: a strided view of `storage` from element `offset`."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


class PickledTensorDict:
    """Inert stand-in for tensordict's TensorDict: keeps the pickled state and nothing else."""

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledTensorDict:
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:  # tensordict 0.2.x: NEWOBJ + BUILD(__dict__)
        self.state = state


class _StringOnlyDict(dict):
    """Stand-in for tensordict.utils._StringOnlyDict (a plain dict of the entries)."""


def _make_td(cls: type, state: Any) -> PickledTensorDict:
    """Stand-in for tensordict._reductions._make_td (tensordict >= 0.5: REDUCE(cls, state))."""
    td = PickledTensorDict()
    td.state = state
    return td


def _rebuild_tensor_v2(storage: Any, offset: int, shape: Any, stride: Any, *_: Any) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("a tensor's storage is not a persistent storage record")
    return TensorRef(storage, int(offset), tuple(map(int, shape)), tuple(map(int, stride)))


def _device(*args: Any) -> str:
    return ":".join(map(str, args))


BFLOAT16 = np.dtype("V2")
"""A bfloat16 storage's items: raw 2-byte values (numpy has no bfloat16); readers widen them to
float32 (`widen_bfloat16`) or refuse them."""

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "BFloat16Storage": BFLOAT16,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

ALLOWED: dict[tuple[str, str], Any] = {
    ("tensordict.tensordict", "TensorDict"): PickledTensorDict,  # tensordict 0.2.x
    ("tensordict._td", "TensorDict"): PickledTensorDict,  # tensordict >= 0.4
    ("tensordict._reductions", "_make_td"): _make_td,
    ("tensordict.utils", "_StringOnlyDict"): _StringOnlyDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch", "Size"): tuple,
    ("torch", "device"): _device,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "deque"): collections.deque,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,  # protocol 2 names builtins as Python 2 did
    **{("torch", name): np.dtype(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}
"""(module, name) a chunk's pickle may name -> the inert object it resolves to."""


class SafeUnpickler(pickle.Unpickler):
    """Resolves only `ALLOWED`; a storage reference becomes a `StorageRef`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"storage {key!r} has no numpy dtype ({dtype!r:.40})")
        return StorageRef(str(key), dtype, int(numel))


def widen_bfloat16(items: np.ndarray) -> np.ndarray:
    """float32 values of raw bfloat16 items (BFLOAT16): the 16 bits are float32's upper half."""
    return (items.view("<u2").astype(np.uint32) << 16).view(np.float32)


@dataclass(frozen=True)
class StoredArray:
    """Where one array of a chunk lies: `nbytes` bytes from file offset `offset`, C order.

    member_crc: the zip CRC-32 of the storage member when the array spans all of it (so that
    streaming the array also checks the member), else None.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    member_crc: int | None


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes


def _data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """File offset of a stored member's first data byte (past its local header)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise DataFormatError(f"{path}: member {info.filename} has no valid local header")
    fields = _LOCAL_HEADER.unpack(header)
    return info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]


def _contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    if 0 in shape:  # no element to be out of place (numpy gives empty arrays zero strides)
        return True
    expected = 1
    for size, step in zip(reversed(shape), reversed(stride), strict=True):
        if size != 1 and step != expected:
            return False
        expected *= size
    return True


def _unpickle(path: Path, archive: zipfile.ZipFile, pickle_name: str) -> Any:
    try:
        return SafeUnpickler(io.BytesIO(archive.read(pickle_name))).load()
    except UnsafeGlobal as err:
        allowed = ", ".join(sorted({m.split(".")[0] for m, _ in ALLOWED}))
        raise DataFormatError(
            f"{path}: its pickle asks for the global {err}, which a TD-MPC2 chunk never holds; "
            f"refused without running it (only TensorDict, tensor and storage records of "
            f"{allowed} are read)."
        ) from None
    except Exception as err:  # any failure of a damaged pickle is the file's fault
        raise DataFormatError(f"{path}: corrupt pickle in {pickle_name}: {err!r:.200}") from None


def _entries(path: Path, root: Any) -> tuple[dict[str, TensorRef], tuple[int, ...] | None]:
    """The TensorDict's name -> TensorRef and its batch size."""
    state = getattr(root, "state", None)
    if not isinstance(root, PickledTensorDict) or not isinstance(state, dict):
        raise DataFormatError(
            f"{path}: holds a {type(root).__name__}, not a TensorDict; a TD-MPC2 chunk is a "
            "TensorDict saved with torch.save."
        )
    entries = state.get("_tensordict")
    if not isinstance(entries, dict):
        raise DataFormatError(f"{path}: the TensorDict has no entries (_tensordict missing).")
    for name, value in entries.items():
        if not isinstance(value, TensorRef):
            raise DataFormatError(
                f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor; a TD-MPC2 "
                "chunk holds flat tensors only."
            )
    batch_size = state.get("_batch_size")
    return dict(entries), tuple(batch_size) if batch_size is not None else None


def open_torch_zip(
    path: Path, error: type[MbdpoError], advice: str = ""
) -> tuple[zipfile.ZipFile, str]:
    """The zip archive of a `torch.save` file and its record prefix `<name>/` (the folder of its
    one `data.pkl`, little-endian).

    Raises `error` naming the file: not a zip (or truncated: `advice` follows), not one
    data.pkl, big-endian.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        problem = f"not a torch.save zip archive, or truncated ({err}){advice}"
        raise error(f"{path}: {problem}.") from None
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    prefix = pickles[0][: -len("data.pkl")] if len(pickles) == 1 else None
    order = f"{prefix}byteorder"
    if prefix is None:
        problem = f"expected one <name>/data.pkl, found {pickles}"
    elif order in names and archive.read(order).strip() != b"little":
        problem = "big-endian tensors are not supported"
    else:
        return archive, prefix
    archive.close()
    raise error(f"{path}: {problem}.")


def read_chunk(path: str | Path) -> tuple[dict[str, StoredArray], tuple[int, ...] | None]:
    """Locate every array of a `.pt` chunk without reading the arrays.

    Returns (name -> StoredArray, the TensorDict's batch size or None).
    Raises DataFormatError naming the file and the problem: not a torch zip (or truncated),
    a refused global, a compressed or short storage, a non-contiguous or big-endian tensor.
    """
    path = Path(path)
    archive, prefix = open_torch_zip(path, DataFormatError, "; download it again")
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        entries, batch_size = _entries(path, _unpickle(path, archive, prefix + "data.pkl"))

        arrays: dict[str, StoredArray] = {}
        for name, tensor in entries.items():
            storage = tensor.storage
            info = infos.get(f"{prefix}data/{storage.key}")
            if info is None:
                raise DataFormatError(f"{path}: storage {storage.key} of {name!r} is missing.")
            if info.compress_type != zipfile.ZIP_STORED:
                raise DataFormatError(f"{path}: storage of {name!r} is compressed.")
            if storage.dtype == BFLOAT16:
                raise DataFormatError(
                    f"{path}: tensor {name!r} is bfloat16; TD-MPC2 chunks hold float32, "
                    "int64 and bool tensors."
                )
            itemsize = storage.dtype.itemsize
            if info.file_size != storage.numel * itemsize:
                raise DataFormatError(
                    f"{path}: storage of {name!r} holds {info.file_size} bytes, its record "
                    f"says {storage.numel} x {itemsize}; the file is corrupt."
                )
            count = math.prod(tensor.shape)
            in_storage = tensor.offset + count <= storage.numel
            if not (in_storage and _contiguous(tensor.shape, tensor.stride)):
                raise DataFormatError(f"{path}: tensor {name!r} is not a contiguous view.")
            whole = tensor.offset == 0 and count == storage.numel
            arrays[name] = StoredArray(
                name=name,
                dtype=storage.dtype,
                shape=tensor.shape,
                offset=_data_offset(path, info) + tensor.offset * itemsize,
                nbytes=count * itemsize,
                member_crc=info.CRC if whole else None,
            )
    return arrays, batch_size
