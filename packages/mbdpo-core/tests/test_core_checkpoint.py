"""Checkpoint format: round trip, atomicity, corruption and parameter-set checks."""

import hashlib
import json
import os

import numpy as np
import pytest
from mbdpo_core.checkpoint import (
    FORMAT_VERSION,
    add_prefix,
    check_arrays,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    split_prefix,
)
from mbdpo_core.errors import CheckpointError


def _arrays(rng):
    return {
        "params/q.0.weight": rng.standard_normal((5, 7, 3)).astype(np.float32),
        "params/encoder.0.bias": rng.standard_normal(3).astype(np.float64),
        "optim/model/q.0.weight/exp_avg": rng.standard_normal((5, 7, 3)).astype(np.float16),
        "agent/prev_plan": rng.standard_normal((3, 2)).astype(np.float32)[:, ::-1],
        "buffer/task": rng.integers(-5, 5, 11).astype(np.int64),
        "buffer/obs": rng.integers(0, 256, (2, 4, 4, 3)).astype(np.uint8),
        "mask": np.array([True, False, True]),
        "scalar": np.array(3, dtype=np.int32),
    }


def _meta():
    return {
        "backend": "torch",
        "config": {"task": "walker-walk", "horizon": 3},
        "optim_step": {"model": np.int64(7), "pi": 7},
        "running_scale": np.float32(1.5),
        "energy_stats": {"mean": 0.25, "std": 2.0},
        "loop": {"step": 100, "rng": np.random.default_rng(0).bit_generator.state},
    }


@pytest.mark.parametrize("suffix", ["", ".safetensors", ".json"])
def test_round_trip_keeps_values_dtypes_and_meta(tmp_path, suffix):
    rng = np.random.default_rng(0)
    arrays = _arrays(rng)
    save_checkpoint(tmp_path / "ckpt", arrays, _meta())
    loaded, meta = load_checkpoint(str(tmp_path / "ckpt") + suffix)
    assert sorted(loaded) == sorted(arrays)
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype, name
        np.testing.assert_array_equal(loaded[name], value)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["optim_step"] == {"model": 7, "pi": 7}
    assert meta["running_scale"] == 1.5
    assert meta["loop"]["rng"] == np.random.default_rng(0).bit_generator.state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.json", "ckpt.safetensors"]


def test_sidecar_lists_arrays_and_hash(tmp_path):
    save_checkpoint(tmp_path / "c", {"a": np.zeros((2, 3), np.float32)}, {"backend": "jax"})
    sidecar = json.loads((tmp_path / "c.json").read_text())
    assert sidecar["format_version"] == FORMAT_VERSION
    assert sidecar["arrays"] == [{"name": "a", "shape": [2, 3], "dtype": "float32"}]
    assert len(sidecar["safetensors"]["sha256"]) == 64
    assert sidecar["meta"] == {"backend": "jax"}


def test_overwrite_replaces_both_files(tmp_path):
    save_checkpoint(tmp_path / "c", {"a": np.zeros(3, np.float32)}, {"step": 1})
    save_checkpoint(tmp_path / "c", {"b": np.ones(4, np.int64)}, {"step": 2})
    arrays, meta = load_checkpoint(tmp_path / "c")
    assert list(arrays) == ["b"] and meta["step"] == 2


def test_latest_checkpoint_ignores_incomplete_and_temp_files(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for step in (5, 40, 300):
        save_checkpoint(checkpoint_path(tmp_path, step), {"x": np.full(2, step)}, {"step": step})
    ckpt_dir = tmp_path / "checkpoints"
    # an interrupted later write: arrays without JSON, and leftover temporary files
    (ckpt_dir / "step_1000.safetensors").write_bytes(b"partial")
    (ckpt_dir / ".step_2000.json.abc.tmp").write_text("{}")
    (ckpt_dir / ".step_2000.safetensors.abc.tmp").write_bytes(b"partial")
    latest = latest_checkpoint(tmp_path)
    assert latest == checkpoint_path(tmp_path, 300)
    arrays, meta = load_checkpoint(latest)
    assert meta["step"] == 300 and arrays["x"].tolist() == [300, 300]
    with pytest.raises(CheckpointError, match=r"step_1000\.json is missing.*incomplete"):
        load_checkpoint(ckpt_dir / "step_1000")


def test_no_temp_files_left_after_save(tmp_path):
    save_checkpoint(tmp_path / "sub" / "c", {"a": np.zeros(3)}, {})
    assert sorted(os.listdir(tmp_path / "sub")) == ["c.json", "c.safetensors"]


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"not found: .*nothing\.json"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "c", {"a": np.zeros(3)}, {})
    (tmp_path / "c.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"c\.safetensors are missing"):
        load_checkpoint(tmp_path / "c")


def test_truncated_or_corrupt_arrays_raise(tmp_path):
    save_checkpoint(tmp_path / "c", _arrays(np.random.default_rng(1)), _meta())
    tensors = tmp_path / "c.safetensors"
    data = tensors.read_bytes()
    tensors.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "c")
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    tensors.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "c")


def test_unparseable_arrays_with_matching_hash_raise(tmp_path):
    save_checkpoint(tmp_path / "c", {"a": np.zeros(3)}, {})
    garbage = b"\xff" * 64
    (tmp_path / "c.safetensors").write_bytes(garbage)
    sidecar = json.loads((tmp_path / "c.json").read_text())
    sidecar["safetensors"].update(sha256=hashlib.sha256(garbage).hexdigest(), bytes=64)
    (tmp_path / "c.json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="cannot be parsed"):
        load_checkpoint(tmp_path / "c")


def test_corrupt_json_and_unknown_version_raise(tmp_path):
    save_checkpoint(tmp_path / "c", {"a": np.zeros(3)}, {})
    text = (tmp_path / "c.json").read_text()
    (tmp_path / "c.json").write_text(text[:20])
    with pytest.raises(CheckpointError, match="invalid JSON"):
        load_checkpoint(tmp_path / "c")
    sidecar = json.loads(text)
    sidecar["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "c.json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match=f"unknown format version {FORMAT_VERSION + 1}"):
        load_checkpoint(tmp_path / "c")


def test_bad_meta_leaves_previous_checkpoint_intact(tmp_path):
    save_checkpoint(tmp_path / "c", {"a": np.zeros(3)}, {"step": 1})
    with pytest.raises(CheckpointError, match="not JSON-ready"):
        save_checkpoint(tmp_path / "c", {"a": np.ones(3)}, {"step": object()})
    arrays, meta = load_checkpoint(tmp_path / "c")
    assert meta["step"] == 1 and arrays["a"].sum() == 0


def test_check_arrays_lists_every_problem():
    expected = {"q.0.weight": (2, 134, 384), "pi.0.bias": (512,), "encoder.0.weight": (8, 4)}
    arrays = {
        "q.0.weight": np.zeros((5, 518, 512), np.float32),
        "encoder.0.weight": np.zeros((8, 4), np.float32),
        "score.0.weight": np.zeros(3),
        "F.0.bias": np.zeros(3),
    }
    with pytest.raises(CheckpointError) as info:
        check_arrays(expected, arrays)
    message = str(info.value)
    assert "checkpoint parameters do not match" in message
    assert "missing (1): pi.0.bias" in message
    assert "unexpected (2): F.0.bias, score.0.weight" in message
    assert "q.0.weight: checkpoint (5, 518, 512) vs agent (2, 134, 384)" in message
    assert "encoder.0.weight" not in message
    check_arrays(expected, {k: np.zeros(s) for k, s in expected.items()})  # exact match passes
    with pytest.raises(CheckpointError, match="optimizer state do not match"):
        check_arrays({"a": (1,)}, {}, what="optimizer state")


def test_prefix_helpers_round_trip():
    arrays = {"params/a": np.zeros(1), "params/b.c": np.ones(2), "optim/model/a/exp_avg": 0}
    params = split_prefix(arrays, "params/")
    assert sorted(params) == ["a", "b.c"]
    assert sorted(add_prefix(params, "params/")) == ["params/a", "params/b.c"]
    assert split_prefix(arrays, "agent/") == {}
