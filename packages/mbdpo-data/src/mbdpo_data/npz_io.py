"""`.npz` files written array by array and read back memory-mapped (docs/data.md#npz-chunks).

`NpzWriter` writes an uncompressed (ZIP_STORED) `.npz` whose members are filled block by block,
so an array never has to be in memory whole; numpy's own `np.load` reads the result.
`open_npz` maps every member of such a file with `np.memmap` at its data offset, since
`np.load(mmap_mode="r")` does not map the members of an `.npz`.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from mbdpo_core.errors import DataFormatError

__all__ = ["NpzWriter", "open_npz"]

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class NpzWriter:
    """An uncompressed `.npz` being written: `with writer.array(name, dtype, shape) as f:` then
    `f.write(block)` with the array's bytes in C order, block after block; `close()` at the end."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    @contextmanager
    def array(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> Iterator[IO[bytes]]:
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": tuple(shape),
        }
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_2_0(member, header)
            yield member

    def close(self) -> None:
        self._zip.close()


def open_npz(path: str | Path) -> dict[str, np.memmap]:
    """Map every array of an uncompressed `.npz` read-only: name -> np.memmap (no data read).

    Raises DataFormatError naming the file when it is not a zip, a member is compressed, or a
    member is not a `.npy` array.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataFormatError(f"{path}: not a readable .npz ({err}).") from None
    arrays: dict[str, np.memmap] = {}
    with archive, open(path, "rb") as f:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                raise DataFormatError(f"{path}: member {info.filename} is not a stored .npy.")
            f.seek(info.header_offset)
            fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
            f.seek(info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1])
            try:
                read_header = _HEADER_READERS[np.lib.format.read_magic(f)]
                shape, fortran, dtype = read_header(f)
            except (ValueError, KeyError) as err:
                raise DataFormatError(f"{path}: member {info.filename}: {err}") from None
            if fortran:
                raise DataFormatError(f"{path}: member {info.filename} is in Fortran order.")
            name = info.filename[: -len(".npy")]
            if 0 in shape:
                arrays[name] = np.zeros(shape, dtype)  # np.memmap cannot map zero bytes
            else:
                arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape)
    return arrays
