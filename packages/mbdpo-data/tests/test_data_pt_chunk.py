"""Safe reading of TD-MPC2 `.pt` chunks (pt_chunk) and the `.npz` files we write (npz_io).

Expected values come from the arrays the tests generate, saved with torch.save + tensordict and
read back with numpy's own `np.load` or plain file reads, never with the readers under test.
"""

from __future__ import annotations

import builtins
import os
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensordict
import torch
from mbdpo_core.errors import DataFormatError
from mbdpo_data.npz_io import NpzWriter, open_npz
from mbdpo_data.pt_chunk import read_chunk
from published_chunks import episodes_arrays, write_chunk


def _rewrite_zip(path: Path, replace: dict[str, bytes], deflate: tuple[str, ...] = ()) -> None:
    """Rewrite the zip at `path` with some members' bytes replaced or compressed."""
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members:
            compression = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            archive.writestr(name, replace.get(name, data), compress_type=compression)


def _member(path: Path, suffix: str) -> str:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(suffix)]
    return name


# ---------------------------------------------------------------------------------------------
# read_chunk on chunks in the published format


@pytest.mark.parametrize("class_path", ["new", "old"])
@pytest.mark.parametrize("terminated", [False, True], ids=["no-terminated", "terminated"])
def test_read_chunk_locates_the_bytes_of_every_array(
    tmp_path, mt80, monkeypatch, class_path, terminated
):
    arrays = episodes_arrays(mt80, 6, seed=3, terminated=terminated)
    path = tmp_path / "chunk_0.pt"
    write_chunk(path, arrays, class_path, monkeypatch)

    stored, batch_size = read_chunk(path)

    assert batch_size == (6, 101)
    assert sorted(stored) == sorted(arrays)
    raw = path.read_bytes()
    for name, expected in arrays.items():
        record = stored[name]
        assert record.dtype == expected.dtype, name
        assert record.shape == expected.shape, name
        assert record.nbytes == expected.nbytes, name
        got = raw[record.offset : record.offset + record.nbytes]
        assert got == expected.tobytes(), name
        assert record.member_crc == zlib.crc32(expected.tobytes()), name


def test_read_chunk_reads_an_mt30_chunk(tmp_path, mt30):
    arrays = episodes_arrays(mt30, 2, seed=4)
    path = tmp_path / "chunk_0.pt"
    write_chunk(path, arrays)

    stored, batch_size = read_chunk(path)

    assert batch_size == (2, 501)
    assert stored["obs"].shape == (2, 501, 24)
    raw = path.read_bytes()
    for name, expected in arrays.items():
        record = stored[name]
        assert raw[record.offset : record.offset + record.nbytes] == expected.tobytes(), name


def test_a_chunk_of_no_episodes_is_read_whatever_strides_its_empty_tensors_have(tmp_path, mt80):
    # numpy 2 gives an empty array zero strides, torch.from_numpy keeps them, and torch calls
    # such a tensor contiguous (it has no element to be out of place).
    arrays = {
        name: np.zeros((0, *a.shape[1:]), a.dtype)
        for name, a in episodes_arrays(mt80, 1, seed=2).items()
    }
    path = tmp_path / "chunk_0.pt"
    write_chunk(path, arrays)
    td = torch.load(path, weights_only=False)
    assert td["obs"].stride() == (0, 0, 0) and td["obs"].is_contiguous()

    stored, batch_size = read_chunk(path)

    assert batch_size == (0, 101)
    assert {name: (s.shape, s.nbytes) for name, s in stored.items()} == {
        name: (a.shape, 0) for name, a in arrays.items()
    }


# ---------------------------------------------------------------------------------------------
# Safety: no code from the file runs


def _touch(path: str) -> None:
    Path(path).touch()


class _CallsTestFunction:
    """Pickles as a call of this module's `_touch`: a global a chunk never names."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_touch, (str(self.marker),))


class _CallsOsSystem(_CallsTestFunction):
    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _CallsEval(_CallsTestFunction):
    def __reduce__(self):
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",))


PAYLOADS = {  # name -> (payload, the global as protocol 2 writes it: builtins as __builtin__)
    "test-function": (_CallsTestFunction, f"{_touch.__module__}.{_touch.__qualname__}"),
    "os.system": (_CallsOsSystem, f"{os.system.__module__}.system"),
    "builtins.eval": (_CallsEval, "__builtin__.eval"),
}


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_a_data_pkl_naming_another_global_is_refused_without_running_it(tmp_path, mt80, payload):
    make, global_name = PAYLOADS[payload]
    control = tmp_path / "control-ran"
    pickle.loads(pickle.dumps(make(control), protocol=2))  # plain pickle does run it
    assert control.exists()

    path = tmp_path / "chunk_0.pt"
    write_chunk(path, episodes_arrays(mt80, 2, seed=5))
    marker = tmp_path / "payload-ran"
    evil = pickle.dumps({"td": make(marker)}, protocol=2)
    _rewrite_zip(path, {_member(path, "/data.pkl"): evil})

    with pytest.raises(DataFormatError) as err:
        read_chunk(path)

    assert str(path) in str(err.value)
    assert global_name in str(err.value)
    assert not marker.exists()


def test_a_torch_saved_object_of_another_class_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "chunk_0.pt"
    torch.save({"obs": torch.zeros(2, 101, 39), "extra": _CallsTestFunction(marker)}, path)

    with pytest.raises(DataFormatError) as err:
        read_chunk(path)

    assert f"{_touch.__module__}.{_touch.__qualname__}" in str(err.value)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_a_plain_dict_of_tensors_is_refused_as_not_a_tensordict(tmp_path):
    path = tmp_path / "chunk_0.pt"
    torch.save({"obs": torch.zeros(2, 101, 39)}, path)

    with pytest.raises(DataFormatError, match="dict, not a TensorDict") as err:
        read_chunk(path)

    assert str(path) in str(err.value)


def test_a_tensordict_with_a_nested_tensordict_is_refused(tmp_path):
    path = tmp_path / "chunk_0.pt"
    inner = tensordict.TensorDict({"x": torch.zeros(2, 101)}, batch_size=(2, 101))
    td = tensordict.TensorDict({"obs": torch.zeros(2, 101, 39), "nested": inner}, (2, 101))
    torch.save(td, path)

    with pytest.raises(DataFormatError, match="'nested'") as err:
        read_chunk(path)

    assert str(path) in str(err.value)


# ---------------------------------------------------------------------------------------------
# Damaged archives


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "chunk_0.pt"
    path.write_bytes(b"<html>404 Not Found</html>")

    with pytest.raises(DataFormatError, match="not a torch.save zip") as err:
        read_chunk(path)

    assert str(path) in str(err.value)


@pytest.mark.parametrize("keep", ["half", "all-but-20-bytes"])
def test_a_truncated_chunk_is_refused(tmp_path, mt80, keep):
    path = tmp_path / "chunk_0.pt"
    write_chunk(path, episodes_arrays(mt80, 4, seed=6))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if keep == "half" else data[:-20])

    with pytest.raises(DataFormatError, match="truncated") as err:
        read_chunk(path)

    assert str(path) in str(err.value)


def test_a_storage_shorter_than_its_record_is_refused(tmp_path, mt80):
    arrays = episodes_arrays(mt80, 3, seed=7)
    path = tmp_path / "chunk_0.pt"
    write_chunk(path, arrays)
    with zipfile.ZipFile(path) as archive:
        (obs_member,) = [
            i.filename for i in archive.infolist() if i.file_size == arrays["obs"].nbytes
        ]
        data = archive.read(obs_member)
    _rewrite_zip(path, {obs_member: data[:-8]})

    with pytest.raises(DataFormatError, match="corrupt") as err:
        read_chunk(path)

    assert str(path) in str(err.value)


def test_a_compressed_storage_is_refused(tmp_path, mt80):
    arrays = episodes_arrays(mt80, 3, seed=8)
    path = tmp_path / "chunk_0.pt"
    write_chunk(path, arrays)
    with zipfile.ZipFile(path) as archive:
        (obs_member,) = [
            i.filename for i in archive.infolist() if i.file_size == arrays["obs"].nbytes
        ]
    _rewrite_zip(path, {}, deflate=(obs_member,))

    with pytest.raises(DataFormatError, match="compressed") as err:
        read_chunk(path)

    assert str(path) in str(err.value)


# ---------------------------------------------------------------------------------------------
# npz_io: NpzWriter and open_npz


def _npz_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(9)
    obs = rng.standard_normal((5, 101, 39), dtype=np.float32)
    obs[1, 2, 3] = np.nan
    return {
        "obs": obs,
        "task": rng.integers(-(2**40), 2**40, (5, 101)),
        "flags": rng.integers(0, 2, (5, 101)).astype(bool),
        "small": np.arange(7, dtype=np.int32),
        "empty": np.zeros((0, 101, 39), np.float32),
    }


def _write_npz(path: Path, arrays: dict[str, np.ndarray], blocks: int = 3) -> None:
    writer = NpzWriter(path)
    for name, array in arrays.items():
        data = array.tobytes()
        step = max(1, -(-len(data) // blocks))
        with writer.array(name, array.dtype, array.shape) as f:
            for start in range(0, len(data), step):
                f.write(data[start : start + step])
    writer.close()


def _np_load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _assert_same(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert got.dtype == expected.dtype, what
    assert got.shape == expected.shape, what
    if np.issubdtype(expected.dtype, np.floating):
        assert np.array_equal(np.isnan(got), np.isnan(expected)), what
    assert np.asarray(got).tobytes() == expected.tobytes(), what


def test_np_load_reads_what_npz_writer_wrote_block_by_block(tmp_path):
    arrays = _npz_arrays()
    path = tmp_path / "a.npz"
    _write_npz(path, arrays)

    loaded = _np_load(path)

    assert sorted(loaded) == sorted(arrays)
    for name, expected in arrays.items():
        _assert_same(loaded[name], expected, name)


def test_npz_writer_stores_members_uncompressed(tmp_path):
    path = tmp_path / "a.npz"
    _write_npz(path, _npz_arrays())

    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}


def test_open_npz_maps_every_array_and_equals_np_load(tmp_path):
    path = tmp_path / "a.npz"
    _write_npz(path, _npz_arrays())

    mapped = open_npz(path)
    loaded = _np_load(path)

    assert sorted(mapped) == sorted(loaded)
    for name, expected in loaded.items():
        _assert_same(mapped[name], expected, name)
        if expected.size:
            assert isinstance(mapped[name], np.memmap), name
            assert not mapped[name].flags.writeable, name


def test_open_npz_reads_numpy_savez_files(tmp_path):
    arrays = _npz_arrays()
    path = tmp_path / "numpy.npz"
    np.savez(path, **arrays)

    mapped = open_npz(path)

    for name, expected in arrays.items():
        _assert_same(mapped[name], expected, name)


def test_open_npz_refuses_a_compressed_npz_naming_the_file(tmp_path):
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, obs=np.ones((3, 4), np.float32))

    with pytest.raises(DataFormatError, match="obs.npy") as err:
        open_npz(path)

    assert str(path) in str(err.value)


def test_open_npz_refuses_a_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "chunk_0.npz"
    path.write_bytes(b"\x93NUMPY not a zip")

    with pytest.raises(DataFormatError) as err:
        open_npz(path)

    assert str(path) in str(err.value)
