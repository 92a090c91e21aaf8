"""A converted dataset is a training loop's batch source: a real multi-task agent updates on the
sampler's batches, and core's Checkpointer saves and restores the sampler with the agent, so a
resumed run draws the batches the uninterrupted one would have."""

from __future__ import annotations

import numpy as np
import pytest
from mbdpo_core.backends import load_backend
from mbdpo_core.config.load import load_config
from mbdpo_core.loops import BatchSource, Checkpointer, LoopState, Stateful
from mbdpo_data import DatasetSampler, OfflineDataset, convert
from published_chunks import episodes_arrays, write_chunk


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_an_agent_trains_on_the_sampler_and_a_checkpoint_resumes_its_batches(
    tmp_path, tiny, mt80, backend
):
    pytest.importorskip(f"mbdpo_{backend}")
    write_chunk(tmp_path / "pt" / "chunk_0.pt", episodes_arrays(mt80, 6, seed=3))
    convert(tmp_path / "pt", tmp_path / "npz", progress=False, log=lambda line: None)
    cfg = load_config([*tiny, "task=mt80"], backend=backend)
    agent = load_backend(backend).Agent(cfg)
    sampler = DatasetSampler(OfflineDataset(tmp_path / "npz"), seed=cfg.seed, prefetch=2)
    assert isinstance(sampler, BatchSource) and isinstance(sampler, Stateful)

    metrics = [agent.update(sampler.sample(cfg.batch_size, cfg.horizon)) for _ in range(3)]
    assert all(np.isfinite(m["total_loss"]) for m in metrics)
    Checkpointer(tmp_path / "run").save(agent.state_dict(), LoopState(step=3), sampler)
    expected = sampler.sample(cfg.batch_size, cfg.horizon)
    sampler.close()

    restored = DatasetSampler(OfflineDataset(tmp_path / "npz"), seed=0, prefetch=2)
    state, _, _ = Checkpointer(tmp_path / "run").restore(load_backend(backend).Agent(cfg), restored)
    batch = restored.sample(cfg.batch_size, cfg.horizon)
    restored.close()
    assert state.step == 3 and restored.drawn == 4
    for field in ("obs", "action", "reward", "terminated", "task"):
        np.testing.assert_array_equal(getattr(batch, field), getattr(expected, field))
