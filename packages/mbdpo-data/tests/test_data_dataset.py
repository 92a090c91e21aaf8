"""Reading a converted dataset: OfflineDataset's slices of one episode, uniform starts, sampler.

Every row of the generated source arrays carries its own id in obs[..., 0] (chunk, episode,
row), so each sampled slice is located in the source arrays and compared with them there.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from mbdpo_core.errors import ConfigError, DataFormatError
from mbdpo_data import dataset as dataset_module
from mbdpo_data.convert import convert
from mbdpo_data.dataset import OfflineDataset
from mbdpo_data.sampler import DatasetSampler
from published_chunks import episodes_arrays, write_chunk

CHUNK_ID, EPISODE_ID = 100_000, 1000  # obs[..., 0] = chunk * 100000 + episode * 1000 + row


def tagged_arrays(layout, chunk: int, episodes: int, terminated: bool) -> dict[str, np.ndarray]:
    """Random episodes whose obs[..., 0] is the row's id; terminated flags are random 0/1."""
    arrays = episodes_arrays(layout, episodes, seed=50 + chunk, terminated=terminated)
    rows = np.arange(layout.episode_rows)
    ids = chunk * CHUNK_ID + np.arange(episodes)[:, None] * EPISODE_ID + rows
    assert ids.max(initial=0) < 2**24  # exact in float32
    arrays["obs"][..., 0] = ids
    if terminated:
        rng = np.random.default_rng(chunk)
        arrays["terminated"][:, 1:] = rng.integers(0, 2, (episodes, layout.episode_rows - 1))
    return arrays


def make_dataset(tmp_path, layout, sizes: list[int], terminated: bool = False):
    """Convert chunks of `sizes` episodes; return (dst, chunk index -> source arrays)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    sources = {}
    for chunk, episodes in enumerate(sizes):
        sources[chunk] = tagged_arrays(layout, chunk, episodes, terminated)
        write_chunk(src / f"chunk_{chunk}.pt", sources[chunk])
    convert(src, dst, progress=False, log=lambda line: None)
    return dst, sources


def locate(row_id: float) -> tuple[int, int, int]:
    """(chunk, episode, row) of a row id."""
    row_id = int(row_id)
    return row_id // CHUNK_ID, row_id % CHUNK_ID // EPISODE_ID, row_id % EPISODE_ID


def slice_places(batch, sources, horizon: int) -> list[tuple[int, int, int]]:
    """(chunk, episode, start) of every slice, after checking it equals the source rows."""
    places = []
    T = sources[0]["obs"].shape[1]
    for b in range(batch.task.shape[0]):
        chunk, episode, start = locate(batch.obs[0, b, 0])
        source = sources[chunk]
        assert start + horizon < T, "the slice crosses the end of its episode"
        rows = slice(start, start + horizon + 1)
        after = slice(start + 1, start + horizon + 1)
        assert batch.obs[:, b].tobytes() == source["obs"][episode, rows].tobytes()
        assert batch.action[:, b].tobytes() == source["action"][episode, after].tobytes()
        assert batch.reward[:, b, 0].tobytes() == source["reward"][episode, after].tobytes()
        expected = source.get("terminated", np.zeros_like(source["reward"]))[episode, after]
        assert batch.terminated[:, b, 0].tobytes() == expected.astype(np.float32).tobytes()
        assert batch.task[b] == source["task"][episode, 0]
        places.append((chunk, episode, start))
    return places


def batches_equal(a, b) -> bool:
    fields = ("obs", "action", "reward", "terminated", "task")
    return all(getattr(a, f).tobytes() == getattr(b, f).tobytes() for f in fields)


# ---------------------------------------------------------------------------------------------
# OfflineDataset


@pytest.mark.parametrize("terminated", [False, True], ids=["no-terminated", "terminated"])
def test_batches_have_the_documented_shapes_and_dtypes(tmp_path, mt80, terminated):
    dst, _ = make_dataset(tmp_path, mt80, [3, 2], terminated)
    H, B = 5, 17

    batch = OfflineDataset(dst).sample(B, H, np.random.default_rng(0))

    assert (batch.obs.shape, batch.obs.dtype) == ((H + 1, B, 39), np.float32)
    assert (batch.action.shape, batch.action.dtype) == ((H, B, 6), np.float32)
    assert (batch.reward.shape, batch.reward.dtype) == ((H, B, 1), np.float32)
    assert (batch.terminated.shape, batch.terminated.dtype) == ((H, B, 1), np.float32)
    assert (batch.task.shape, batch.task.dtype) == ((B,), np.int64)


@pytest.mark.parametrize("terminated", [False, True], ids=["no-terminated", "terminated"])
def test_every_slice_is_rows_of_one_source_episode(tmp_path, mt80, terminated):
    dst, sources = make_dataset(tmp_path, mt80, [4, 3, 2], terminated)
    dataset = OfflineDataset(dst)

    for horizon in (1, 3, 50, 100):
        batch = dataset.sample(64, horizon, np.random.default_rng(horizon))
        assert not np.isnan(batch.action).any() and not np.isnan(batch.reward).any()
        places = slice_places(batch, sources, horizon)
        assert len({c for c, _, _ in places}) > 1 or horizon == 100


def test_an_mt30_dataset_with_int32_task_and_bool_terminated_gives_the_batch_dtypes(tmp_path, mt30):
    arrays = tagged_arrays(mt30, 0, 2, terminated=False)
    arrays["task"] = arrays["task"].astype(np.int32)
    arrays["terminated"] = np.random.default_rng(2).integers(0, 2, (2, 501)).astype(bool)
    write_chunk(tmp_path / "src" / "chunk_0.pt", arrays)
    convert(tmp_path / "src", tmp_path / "dst", progress=False, log=lambda line: None)

    batch = OfflineDataset(tmp_path / "dst").sample(8, 3, np.random.default_rng(1))

    assert batch.obs.shape == (4, 8, 24) and batch.action.shape == (3, 8, 6)
    assert batch.task.dtype == np.int64 and batch.terminated.dtype == np.float32
    assert batch.terminated.any()
    slice_places(batch, {0: arrays}, 3)


def test_the_dataset_reports_its_episodes_transitions_and_task_range(tmp_path, mt80):
    dst, sources = make_dataset(tmp_path, mt80, [4, 3])
    tasks = np.concatenate([s["task"].ravel() for s in sources.values()])

    dataset = OfflineDataset(dst)

    assert dataset.layout.name == "mt80"
    assert dataset.episodes == 7
    assert dataset.transitions == 7 * 100
    assert dataset.task_range == [int(tasks.min()), int(tasks.max())]


def test_starts_are_uniform_over_every_valid_start_of_every_episode(tmp_path, mt80):
    dst, sources = make_dataset(tmp_path, mt80, [2, 3])  # chunks of different sizes
    H = 5
    starts = mt80.episode_rows - H  # 96 per episode
    cells = [
        (c, e, s) for c in (0, 1) for e in range(len(sources[c]["obs"])) for s in range(starts)
    ]
    draws = 100 * len(cells)

    batch = OfflineDataset(dst).sample(draws, H, np.random.default_rng(7))

    counts = dict.fromkeys(cells, 0)
    for place in slice_places(batch, sources, H):
        counts[place] += 1  # a KeyError would be a start outside the valid ones
    observed = np.array(list(counts.values()))
    assert observed.min() > 0  # both ends of the valid range are drawn
    chi2 = ((observed - 100) ** 2 / 100).sum()
    dof = len(cells) - 1
    assert abs(chi2 - dof) < 6 * np.sqrt(2 * dof), chi2  # 6 standard deviations
    per_chunk = [observed[: 2 * starts].sum(), observed[2 * starts :].sum()]
    assert abs(per_chunk[0] / draws - 2 / 5) < 0.02  # by episodes, not by chunks


def test_a_horizon_of_t_minus_1_takes_whole_episodes_and_t_is_refused(tmp_path, mt80):
    dst, sources = make_dataset(tmp_path, mt80, [2, 1])
    dataset = OfflineDataset(dst)

    batch = dataset.sample(10, 100, np.random.default_rng(3))
    assert {start for _, _, start in slice_places(batch, sources, 100)} == {0}

    with pytest.raises(ConfigError, match="horizon=101"):
        dataset.sample(10, 101, np.random.default_rng(3))


def test_a_chunk_of_no_episodes_is_converted_and_never_sampled(tmp_path, mt80):
    src, dst = tmp_path / "src", tmp_path / "dst"
    sources = {0: tagged_arrays(mt80, 0, 2, False), 2: tagged_arrays(mt80, 2, 3, False)}
    write_chunk(src / "chunk_0.pt", sources[0])
    empty = {name: a[:0] for name, a in tagged_arrays(mt80, 1, 1, False).items()}
    write_chunk(src / "chunk_1.pt", empty)  # strides as torch.zeros(0, T, 39) has them
    write_chunk(src / "chunk_2.pt", sources[2])
    convert(src, dst, progress=False, log=lambda line: None)
    lines = []
    convert(src, dst, progress=False, log=lines.append)  # an empty output verifies too

    dataset = OfflineDataset(dst)
    batch = dataset.sample(200, 4, np.random.default_rng(4))

    assert all("skipped" in line for line in lines) and len(lines) == 3
    assert dataset.episodes == 5
    places = slice_places(batch, sources, 4)  # chunk 1 has no rows to locate
    assert {c for c, _, _ in places} == {0, 2}


def test_the_arrays_are_memory_mapped_not_loaded(tmp_path, mt80, monkeypatch):
    dst, sources = make_dataset(tmp_path, mt80, [3, 2])
    opened = []

    def recording_open_npz(path):
        arrays = real_open_npz(path)
        opened.append(arrays)
        return arrays

    def no_np_load(*args, **kwargs):
        raise AssertionError("np.load reads whole arrays")

    real_open_npz = dataset_module.open_npz
    monkeypatch.setattr(dataset_module, "open_npz", recording_open_npz)
    monkeypatch.setattr(np, "load", no_np_load)

    dataset = OfflineDataset(dst)
    batch = dataset.sample(32, 4, np.random.default_rng(5))

    assert len(opened) == 2
    assert all(isinstance(a, np.memmap) and a.mode == "r" for d in opened for a in d.values())
    slice_places(batch, sources, 4)


def test_a_folder_without_a_manifest_is_refused_with_a_hint_to_convert(tmp_path):
    (tmp_path / "empty").mkdir()

    for root in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(ConfigError, match="convert") as err:
            OfflineDataset(root)
        assert str(root) in str(err.value)


def test_an_unfinished_conversion_is_refused(tmp_path, mt80):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_chunk(src / "chunk_0.pt", tagged_arrays(mt80, 0, 2, False))
    bad = tagged_arrays(mt80, 1, 2, False)
    bad["obs"][1, 3, 4] = np.nan
    write_chunk(src / "chunk_1.pt", bad)
    with pytest.raises(DataFormatError):
        convert(src, dst, progress=False, log=lambda line: None)
    assert json.loads((dst / "manifest.json").read_text())["complete"] is False

    with pytest.raises(DataFormatError, match="rerun") as err:
        OfflineDataset(dst)

    assert str(dst) in str(err.value)


# ---------------------------------------------------------------------------------------------
# DatasetSampler


@pytest.fixture
def small_dataset(tmp_path, mt80):
    dst, sources = make_dataset(tmp_path, mt80, [3, 2], terminated=True)
    return OfflineDataset(dst), sources


def draw(sampler: DatasetSampler, shapes: list[tuple[int, int]]) -> list:
    try:
        return [sampler.sample(b, h) for b, h in shapes]
    finally:
        sampler.close()


def test_prefetching_gives_the_same_sequence_as_drawing_on_call(small_dataset):
    dataset, sources = small_dataset
    shapes = [(16, 4)] * 6

    plain = draw(DatasetSampler(dataset, seed=3, prefetch=0), shapes)
    ahead = draw(DatasetSampler(dataset, seed=3, prefetch=3), shapes)

    assert all(batches_equal(a, b) for a, b in zip(plain, ahead, strict=True))
    assert not batches_equal(plain[0], plain[1])
    for batch in plain:
        slice_places(batch, sources, 4)


def test_prefetching_follows_a_change_of_batch_size_or_horizon(small_dataset):
    dataset, _ = small_dataset
    shapes = [(16, 4), (16, 4), (8, 4), (8, 2), (16, 4)]

    plain = draw(DatasetSampler(dataset, seed=4, prefetch=0), shapes)
    ahead = draw(DatasetSampler(dataset, seed=4, prefetch=2), shapes)

    for a, b, (size, horizon) in zip(plain, ahead, shapes, strict=True):
        assert b.task.shape == (size,) and b.action.shape[0] == horizon
        assert batches_equal(a, b)


def test_a_restored_sampler_continues_the_same_sequence(small_dataset):
    dataset, _ = small_dataset
    k, more = 3, 4
    first = DatasetSampler(dataset, seed=5, prefetch=2)
    draw_first = [first.sample(16, 4) for _ in range(k)]
    state = first.state_dict()
    expected = draw(first, [(16, 4)] * more)

    for prefetch in (0, 2):
        restored = DatasetSampler(dataset, seed=99, prefetch=prefetch)
        restored.sample(16, 4)  # it had drawn something else before
        restored.load_state_dict(*state)
        got = draw(restored, [(16, 4)] * more)
        assert all(batches_equal(a, b) for a, b in zip(expected, got, strict=True)), prefetch
    assert not any(batches_equal(a, expected[0]) for a in draw_first)


def test_another_seed_gives_another_sequence(small_dataset):
    dataset, _ = small_dataset

    a = draw(DatasetSampler(dataset, seed=1, prefetch=0), [(16, 4)] * 2)
    b = draw(DatasetSampler(dataset, seed=2, prefetch=0), [(16, 4)] * 2)

    assert not batches_equal(a[0], b[0]) and not batches_equal(a[1], b[1])


def test_an_error_while_prefetching_is_raised_by_sample(small_dataset):
    dataset, _ = small_dataset
    sampler = DatasetSampler(dataset, seed=1, prefetch=2)

    try:
        with pytest.raises(ConfigError, match="horizon"):
            sampler.sample(4, 101)
    finally:
        sampler.close()


def test_sample_raises_again_after_an_error_while_prefetching(small_dataset):
    dataset, _ = small_dataset
    sampler = DatasetSampler(dataset, seed=1, prefetch=2)
    raised = []

    def sample_twice():
        for _ in range(2):
            try:
                sampler.sample(4, 101)
            except ConfigError as err:
                raised.append(err)

    caller = threading.Thread(target=sample_twice, daemon=True)
    caller.start()
    caller.join(timeout=5)
    sampler.close()

    assert not caller.is_alive(), "the second sample() waits forever for a batch"
    assert len(raised) == 2
