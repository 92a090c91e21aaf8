"""Incremental replay snapshots: every kept snapshot restores its replay exactly, each writes
only its new rows, prune keeps what kept snapshots need, lineages never mix, bad files are named.

Expected values come from a second replay fed the same episodes and sample calls."""

import json
import re

import numpy as np
import pytest
from mbdpo_core.buffer import ReplayBuffer
from mbdpo_core.checkpoint import save_checkpoint
from mbdpo_core.errors import CheckpointError
from mbdpo_core.replay_snapshots import (
    load_snapshot,
    prune_snapshots,
    save_snapshot,
    snapshot_steps,
)

A = 3
KINDS = {  # obs shape, obs dtype, multi-task
    "state": ((24,), np.float32, False),
    "rgb": ((9, 64, 64), np.uint8, True),
}


def _episodes(kind, seed, count, low=4, high=25):
    """`count` random episodes (row 0 NaN) of the given observation kind."""
    shape, dtype, tasks = KINDS[kind]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(low, high)) + 1
        if dtype == np.uint8:
            obs = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        else:
            obs = rng.normal(size=(n, *shape)).astype(np.float32)
        episode = {
            "obs": obs,
            "action": rng.uniform(-1, 1, (n, A)).astype(np.float32),
            "reward": rng.normal(size=n).astype(np.float32),
            "terminated": np.zeros(n, np.float32),
        }
        for name in ("action", "reward", "terminated"):
            episode[name][0] = np.nan
        if tasks:
            episode["task"] = int(rng.integers(0, 5))
        out.append(episode)
    return out


def _replay(kind, capacity, seed=0):
    shape, dtype, _ = KINDS[kind]
    return ReplayBuffer(capacity, shape, A, obs_dtype=dtype, seed=seed)


def _feed(replay, chunks):
    """Add each chunk's episodes, then draw one batch (so the sampler state moves too)."""
    for chunk in chunks:
        for episode in chunk:
            replay.add(episode)
        replay.sample(4, 2)


def _assert_same_future(restored, expected, extra):
    """Equal counts, equal next batches, and equal batches after adding `extra` to both."""
    assert (restored.written, len(restored), restored.num_episodes) == (
        expected.written,
        len(expected),
        expected.num_episodes,
    )
    for episode in [None, *extra]:
        if episode is not None:
            restored.add(episode)
            expected.add(episode)
        a, b = restored.sample(64, 3), expected.sample(64, 3)
        for name in ("obs", "action", "reward", "terminated", "task"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def _segment_files(directory):
    return sorted(p.name for p in (directory / "replay").iterdir())


def _ranges(directory):
    """Row ranges [first, end) of the segments present, parsed from their file names."""
    names = (re.match(r"rows_(\d+)_(\d+)_", n) for n in _segment_files(directory))
    return sorted({(int(m[1]), int(m[2])) for m in names})


def _history(tmp_path, kind, capacity, snapshots, seed=1):
    """Snapshots 0..snapshots-1 of one replay, two episodes apart; returns the chunks."""
    chunks = [_episodes(kind, seed * 1000 + k, 2) for k in range(snapshots)]
    replay = _replay(kind, capacity)
    for step, chunk in enumerate(chunks):
        _feed(replay, [chunk])
        save_snapshot(replay, tmp_path, step)
    return replay, chunks


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_snapshot_restores_the_replay_of_its_step(tmp_path, kind):
    capacity = 70
    replay, chunks = _history(tmp_path, kind, capacity, snapshots=14)
    assert replay.written > 4 * capacity  # the ring wrapped several times
    assert snapshot_steps(tmp_path) == list(range(14))
    extra = _episodes(kind, 99, 3)
    for step in range(14):
        restored = _replay(kind, capacity, seed=123)
        load_snapshot(restored, tmp_path, step)
        expected = _replay(kind, capacity)
        _feed(expected, chunks[: step + 1])
        _assert_same_future(restored, expected, extra)


def test_each_snapshot_writes_about_its_new_rows_only(tmp_path):
    kind, capacity = "rgb", 600
    shape = KINDS[kind][0]
    row_bytes = (
        int(np.prod(shape)) + 4 * A + 4 + 4 + 8 + 4
    )  # obs, action, reward, term., task, left
    replay = _replay(kind, capacity)
    sizes = {}
    for step in range(12):
        before = {p: p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
        chunk = _episodes(kind, step, 4, low=15, high=40)
        _feed(replay, [chunk])
        save_snapshot(replay, tmp_path, step)
        after = {p: p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
        assert all(after[p] == size for p, size in before.items())  # nothing rewritten
        written = sum(size for p, size in after.items() if p not in before)
        new_rows = sum(len(e["obs"]) for e in chunk)
        sizes[step] = (written, new_rows)
        assert new_rows * row_bytes <= written <= new_rows * row_bytes + 12_000
    assert replay.written > 2 * capacity
    ring_bytes = capacity * row_bytes
    assert max(w for w, _ in sizes.values()) < ring_bytes / 2  # a full copy would be the ring


def test_prune_keeps_what_kept_snapshots_need_and_the_replay_keeps_saving(tmp_path):
    kind, capacity = "state", 60
    replay, chunks = _history(tmp_path, kind, capacity, snapshots=12)
    written = {}
    for step in range(12):
        probe = _replay(kind, capacity)
        load_snapshot(probe, tmp_path, step)
        written[step] = probe.written
    keep = [4, 11]
    prune_snapshots(tmp_path, keep)
    assert snapshot_steps(tmp_path) == keep
    assert {p.name for p in tmp_path.glob("replay_step_*")} == {
        f"replay_step_{s}.{suffix}" for s in keep for suffix in ("json", "safetensors")
    }
    windows = [(max(0, written[s] - capacity), written[s]) for s in keep]
    for first, end in _ranges(tmp_path):  # every segment left overlaps a kept snapshot's rows
        assert any(first < hi and end > lo for lo, hi in windows), (first, end)
    for lo, hi in windows:  # and the kept rows are all there
        covered = set()
        for first, end in _ranges(tmp_path):
            covered.update(range(max(first, lo), min(end, hi)))
        assert covered == set(range(lo, hi))
    for step in keep:
        restored, expected = _replay(kind, capacity, seed=5), _replay(kind, capacity)
        load_snapshot(restored, tmp_path, step)
        _feed(expected, chunks[: step + 1])
        _assert_same_future(restored, expected, [])

    prune_snapshots(tmp_path, [4])  # drops the segments the live replay last wrote
    more = _episodes(kind, 77, 2)
    _feed(replay, [more])
    save_snapshot(replay, tmp_path, 12)  # writes the pruned rows again
    restored, expected = _replay(kind, capacity, seed=5), _replay(kind, capacity)
    load_snapshot(restored, tmp_path, 12)
    _feed(expected, [*chunks, more])
    _assert_same_future(restored, expected, [])


def test_resuming_an_older_snapshot_starts_a_separate_lineage(tmp_path):
    kind, capacity = "state", 60
    _, chunks = _history(tmp_path, kind, capacity, snapshots=8)
    abandoned = set(_segment_files(tmp_path))
    resumed = _replay(kind, capacity, seed=42)
    load_snapshot(resumed, tmp_path, 3)
    # the same lengths, other rewards: the fork writes rows with the numbers of the abandoned ones
    fork = [[{**e, "reward": e["reward"] + 1} for e in chunk] for chunk in chunks[4:7]]
    for step, chunk in zip((4, 5, 9), fork, strict=True):  # 4 and 5 overwrite the old indexes
        _feed(resumed, [chunk])
        save_snapshot(resumed, tmp_path, step)
    stems = {n.rsplit(".", 1)[0] for n in _segment_files(tmp_path)}
    assert len(stems) > len({n.rsplit("_", 1)[0] for n in stems})  # two contents for one range
    for step, history in ((5, [*chunks[:4], *fork[:2]]), (9, [*chunks[:4], *fork]), (7, chunks)):
        restored, expected = _replay(kind, capacity, seed=1), _replay(kind, capacity)
        load_snapshot(restored, tmp_path, step)  # both lineages restore while both are kept
        _feed(expected, history)
        _assert_same_future(restored, expected, [])

    prune_snapshots(tmp_path, [3, 4, 5, 9])  # the abandoned future (6, 7) goes
    for step, history in ((3, chunks[:4]), (9, [*chunks[:4], *fork])):
        restored, expected = _replay(kind, capacity, seed=1), _replay(kind, capacity)
        load_snapshot(restored, tmp_path, step)
        _feed(expected, history)
        _assert_same_future(restored, expected, [])
    left = set(_segment_files(tmp_path))
    assert abandoned - left and not (left & abandoned) - _needed(tmp_path, [3, 4, 5, 9])


def test_a_replay_saved_into_another_directory_writes_all_its_rows_there(tmp_path):
    replay, chunks = _history(tmp_path / "a", "state", 60, snapshots=5)
    save_snapshot(replay, tmp_path / "b", 7)
    restored, expected = _replay("state", 60, seed=4), _replay("state", 60)
    load_snapshot(restored, tmp_path / "b", 7)
    _feed(expected, chunks)
    _assert_same_future(restored, expected, [])
    # equal rows are stored once: a twin replay writes only its index, rewrites nothing
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()}
    twin = _replay("state", 60)
    _feed(twin, chunks)
    save_snapshot(twin, tmp_path / "b", 8)
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert {p.name for p in set(after) - set(before)} == {
        "replay_step_8.json",
        "replay_step_8.safetensors",
    }
    assert all(after[p] == mtime for p, mtime in before.items())


def _needed(directory, steps):
    """File names of the segments the given indexes list (read from their JSON)."""
    names = set()
    for step in steps:
        meta = json.loads((directory / f"replay_step_{step}.json").read_text())["meta"]
        for name, *_ in meta["segments"]:
            names.update({f"{name}.json", f"{name}.safetensors"})
    return names


def _filled_replay(kind="state", capacity=60):
    replay = _replay(kind, capacity, seed=8)
    _feed(replay, [_episodes(kind, 3, 3)])
    return replay


def _state(replay):
    arrays, meta = replay.state_dict()
    return {k: v.copy() for k, v in arrays.items()}, meta


def _assert_unchanged(replay, state):
    arrays, meta = replay.state_dict()
    assert meta == state[1]
    for name, value in arrays.items():
        np.testing.assert_array_equal(value, state[0][name])


def test_missing_or_corrupt_files_are_named_and_the_replay_is_unchanged(tmp_path):
    kind, capacity = "state", 60
    _history(tmp_path, kind, capacity, snapshots=6)
    target = _filled_replay()
    state = _state(target)
    with pytest.raises(CheckpointError, match=r"replay_step_17\.json does not exist"):
        load_snapshot(target, tmp_path, 17)

    segment = sorted(_needed(tmp_path, [5]))[-1]  # a .safetensors of the newest rows
    data = (tmp_path / "replay" / segment).read_bytes()
    (tmp_path / "replay" / segment).write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match=re.escape(segment)):
        load_snapshot(target, tmp_path, 5)
    _assert_unchanged(target, state)

    (tmp_path / "replay" / segment).unlink()
    with pytest.raises(CheckpointError, match=re.escape(segment)):
        load_snapshot(target, tmp_path, 5)
    (tmp_path / "replay" / segment.replace(".safetensors", ".json")).unlink()
    with pytest.raises(CheckpointError, match=re.escape(segment.replace(".safetensors", ".json"))):
        load_snapshot(target, tmp_path, 5)
    _assert_unchanged(target, state)

    index = tmp_path / "replay_step_4.json"
    index.write_text(index.read_text()[:-20])
    with pytest.raises(CheckpointError, match=r"replay_step_4\.json is corrupt"):
        load_snapshot(target, tmp_path, 4)
    _assert_unchanged(target, state)

    with pytest.raises(CheckpointError, match="does not match|but this replay has"):
        load_snapshot(_replay(kind, capacity + 1), tmp_path, 3)


def _nan_after_a_first_row(arrays, last_rows):
    stored = np.flatnonzero(arrays["left"] >= 0)
    later = stored[arrays["left"][stored - 1] == arrays["left"][stored] + 1]  # not a first row
    arrays["reward"][later[0]] = np.nan


def _broken_count(arrays, last_rows):
    arrays["left"][np.flatnonzero(arrays["left"] > 1)[0]] += 1


def _newest_episode_too_long(arrays, last_rows):
    arrays["left"][last_rows] += 1


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_nan_after_a_first_row, "holds a non-finite reward in row"),
        (_broken_count, "breaks the count of rows left in its episode"),
        (_newest_episode_too_long, "ends inside an episode"),
    ],
)
def test_a_snapshot_with_impossible_rows_is_refused(tmp_path, corrupt, message):
    """Rows a replay can never hold (as an older writer without the NaN guard could save)."""
    source = _filled_replay()
    arrays, meta = _state(source)
    newest = len(_episodes("state", 3, 3)[-1]["obs"])
    corrupt(arrays, (meta["write"] - 1 - np.arange(newest)) % meta["capacity"])
    poisoned = _replay("state", 60)
    poisoned.load_state_dict(arrays, meta)  # does not check the rows; the snapshot load does
    save_snapshot(poisoned, tmp_path, 0)
    target = _filled_replay()
    state = _state(target)
    with pytest.raises(CheckpointError, match=message) as raised:
        load_snapshot(target, tmp_path, 0)
    assert re.search(r"rows_\d+_\d+_[0-9a-f]{16}\.json|replay_step_0\.json", str(raised.value))
    _assert_unchanged(target, state)


def test_an_empty_replay_and_an_incomplete_index(tmp_path):
    save_snapshot(_replay("state", 60), tmp_path, 0)
    restored = _replay("state", 60, seed=3)
    load_snapshot(restored, tmp_path, 0)
    assert (restored.written, len(restored)) == (0, 0)
    save_checkpoint(tmp_path / "replay_step_5", {}, {"format": "x"})
    (tmp_path / "replay_step_5.json").unlink()  # an index whose write was interrupted
    assert snapshot_steps(tmp_path) == [0]
    prune_snapshots(tmp_path, [0])
    assert sorted(p.name for p in tmp_path.glob("replay_step_*")) == [
        "replay_step_0.json",
        "replay_step_0.safetensors",
    ]
