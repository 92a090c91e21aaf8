"""Replay buffer: slices stay inside one episode, shapes, eviction, exact resume."""

import json

import numpy as np
import pytest
from mbdpo_core.batch import Batch
from mbdpo_core.buffer import EpisodeRecorder, ReplayBuffer
from mbdpo_core.errors import CheckpointError, ConfigError, DataFormatError, ShapeError

A = 2


def _episode(ep_id, steps, task=None, terminal=False):
    """Rows encode (episode id, row): obs = [id, row, ...], action/reward = id * 1000 + row."""
    rows = np.arange(steps + 1)
    obs = np.stack([np.full(steps + 1, ep_id), rows, -rows], axis=1).astype(np.float32)
    code = (ep_id * 1000 + rows).astype(np.float32)
    action = np.stack([code, -code], axis=1)
    reward = code.copy()
    terminated = np.zeros(steps + 1, np.float32)
    terminated[-1] = float(terminal)
    action[0], reward[0], terminated[0] = np.nan, np.nan, np.nan
    episode = {"obs": obs, "action": action, "reward": reward, "terminated": terminated}
    return {**episode, "task": task} if task is not None else episode


def _check_slices(batch, lengths):
    """Every slice is consecutive rows of one stored episode; actions/rewards from rows 1..H."""
    ep, row = batch.obs[..., 0], batch.obs[..., 1]
    assert (ep == ep[0]).all(), "a slice crosses episodes"
    assert (np.diff(row, axis=0) == 1).all(), "a slice is not consecutive"
    for b in range(batch.batch_size):
        assert row[-1, b] <= lengths[int(ep[0, b])]
    code = ep[1:] * 1000 + row[1:]
    np.testing.assert_array_equal(batch.action[..., 0], code)
    np.testing.assert_array_equal(batch.reward[..., 0], code)
    assert np.isfinite(batch.action).all() and np.isfinite(batch.reward).all()
    assert np.isfinite(batch.terminated).all()


def test_slices_never_cross_episodes_and_have_batch_shapes():
    lengths = {0: 7, 1: 3, 2: 2, 3: 12, 4: 4}  # steps; episode 2 (3 rows) is too short for H=3
    buffer = ReplayBuffer(1000, (3,), A, seed=0)
    for ep_id, steps in lengths.items():
        buffer.add(_episode(ep_id, steps))
    assert len(buffer) == sum(lengths.values()) and buffer.num_episodes == 5
    batch = buffer.sample(512, 3)
    assert isinstance(batch, Batch)
    assert batch.obs.shape == (4, 512, 3) and batch.obs.dtype == np.float32
    assert batch.action.shape == (3, 512, A) and batch.action.dtype == np.float32
    assert batch.reward.shape == (3, 512, 1) and batch.terminated.shape == (3, 512, 1)
    assert batch.task is None
    _check_slices(batch, lengths)
    assert 2 not in set(batch.obs[0, :, 0].tolist())


def test_sampling_is_uniform_over_valid_starts():
    buffer = ReplayBuffer(1000, (3,), A, seed=1)
    buffer.add(_episode(0, 4))  # 5 rows, H=3: 2 valid starts
    buffer.add(_episode(1, 19))  # 20 rows: 17 valid starts
    batch = buffer.sample(19_000, 3)
    starts = batch.obs[0, :, 0] * 100 + batch.obs[0, :, 1]
    values, counts = np.unique(starts, return_counts=True)
    assert len(values) == 19
    np.testing.assert_allclose(counts / counts.sum(), 1 / 19, atol=0.004)


@pytest.mark.parametrize("wrap", [False, True])
def test_published_sampling_is_uniform_over_episodes_then_their_starts(wrap):
    """sampling="episodes": each episode with >= H+1 rows half the time here (two of them),
    then each of its valid starts alike; the same when the ring has wrapped around."""
    buffer = ReplayBuffer(30 if wrap else 1000, (3,), A, seed=1, sampling="episodes")
    if wrap:  # 24 rows, then these two episodes (5 + 20 rows) evict it and wrap the ring
        buffer.add(_episode(7, 23))
    buffer.add(_episode(0, 4))  # 5 rows, H=3: 2 valid starts
    buffer.add(_episode(1, 19))  # 20 rows: 17 valid starts
    batch = buffer.sample(40_000, 3)
    _check_slices(batch, {0: 4, 1: 19})
    episode, row = batch.obs[0, :, 0], batch.obs[0, :, 1]
    assert set(episode.tolist()) == {0, 1}
    np.testing.assert_allclose(np.mean(episode == 0), 1 / 2, atol=0.01)
    for ep, starts in ((0, 2), (1, 17)):
        values, counts = np.unique(row[episode == ep], return_counts=True)
        np.testing.assert_array_equal(values, np.arange(starts))
        np.testing.assert_allclose(counts / counts.sum(), 1 / starts, atol=0.01)


def test_an_unknown_sampling_is_refused():
    with pytest.raises(ConfigError, match="Invalid sampling='uniform'. Valid choices: rows"):
        ReplayBuffer(100, (3,), A, sampling="uniform")


def test_task_ids_come_from_the_episode():
    buffer = ReplayBuffer(200, (3,), A, seed=2)
    for ep_id in range(4):
        buffer.add(_episode(ep_id, 6, task=10 + ep_id))
    batch = buffer.sample(64, 2)
    assert batch.task.shape == (64,) and batch.task.dtype == np.int64
    np.testing.assert_array_equal(batch.task, batch.obs[0, :, 0] + 10)
    with pytest.raises(DataFormatError, match="multi-task"):
        buffer.add(_episode(9, 6))


def test_capacity_evicts_oldest_whole_episodes():
    buffer = ReplayBuffer(20, (3,), A, seed=3)
    lengths = {0: 5, 1: 5, 2: 5, 3: 9}  # rows 6 + 6 + 6 = 18; episode 3 (10 rows) wraps the ring
    for ep_id, steps in lengths.items():
        buffer.add(_episode(ep_id, steps))
        if ep_id == 2:
            assert (len(buffer), buffer.num_episodes) == (15, 3)
    # 10 new rows overwrite all of episode 0 and 2 rows of episode 1, so both are dropped
    assert (len(buffer), buffer.num_episodes) == (5 + 9, 2)
    batch = buffer.sample(2000, 2)
    assert set(batch.obs[0, :, 0].tolist()) == {2.0, 3.0}
    _check_slices(batch, lengths)
    lengths[4] = 5
    buffer.add(_episode(4, 5))  # reuses the 4-row gap left by episode 1, then drops episode 2
    assert (len(buffer), buffer.num_episodes) == (9 + 5, 2)
    batch = buffer.sample(2000, 2)
    assert set(batch.obs[0, :, 0].tolist()) == {3.0, 4.0}
    _check_slices(batch, lengths)
    buffer.add(_episode(5, 3))  # 4 rows fit in the gap left by episode 2: nothing dropped
    assert (len(buffer), buffer.num_episodes) == (9 + 5 + 3, 3)


def test_long_run_of_evictions_keeps_counts_and_slices_valid():
    rng = np.random.default_rng(4)
    buffer = ReplayBuffer(100, (3,), A, seed=4)
    lengths, stored = {}, []
    for ep_id in range(200):
        lengths[ep_id] = int(rng.integers(1, 30))
        buffer.add(_episode(ep_id, lengths[ep_id]))
        stored.append(ep_id)
        while sum(lengths[e] + 1 for e in stored) > 100:
            stored.pop(0)
        assert buffer.num_episodes == len(stored)
        assert len(buffer) == sum(lengths[e] for e in stored)
        if any(lengths[e] >= 3 for e in stored):
            batch = buffer.sample(64, 3)
            _check_slices(batch, lengths)
            assert set(batch.obs[0, :, 0].tolist()) <= set(stored)


def test_state_round_trip_continues_identically():
    buffer = ReplayBuffer(50, (3,), A, seed=5)
    for ep_id in range(9):
        buffer.add(_episode(ep_id, 5 + ep_id % 3, task=ep_id % 2))
    buffer.sample(8, 3)
    arrays, meta = buffer.state_dict()
    meta = json.loads(json.dumps(meta))  # must survive the JSON sidecar
    restored = ReplayBuffer(50, (3,), A, seed=123)
    restored.load_state_dict(arrays, meta)
    assert (len(restored), restored.num_episodes) == (len(buffer), buffer.num_episodes)
    for ep_id in (9, 10):  # later adds and samples are identical too
        for buf in (buffer, restored):
            buf.add(_episode(ep_id, 6, task=1))
        a, b = buffer.sample(32, 3), restored.sample(32, 3)
        for name in ("obs", "action", "reward", "terminated", "task"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert restored.written == buffer.written == sum(5 + e % 3 + 1 for e in range(9)) + 14
    with pytest.raises(CheckpointError, match="does not match"):
        ReplayBuffer(60, (3,), A).load_state_dict(arrays, meta)
    with pytest.raises(CheckpointError, match="written=None"):
        ReplayBuffer(50, (3,), A).load_state_dict(
            arrays, {k: v for k, v in meta.items() if k != "written"}
        )


def test_recorder_builds_a_storable_episode():
    recorder = EpisodeRecorder(np.zeros(3, np.float32), task=4)
    assert len(recorder) == 0
    for t in range(1, 6):
        recorder.add(np.full(A, t / 10), t, t == 5, np.full(3, t), {"success": t / 5})
    episode = recorder.finish()
    assert len(recorder) == 5 and recorder.success == 1.0
    assert episode["obs"].shape == (6, 3) and episode["action"].shape == (6, A)
    assert np.isnan(episode["action"][0]).all() and np.isnan(episode["reward"][0])
    np.testing.assert_array_equal(episode["reward"][1:], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(episode["terminated"][1:], [0, 0, 0, 0, 1])
    assert episode["task"] == 4
    buffer = ReplayBuffer(20, (3,), A, seed=6)
    buffer.add(episode)
    batch = buffer.sample(4, 5)
    np.testing.assert_allclose(batch.action[:, 0, 0], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)
    np.testing.assert_array_equal(batch.terminated[:, 0, 0], [0, 0, 0, 0, 1])


def test_uint8_observations_and_bad_input():
    buffer = ReplayBuffer(30, (2, 2, 3), A, obs_dtype=np.uint8, seed=7)
    obs = np.random.default_rng(0).integers(0, 256, (5, 2, 2, 3)).astype(np.uint8)
    episode = {"obs": obs, "action": np.zeros((5, A)), "reward": np.zeros(5)}
    buffer.add(episode)  # terminated omitted: zeros
    batch = buffer.sample(3, 4)
    assert batch.obs.dtype == np.uint8 and batch.obs.shape == (5, 3, 2, 2, 3)
    np.testing.assert_array_equal(batch.obs[:, 0], obs)
    with pytest.raises(DataFormatError, match="float32 cannot be stored as uint8"):
        buffer.add({**episode, "obs": obs.astype(np.float32)})
    with pytest.raises(ShapeError, match=r"action has shape \(5, 3\), expected \(5, 2\)"):
        buffer.add({**episode, "action": np.zeros((5, 3))})
    with pytest.raises(ConfigError, match="does not fit"):
        buffer.add(
            {
                "obs": np.zeros((31, 2, 2, 3), np.uint8),
                "action": np.zeros((31, A)),
                "reward": np.zeros(31),
            }
        )
    with pytest.raises(ConfigError, match="horizon \\+ 1 = 6"):
        buffer.sample(3, 5)


def test_storage_grows_on_demand_so_a_large_capacity_costs_nothing_up_front():
    buffer = ReplayBuffer(10**9, (9, 64, 64), 1, obs_dtype=np.uint8, seed=0)  # 37 TB if eager
    n = 501
    buffer.add(
        {
            "obs": np.zeros((n, 9, 64, 64), np.uint8),
            "action": np.zeros((n, 1), np.float32),
            "reward": np.zeros(n, np.float32),
        }
    )
    assert buffer.sample(4, 3).obs.shape == (4, 4, 9, 64, 64)
    assert buffer._obs.nbytes < 100 * n * 9 * 64 * 64


@pytest.mark.parametrize(
    ("field", "row", "value", "obs_dtype"),
    [
        ("obs", 0, np.nan, np.float32),
        ("obs", 3, -np.inf, np.float32),
        ("action", 2, np.nan, np.float32),
        ("reward", 5, np.inf, np.float32),
        ("reward", 1, 1e300, np.float32),  # finite in float64, inf once stored as float32
        ("terminated", 4, np.nan, np.float32),
        ("action", 1, np.nan, np.uint8),
    ],
)
def test_an_episode_with_a_non_finite_value_is_refused_and_nothing_changes(
    field, row, value, obs_dtype
):
    buffer = ReplayBuffer(30, (3,), A, obs_dtype=obs_dtype, seed=8)
    for ep_id in range(4):  # the ring is full and wraps: a refused add must not drop anything
        buffer.add(
            {k: v.astype(obs_dtype) if k == "obs" else v for k, v in _episode(ep_id, 6).items()}
        )
    before = buffer.state_dict()
    before = ({k: v.copy() for k, v in before[0].items()}, before[1])
    episode = {k: v.astype(np.float64) for k, v in _episode(7, 5).items()}
    episode["obs"] = episode["obs"].astype(obs_dtype)
    if field == "obs":
        episode["obs"][row, 1] = value
    else:
        episode[field][row, ...] = value
    with pytest.raises(
        DataFormatError,
        match=rf"episode {field} is not finite .* at step {row} of 5 "
        r"\(row 0 is the reset\).*replay is unchanged.*diverged",
    ):
        buffer.add(episode)
    after = buffer.state_dict()
    assert after[1] == before[1]
    for name, array in after[0].items():
        np.testing.assert_array_equal(array, before[0][name])
    episode[field][row, ...] = 0  # the NaNs of row 0 (by design) pass
    buffer.add(episode)
    assert buffer.num_episodes > 0 and np.isfinite(buffer.sample(64, 3).reward).all()
