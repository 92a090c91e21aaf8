"""Converting `.pt` chunks to `.npz`: bit-exact arrays, manifest, refusals, resuming, SIGKILL.

Expected values come from the arrays the tests generate (saved with torch.save + tensordict),
hashed with hashlib and compared with what numpy's own `np.load` reads from the outputs.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from mbdpo_core.errors import ConfigError, DataFormatError
from mbdpo_data.convert import convert
from mbdpo_data.layouts import LAYOUTS
from published_chunks import episodes_arrays, write_chunk

REPO = Path(__file__).resolve().parents[3]
APP = REPO / "apps" / "convert"
TEMPORARY = re.compile(r"^\..+\.tmp$")


# ---------------------------------------------------------------------------------------------
# helpers, independent of the code under test


def np_load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def assert_same_array(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Same dtype, shape, NaNs in the same places and the same bytes."""
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    if np.issubdtype(expected.dtype, np.floating):
        assert np.array_equal(np.isnan(got), np.isnan(expected)), f"{what}: NaN places differ"
    assert got.tobytes() == expected.tobytes(), f"{what}: bytes differ"


def assert_converted(npz: Path, arrays: dict[str, np.ndarray]) -> None:
    loaded = np_load(npz)
    assert sorted(loaded) == sorted(arrays), npz
    for name, expected in arrays.items():
        assert_same_array(loaded[name], expected, f"{npz.name}:{name}")


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def temporaries(dst: Path) -> list[str]:
    return [p.name for p in dst.iterdir() if TEMPORARY.match(p.name)] if dst.is_dir() else []


def outputs_stat(dst: Path) -> dict[str, tuple[int, int]]:
    """name -> (inode, mtime_ns) of every .npz output."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(dst.glob("*.npz"))}


def folder_snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file of `folder`: name -> (inode, mtime_ns, bytes)."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.iterdir())
    }


def flip_byte(path: Path, offset: int) -> None:
    """Flip the lowest bit of the byte at `offset` in place (a float stays finite)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x01]))


def member_data(path: Path, match) -> tuple[int, int]:
    """(file offset, size) of the data of the one zip member for which `match(info)` holds."""
    with zipfile.ZipFile(path) as archive:
        (info,) = [i for i in archive.infolist() if match(i)]
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_len, extra_len = struct.unpack("<2H", header[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def write_source(src: Path, layout, sizes: dict[str, int]) -> dict[str, dict[str, np.ndarray]]:
    """Write chunks `name -> episodes` of `layout` in `src`; return name -> arrays."""
    sources = {}
    for i, (name, episodes) in enumerate(sizes.items()):
        arrays = episodes_arrays(layout, episodes, seed=100 + i)
        write_chunk(src / f"{name}.pt", arrays)
        sources[name] = arrays
    return sources


def run_convert(src: Path, dst: Path, **kwargs) -> tuple[dict, list[str]]:
    """convert() with its log lines collected."""
    lines: list[str] = []
    manifest = convert(src, dst, progress=False, log=lines.append, **kwargs)
    return manifest, lines


# ---------------------------------------------------------------------------------------------
# 1. Converted arrays equal the source bit for bit; the manifest describes them


ROUND_TRIPS = [
    pytest.param("mt80", "new", False, {"chunk_2": 7, "chunk_10": 3}, id="mt80-new"),
    pytest.param("mt80", "new", True, {"chunk_2": 7, "chunk_10": 3}, id="mt80-new-terminated"),
    pytest.param("mt80", "old", False, {"chunk_2": 7, "chunk_10": 3}, id="mt80-old"),
    pytest.param("mt80", "old", True, {"chunk_2": 7, "chunk_10": 3}, id="mt80-old-terminated"),
    pytest.param("mt30", "new", False, {"chunk_0": 3}, id="mt30-new"),
    pytest.param("mt30", "old", True, {"chunk_0": 3}, id="mt30-old-terminated"),
]


@pytest.mark.parametrize(("dataset", "class_path", "terminated", "sizes"), ROUND_TRIPS)
def test_every_converted_array_equals_the_source_bit_for_bit(
    tmp_path, monkeypatch, dataset, class_path, terminated, sizes
):
    layout = LAYOUTS[dataset]
    src, dst = tmp_path / "src", tmp_path / "dst"
    sources = {}
    for i, (name, episodes) in enumerate(sizes.items()):
        arrays = episodes_arrays(layout, episodes, seed=10 + i, terminated=terminated)
        arrays["obs"][0, 5, 2] = -0.0  # a signed zero and a NaN of another payload survive
        arrays["action"].view(np.uint32)[-1, 0, 1] = 0x7FC0_1234
        write_chunk(src / f"{name}.pt", arrays, class_path, monkeypatch)
        sources[name] = arrays

    convert(src, dst, progress=False, log=lambda line: None)

    for name, arrays in sources.items():
        assert_converted(dst / f"{name}.npz", arrays)
    assert not temporaries(dst)


@pytest.mark.parametrize(("dataset", "class_path", "terminated", "sizes"), ROUND_TRIPS)
def test_the_manifest_lists_every_chunk_with_its_checksums(
    tmp_path, monkeypatch, dataset, class_path, terminated, sizes
):
    layout = LAYOUTS[dataset]
    src, dst = tmp_path / "src", tmp_path / "dst"
    sources = {}
    for i, (name, episodes) in enumerate(sizes.items()):
        arrays = episodes_arrays(layout, episodes, seed=20 + i, terminated=terminated)
        write_chunk(src / f"{name}.pt", arrays, class_path, monkeypatch)
        sources[name] = arrays

    returned, _ = run_convert(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())

    assert returned == manifest
    assert manifest["dataset"] == dataset
    assert manifest["complete"] is True
    assert manifest["episode_rows"] == layout.episode_rows
    assert (manifest["obs_dim"], manifest["action_dim"]) == (layout.obs_dim, layout.action_dim)
    assert manifest["n_tasks"] == layout.n_tasks
    assert manifest["episodes"] == sum(sizes.values())
    all_tasks = np.concatenate([a["task"].ravel() for a in sources.values()])
    assert manifest["task_range"] == [int(all_tasks.min()), int(all_tasks.max())]
    assert [c["name"] for c in manifest["chunks"]] == [f"{n}.npz" for n in sizes]  # natural
    for record, (name, arrays) in zip(manifest["chunks"], sources.items(), strict=True):
        pt = src / f"{name}.pt"
        assert record["source"] == pt.name
        assert record["source_bytes"] == pt.stat().st_size
        assert record["source_mtime_ns"] == pt.stat().st_mtime_ns
        assert record["bytes"] == (dst / record["name"]).stat().st_size
        assert record["episodes"] == sizes[name]
        assert record["task_range"] == [int(arrays["task"].min()), int(arrays["task"].max())]
        assert record["arrays"] == {
            n: {"dtype": a.dtype.name, "shape": list(a.shape), "sha256": sha256(a)}
            for n, a in arrays.items()
        }


def test_both_class_paths_convert_to_the_same_arrays(tmp_path, mt80, monkeypatch):
    arrays = episodes_arrays(mt80, 5, seed=30, terminated=True)
    write_chunk(tmp_path / "new" / "chunk_0.pt", arrays, "new")
    write_chunk(tmp_path / "old" / "chunk_0.pt", arrays, "old", monkeypatch)

    new, _ = run_convert(tmp_path / "new", tmp_path / "new-npz")
    old, _ = run_convert(tmp_path / "old", tmp_path / "old-npz")

    assert new["chunks"][0]["arrays"] == old["chunks"][0]["arrays"]
    assert_converted(tmp_path / "old-npz" / "chunk_0.npz", arrays)


def test_an_int32_task_and_a_bool_terminated_keep_their_dtypes(tmp_path, mt80):
    arrays = episodes_arrays(mt80, 4, seed=31)
    arrays["task"] = arrays["task"].astype(np.int32)
    arrays["terminated"] = np.zeros(arrays["reward"].shape, bool)
    arrays["terminated"][:, -1] = True
    write_chunk(tmp_path / "src" / "chunk_0.pt", arrays)

    manifest, _ = run_convert(tmp_path / "src", tmp_path / "dst")

    assert_converted(tmp_path / "dst" / "chunk_0.npz", arrays)
    assert manifest["chunks"][0]["arrays"]["task"]["dtype"] == "int32"
    assert manifest["chunks"][0]["arrays"]["terminated"]["dtype"] == "bool"


def test_nan_filler_in_row_0_of_action_reward_and_terminated_is_accepted(tmp_path, mt80):
    arrays = episodes_arrays(mt80, 3, seed=32, terminated=True)
    assert np.isnan(arrays["reward"][:, 0]).all() and np.isnan(arrays["action"][:, 0]).all()
    assert np.isnan(arrays["terminated"][:, 0]).all()
    write_chunk(tmp_path / "src" / "chunk_0.pt", arrays)

    run_convert(tmp_path / "src", tmp_path / "dst")

    assert_converted(tmp_path / "dst" / "chunk_0.npz", arrays)


# ---------------------------------------------------------------------------------------------
# 2-3. Unsafe and corrupt chunks are refused, naming the file and the problem


class _Touches:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _bad_unsafe_global(path, layout):
    torch.save({"obs": torch.zeros(2, 101, 39), "x": _Touches(path.with_name("ran"))}, path)


def _bad_plain_dict(path, layout):
    arrays = episodes_arrays(layout, 2, seed=40)
    torch.save({n: torch.from_numpy(a) for n, a in arrays.items()}, path)


def _bad_truncated_half(path, layout):
    write_chunk(path, episodes_arrays(layout, 4, seed=41))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bad_truncated_end(path, layout):
    write_chunk(path, episodes_arrays(layout, 4, seed=42))
    data = path.read_bytes()
    path.write_bytes(data[:-7])


def _modified(apply, terminated: bool = False):
    """A chunk writer: episodes_arrays with `apply(arrays)` applied."""

    def make(path, layout):
        arrays = episodes_arrays(layout, 4, seed=43, terminated=terminated)
        apply(arrays)
        write_chunk(path, arrays)

    return make


def _change_task(episode: int, row: int):
    """Give one row of an episode another (valid) task id than the episode's."""

    def apply(arrays):
        task = arrays["task"]
        task[episode, row] = (task[episode, 0] + 1) % 80

    return apply


def _mt30_chunk(path, layout):
    write_chunk(path, episodes_arrays(LAYOUTS["mt30"], 1, seed=48))


def _set(name, value):
    def apply(arrays):
        arrays[name] = value(arrays)

    return apply


def _assign(name, index, value):
    def apply(arrays):
        arrays[name][index] = value

    return apply


def _bad_flipped_byte(path, layout):
    arrays = episodes_arrays(layout, 4, seed=44)
    write_chunk(path, arrays)
    offset, size = member_data(path, lambda i: i.file_size == arrays["obs"].nbytes)
    flip_byte(path, offset + (size // 2) // 4 * 4)  # lowest byte of a float32: stays finite


WRONG_LAYOUT = [  # (writer, words the message holds)
    pytest.param(
        _modified(apply=_set("obs", lambda a: a["obs"][..., :30].copy())),
        ["obs", "30"],
        id="obs-width-30",
    ),
    pytest.param(
        _modified(apply=lambda a: a.update({k: v[:, :100].copy() for k, v in a.items()})),
        ["obs", "100"],
        id="T-100",
    ),
    pytest.param(
        _modified(apply=_set("action", lambda a: a["action"][..., :4].copy())),
        ["action", "shape"],
        id="action-width-4",
    ),
    pytest.param(
        _modified(apply=_set("obs", lambda a: a["obs"].astype(np.float64))),
        ["obs", "float64"],
        id="float64-obs",
    ),
]

STRUCTURAL = [  # (writer, words the message holds): refused before anything is written
    pytest.param(_bad_unsafe_global, ["posix.system"], id="unsafe-global"),
    pytest.param(_bad_plain_dict, ["not a TensorDict"], id="plain-dict"),
    pytest.param(_bad_truncated_half, ["truncated"], id="truncated-half"),
    pytest.param(_bad_truncated_end, ["truncated"], id="truncated-last-bytes"),
    *WRONG_LAYOUT,
    pytest.param(_mt30_chunk, ["obs", "501"], id="mt30-chunk-among-mt80"),
    pytest.param(_modified(apply=lambda a: a.pop("task")), ["missing", "task"], id="missing-task"),
    pytest.param(
        _modified(apply=_set("extra", lambda a: np.zeros_like(a["reward"]))),
        ["unexpected", "extra"],
        id="extra-array",
    ),
]

VALUES = [  # (writer, words the message holds): found while streaming
    pytest.param(_bad_flipped_byte, ["obs", "CRC"], id="flipped-byte"),
    pytest.param(_modified(apply=_assign("task", (2, slice(None)), 80)), ["80"], id="task-80"),
    pytest.param(_modified(apply=_assign("task", (0, slice(None)), -1)), ["-1"], id="task-1"),
    pytest.param(_modified(apply=_change_task(1, 50)), ["changes"], id="task-changes"),
    pytest.param(_modified(apply=_change_task(3, 100)), ["changes"], id="task-last-row"),
    pytest.param(_modified(apply=_assign("obs", (3, 0, 7), np.nan)), ["obs", "NaN"], id="obs-nan"),
    pytest.param(
        _modified(apply=_assign("reward", (2, 40), np.nan)), ["reward", "NaN"], id="reward-nan"
    ),
    pytest.param(
        _modified(apply=_assign("action", (0, 100, 1), np.inf)), ["action"], id="action-inf"
    ),
    pytest.param(
        _modified(apply=_assign("terminated", (2, 7), np.nan), terminated=True),
        ["terminated", "NaN"],
        id="terminated-nan",
    ),
    pytest.param(
        _modified(apply=_assign("terminated", (1, 7), 0.5), terminated=True),
        ["terminated", "0 and 1"],
        id="terminated-half",
    ),
]


def _corrupt_source(tmp_path: Path, layout, make) -> tuple[Path, Path, dict]:
    """SRC with a good chunk_0 and a bad chunk_1."""
    src = tmp_path / "src"
    good = episodes_arrays(layout, 3, seed=45)
    write_chunk(src / "chunk_0.pt", good)
    make(src / "chunk_1.pt", layout)
    return src, src / "chunk_1.pt", good


@pytest.mark.parametrize(("make", "words"), STRUCTURAL)
def test_a_structurally_bad_chunk_is_refused_before_anything_is_written(
    tmp_path, mt80, make, words
):
    src, bad, _ = _corrupt_source(tmp_path, mt80, make)
    dst = tmp_path / "dst"

    with pytest.raises(DataFormatError) as err:
        convert(src, dst, progress=False, log=lambda line: None)

    message = str(err.value)
    assert str(bad) in message
    for word in words:
        assert word in message
    assert not dst.exists()
    assert not (tmp_path / "src" / "ran").exists()


@pytest.mark.parametrize("dataset", [None, "mt80"], ids=["inferred", "named"])
@pytest.mark.parametrize(("make", "words"), WRONG_LAYOUT)
def test_a_first_chunk_of_the_wrong_layout_is_refused(tmp_path, mt80, make, words, dataset):
    src = tmp_path / "src"
    make(src / "chunk_0.pt", mt80)

    with pytest.raises(DataFormatError) as err:
        convert(src, tmp_path / "dst", dataset=dataset, progress=False, log=lambda line: None)

    assert str(src / "chunk_0.pt") in str(err.value)
    assert words[0] in str(err.value)
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize(("make", "words"), VALUES)
def test_a_chunk_with_bad_values_leaves_no_output_and_no_temporary(tmp_path, mt80, make, words):
    src, bad, good = _corrupt_source(tmp_path, mt80, make)
    dst = tmp_path / "dst"

    with pytest.raises(DataFormatError) as err:
        convert(src, dst, progress=False, log=lambda line: None)

    message = str(err.value)
    assert str(bad) in message
    for word in words:
        assert word in message
    assert not (dst / "chunk_1.npz").exists()
    assert not temporaries(dst)
    assert_converted(dst / "chunk_0.npz", good)  # finished before it: kept and recorded
    manifest = json.loads((dst / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert [c["name"] for c in manifest["chunks"]] == ["chunk_0.npz"]


def test_a_fixed_chunk_completes_the_conversion_left_by_a_bad_one(tmp_path, mt80):
    src, bad, good = _corrupt_source(
        tmp_path, mt80, _modified(apply=_assign("obs", (3, 0, 7), np.nan))
    )
    dst = tmp_path / "dst"
    with pytest.raises(DataFormatError):
        run_convert(src, dst)
    first = outputs_stat(dst)
    fixed = episodes_arrays(mt80, 5, seed=46)
    write_chunk(bad, fixed)

    manifest, lines = run_convert(src, dst)

    assert manifest["complete"] is True
    assert outputs_stat(dst)["chunk_0.npz"] == first["chunk_0.npz"]
    assert_converted(dst / "chunk_1.npz", fixed)
    assert [line for line in lines if "->" in line] == ["chunk_1.pt -> chunk_1.npz: 5 episodes"]


# ---------------------------------------------------------------------------------------------
# 4. Resuming and refusing to mix


@pytest.fixture
def converted(tmp_path, mt80):
    """(src, dst, name -> arrays): three mt80 chunks converted once."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    sources = write_source(src, mt80, {"chunk_0": 4, "chunk_1": 2, "chunk_2": 3})
    run_convert(src, dst)
    return src, dst, sources


def test_a_second_conversion_converts_nothing(converted):
    src, dst, _ = converted
    before = outputs_stat(dst)

    manifest, lines = run_convert(src, dst)

    assert lines == [f"chunk_{i}.pt: already converted and verified, skipped" for i in range(3)]
    assert outputs_stat(dst) == before
    assert manifest["complete"] is True
    assert len(manifest["chunks"]) == 3


def test_a_deleted_output_is_the_only_one_converted_again(converted):
    src, dst, sources = converted
    before = outputs_stat(dst)
    (dst / "chunk_1.npz").unlink()

    manifest, lines = run_convert(src, dst)

    converted_lines = [line for line in lines if "->" in line]
    assert converted_lines == ["chunk_1.pt -> chunk_1.npz: 2 episodes"]
    after = outputs_stat(dst)
    assert after["chunk_0.npz"] == before["chunk_0.npz"]
    assert after["chunk_2.npz"] == before["chunk_2.npz"]
    assert_converted(dst / "chunk_1.npz", sources["chunk_1"])
    assert [c["name"] for c in manifest["chunks"]] == [f"chunk_{i}.npz" for i in range(3)]
    assert manifest["complete"] is True


def test_a_corrupted_output_byte_is_converted_again(converted):
    src, dst, sources = converted
    before = outputs_stat(dst)
    offset, size = member_data(dst / "chunk_2.npz", lambda i: i.filename == "obs.npy")
    flip_byte(dst / "chunk_2.npz", offset + size // 2)
    with pytest.raises(zipfile.BadZipFile, match="CRC"):  # the byte is flipped for numpy too
        np_load(dst / "chunk_2.npz")

    _, lines = run_convert(src, dst)

    assert [line for line in lines if "->" in line] == ["chunk_2.pt -> chunk_2.npz: 3 episodes"]
    assert any(line.startswith("chunk_2.npz:") and "again" in line for line in lines)
    after = outputs_stat(dst)
    assert after["chunk_0.npz"] == before["chunk_0.npz"]
    assert after["chunk_1.npz"] == before["chunk_1.npz"]
    assert_converted(dst / "chunk_2.npz", sources["chunk_2"])


def test_a_touched_source_is_refused_without_overwrite_and_converted_with_it(converted):
    src, dst, sources = converted
    pt = src / "chunk_0.pt"
    stat = pt.stat()
    os.utime(pt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    before = folder_snapshot(dst)

    with pytest.raises(ConfigError, match="overwrite") as err:
        run_convert(src, dst)

    assert str(pt) in str(err.value)
    assert folder_snapshot(dst) == before

    manifest, lines = run_convert(src, dst, overwrite=True)

    assert "chunk_0.pt -> chunk_0.npz: 4 episodes" in lines
    assert manifest["chunks"][0]["source_mtime_ns"] == pt.stat().st_mtime_ns
    assert_converted(dst / "chunk_0.npz", sources["chunk_0"])
    _, lines = run_convert(src, dst)
    assert len(lines) == 3 and all("skipped" in line for line in lines)


def test_a_rewritten_source_is_converted_again_only_with_overwrite(converted, mt80):
    src, dst, sources = converted
    pt = src / "chunk_1.pt"
    new = episodes_arrays(mt80, 2, seed=47)
    write_chunk(pt, new)
    stat = pt.stat()
    os.utime(pt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # surely a new stamp

    with pytest.raises(ConfigError):
        run_convert(src, dst)
    assert_converted(dst / "chunk_1.npz", sources["chunk_1"])

    manifest, _ = run_convert(src, dst, overwrite=True)

    assert_converted(dst / "chunk_1.npz", new)
    assert manifest["chunks"][1]["arrays"]["obs"]["sha256"] == sha256(new["obs"])


def test_a_folder_with_a_foreign_file_and_no_manifest_is_refused_untouched(tmp_path, mt80):
    src = tmp_path / "src"
    write_source(src, mt80, {"chunk_0": 2})
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    before = folder_snapshot(dst)

    with pytest.raises(ConfigError) as err:
        run_convert(src, dst)

    assert str(dst) in str(err.value)
    assert folder_snapshot(dst) == before


def test_the_folder_of_another_dataset_is_refused_untouched(tmp_path, mt30, mt80):
    write_source(tmp_path / "mt30-pt", mt30, {"chunk_0": 1})
    write_source(tmp_path / "mt80-pt", mt80, {"chunk_0": 2})
    dst = tmp_path / "dst"
    run_convert(tmp_path / "mt30-pt", dst)
    before = folder_snapshot(dst)

    with pytest.raises(ConfigError, match="mt30") as err:
        run_convert(tmp_path / "mt80-pt", dst)

    assert "mt80" in str(err.value)
    assert folder_snapshot(dst) == before


def test_a_folder_being_converted_by_another_process_is_refused(tmp_path, mt80):
    src = tmp_path / "src"
    write_source(src, mt80, {"chunk_0": 2})
    dst = tmp_path / "dst"
    dst.mkdir()
    with open(dst / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)

        with pytest.raises(ConfigError, match="another process"):
            run_convert(src, dst)

    assert not (dst / "chunk_0.npz").exists()
    run_convert(src, dst)  # the lock is free again
    assert (dst / "chunk_0.npz").exists()


def test_a_new_or_empty_folder_is_accepted(tmp_path, mt80):
    src = tmp_path / "src"
    sources = write_source(src, mt80, {"chunk_0": 2})
    (tmp_path / "empty").mkdir()

    run_convert(src, tmp_path / "empty")
    run_convert(src, tmp_path / "new" / "nested")

    assert_converted(tmp_path / "empty" / "chunk_0.npz", sources["chunk_0"])
    assert_converted(tmp_path / "new" / "nested" / "chunk_0.npz", sources["chunk_0"])


def test_bad_src_or_jobs_is_a_config_error_before_anything_is_written(tmp_path, mt80):
    src = tmp_path / "src"
    write_source(src, mt80, {"chunk_0": 2})
    (tmp_path / "no-pt").mkdir()
    dst = tmp_path / "dst"

    for kwargs in (
        {"src": tmp_path / "missing"},
        {"src": tmp_path / "no-pt"},
        {"src": src, "jobs": 0},
        {"src": src, "dataset": "mt10"},
    ):
        with pytest.raises(ConfigError):
            convert(kwargs.pop("src"), dst, progress=False, log=lambda line: None, **kwargs)
        assert not dst.exists(), kwargs


# ---------------------------------------------------------------------------------------------
# The app: exit status and one-line errors


def _load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("convert_app", APP / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app(monkeypatch):
    """apps/convert's main(), run in this process without installing its SIGTERM handler."""
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    return _load_app().main


def test_the_app_exits_0_and_prints_a_summary(tmp_path, mt80, app, capsys):
    write_source(tmp_path / "src", mt80, {"chunk_0": 2, "chunk_1": 3})

    code = app([str(tmp_path / "src"), str(tmp_path / "dst"), "--quiet"])

    out = capsys.readouterr().out
    assert code == 0
    assert "mt80" in out and "2 chunks" in out and "5 episodes" in out


def test_the_app_exits_1_on_a_corrupt_chunk_with_a_one_line_error(tmp_path, mt80, app, capsys):
    src, bad, _ = _corrupt_source(tmp_path, mt80, _bad_truncated_half)

    code = app([str(src), str(tmp_path / "dst"), "--quiet"])

    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("error: ") and str(bad) in err and "\n" not in err


def test_the_app_exits_2_on_a_bad_folder_with_a_one_line_error(tmp_path, app, capsys):
    code = app([str(tmp_path / "missing"), str(tmp_path / "dst"), "--quiet"])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err
    assert not (tmp_path / "dst").exists()


# ---------------------------------------------------------------------------------------------
# 5. Interrupted conversions and parallel jobs


def _run_app(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(APP), *args, "--quiet"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def _check_only_complete_outputs(dst: Path, sources: dict[str, dict[str, np.ndarray]]) -> None:
    """Every .npz in DST (listed or not yet) equals its source; the rest are temporaries."""
    names = set(os.listdir(dst)) if dst.exists() else set()
    allowed = {"manifest.json", ".lock"} | {f"{n}.npz" for n in sources}
    assert {n for n in names if not TEMPORARY.match(n)} <= allowed, names
    if "manifest.json" in names:
        manifest = json.loads((dst / "manifest.json").read_text())
        for record in manifest["chunks"]:
            assert record["name"] in names
            arrays = sources[record["name"][: -len(".npz")]]
            assert record["arrays"]["obs"]["sha256"] == sha256(arrays["obs"])
    for name in names:
        if name.endswith(".npz"):
            assert_converted(dst / name, sources[name[: -len(".npz")]])


def _interrupt_inside_a_chunk(src: Path, dst: Path, signum: signal.Signals, sources) -> None:
    """Send `signum` while a chunk's temporary exists: exit 130, a rerun hint, no temporary left.
    A conversion that ends before the signal lands (a fast machine) is tried again afresh."""
    for _ in range(5):
        shutil.rmtree(dst, ignore_errors=True)
        process = _run_app(str(src), str(dst))
        begin = time.monotonic()
        while process.poll() is None and not any(n.startswith(".chunk_") for n in temporaries(dst)):
            time.sleep(0.001)
            assert time.monotonic() - begin < 120
        if process.poll() is None:
            process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        if process.returncode == 0:
            continue  # finished before the signal arrived
        assert process.returncode == 130, err.decode()
        assert "rerun" in err.decode()
        assert not temporaries(dst)
        _check_only_complete_outputs(dst, sources)
        return
    pytest.fail(f"every conversion finished before {signum.name} could interrupt it")


def test_an_interrupted_conversion_leaves_only_complete_outputs_and_resumes(tmp_path, mt80):
    src, dst = tmp_path / "src", tmp_path / "dst"
    sizes = {f"chunk_{i}": 2500 for i in range(4)}  # ~48 MB each
    sources = write_source(src, mt80, sizes)

    def new_temporary(run: dict) -> bool:
        return bool(set(temporaries(dst)) - run["temporaries"])

    def new_chunk_temporary(run: dict) -> bool:
        return any(n.startswith(".chunk_") for n in set(temporaries(dst)) - run["temporaries"])

    def new_temporary_for(seconds: float, found=new_temporary):
        def trigger(run: dict) -> bool:
            if found(run):
                run.setdefault("seen", time.monotonic())
                return time.monotonic() - run["seen"] >= seconds
            return False

        return trigger

    def new_output(run: dict) -> bool:
        return bool({p.name for p in dst.glob("*.npz")} - run["outputs"])

    def after(seconds: float):
        return lambda run: time.monotonic() - run["begin"] >= seconds

    for signum in (signal.SIGTERM, signal.SIGINT):  # exit 130, nothing left behind
        _interrupt_inside_a_chunk(src, tmp_path / f"dst-{signum.name}", signum, sources)

    plan = [(new_temporary, signal.SIGKILL), (new_output, signal.SIGKILL)]
    plan += [(new_temporary_for(0.05), signal.SIGKILL), (after(0.3), signal.SIGKILL)]
    plan += [(new_temporary_for(0.15), signal.SIGKILL), (new_output, signal.SIGKILL)]
    killed_with_temporary = 0
    for trigger, signum in plan:
        run = {
            "begin": time.monotonic(),
            "outputs": {p.name for p in dst.glob("*.npz")} if dst.exists() else set(),
            "temporaries": set(temporaries(dst)),
        }
        process = _run_app(str(src), str(dst))
        while process.poll() is None and not trigger(run):
            time.sleep(0.002)
            assert time.monotonic() - run["begin"] < 120
        if process.poll() is None:
            process.send_signal(signum)
        process.communicate(timeout=60)
        killed_with_temporary += bool(set(temporaries(dst)) - run["temporaries"])
        _check_only_complete_outputs(dst, sources)
    assert killed_with_temporary >= 2  # the kills did land inside a chunk's write

    process = _run_app(str(src), str(dst))
    out, err = process.communicate(timeout=300)

    assert process.returncode == 0, err.decode()
    for name, arrays in sources.items():
        assert_converted(dst / f"{name}.npz", arrays)
    manifest = json.loads((dst / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert [c["name"] for c in manifest["chunks"]] == [f"{n}.npz" for n in sizes]
    assert not temporaries(dst)


def test_two_jobs_convert_to_the_same_arrays_as_one(tmp_path, mt80):
    src = tmp_path / "src"
    sources = write_source(src, mt80, {f"chunk_{i}": 20 + 7 * i for i in range(4)})

    one, _ = run_convert(src, tmp_path / "one", jobs=1)
    process = _run_app(str(src), str(tmp_path / "two"), "--jobs", "2")
    out, err = process.communicate(timeout=300)
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())

    assert process.returncode == 0, err.decode()
    assert two["complete"] is True
    assert [c["name"] for c in two["chunks"]] == [c["name"] for c in one["chunks"]]
    for a, b in zip(one["chunks"], two["chunks"], strict=True):
        assert a["arrays"] == b["arrays"]
        assert (a["episodes"], a["task_range"]) == (b["episodes"], b["task_range"])
    for name, arrays in sources.items():
        assert_converted(tmp_path / "one" / f"{name}.npz", arrays)
        assert_converted(tmp_path / "two" / f"{name}.npz", arrays)
    assert not temporaries(tmp_path / "two")


def test_two_jobs_refuse_a_bad_chunk_naming_it_and_leave_no_temporary(tmp_path, mt80):
    src = tmp_path / "src"
    sources = write_source(src, mt80, {"chunk_0": 30, "chunk_1": 20})
    bad = episodes_arrays(mt80, 10, seed=49)
    bad["reward"][4, 60] = np.nan
    write_chunk(src / "chunk_2.pt", bad)
    dst = tmp_path / "dst"

    with pytest.raises(DataFormatError, match="reward") as err:
        run_convert(src, dst, jobs=2)

    assert str(src / "chunk_2.pt") in str(err.value)
    assert not (dst / "chunk_2.npz").exists()
    assert not temporaries(dst)
    for npz in dst.glob("*.npz"):  # the other chunks: complete or absent
        assert_converted(npz, sources[npz.stem])
