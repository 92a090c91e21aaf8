"""Data-parallel updates (docs/design.md#data-parallel-updates): two gloo processes started by
torchrun, each updating on its half of the same batch with the same noise, end with the
parameters, Adam moments, RunningScale value and F statistics of one process on the full batch,
and report its metrics; in three variants that cover every statistic and pairing across the
batch. This file run by torchrun is the worker; it writes each rank's results to an .npz file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mbdpo_core.errors import ConfigError
from mbdpo_core.noise import draw_numpy

VARIANTS = {
    "single": [],
    "multitask_published": ["task=mt30", "task_dim=8", "energy_pairing=published"],
    "episodic_score": ["episodic=true", "use_score_network=true", "dropout=0.1"],
}
"""single: RunningScale percentiles and F statistics; multitask_published: the published
energy pairing (rows paired across the batch) and the renormalised task rows; episodic_score:
the score loss (one sample of the batch), terminations and Q dropout masks."""
TOL = 1e-5
"""Max abs difference / max(1, |value|): the runs differ only in the order of float32 sums."""


def _variant_cfg(make_cfg, variant: str, devices: int):
    extra = VARIANTS[variant]
    task = "mt30" if "task=mt30" in extra else "cheetah-run"
    others = [e for e in extra if not e.startswith("task=")]
    return make_cfg(*others, f"data_parallel_devices={devices}", task=task)


def _results(agent, batch, noise) -> dict[str, np.ndarray]:
    """An update with `noise`, then one with the agent's own draw; metrics and state after."""
    out = {f"metric/{k}": np.float64(v) for k, v in agent.update_with_noise(batch, noise).items()}
    out.update({f"own_noise_metric/{k}": np.float64(v) for k, v in agent.update(batch).items()})
    arrays, meta = agent.state_dict()
    out.update({f"state/{k}": v for k, v in arrays.items()})
    out["running_scale"] = np.float64(meta["running_scale"])
    out["energy_stats"] = np.array([meta["energy_stats"]["mean"], meta["energy_stats"]["std"]])
    return out


def _inputs(make_cfg, random_params, random_batch, variant: str):
    """(parameters, batch, noise) of a variant; the Q heads' last layer x 3 spreads Q over the
    batch, so that RunningScale moves (a 5-95 percentile range below 1 leaves it at 1)."""
    cfg = _variant_cfg(make_cfg, variant, 1)
    params = random_params(cfg)
    params["q.2.weight"] = 3 * params["q.2.weight"]
    return params, random_batch(cfg, 3), draw_numpy("update", cfg, np.random.default_rng(4))


def _worker(out_dir: str) -> None:
    """One torchrun process: every variant with data_parallel_devices=2."""
    from mbdpo_torch import Agent
    from mbdpo_torch.data_parallel import init_processes

    from conftest import make_cfg, random_batch, random_params

    rank, world = init_processes()
    assert world == 2
    results = {}
    for variant in VARIANTS:
        params, batch, noise = _inputs(make_cfg, random_params, random_batch, variant)
        agent = Agent(_variant_cfg(make_cfg, variant, 2))
        agent.import_params(params)
        results.update({f"{variant}/{k}": v for k, v in _results(agent, batch, noise).items()})
    np.savez(Path(out_dir) / f"rank{rank}.npz", **results)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> list[dict[str, np.ndarray]]:
    out = tmp_path_factory.mktemp("torch_dp")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(Path(__file__)),
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = []
    for rank in range(2):
        with np.load(out / f"rank{rank}.npz") as data:
            ranks.append(dict(data))
    return ranks


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_processes_update_as_one_process_on_the_full_batch(
    two_processes, tiny, rparams, rbatch, variant
):
    from mbdpo_torch import Agent

    params, batch, noise = _inputs(tiny, rparams, rbatch, variant)
    agent = Agent(_variant_cfg(tiny, variant, 1))
    agent.import_params(params)
    expected = _results(agent, batch, noise)
    assert expected["running_scale"] != 1.0 and expected["metric/grad_norm"] > 0
    for rank, results in enumerate(two_processes):
        got = {k.removeprefix(f"{variant}/"): v for k, v in results.items()}
        assert set(got) >= set(expected)
        for name, value in expected.items():
            want = np.asarray(value, np.float64)
            diff = np.abs(np.asarray(got[name], np.float64) - want) / np.maximum(1, np.abs(want))
            assert float(np.max(diff, initial=0.0)) <= TOL, f"rank {rank}: {name}"


def test_data_parallel_devices_must_match_the_processes(tiny):
    """One process (no torchrun) with data_parallel_devices=2 is a one-line error."""
    from mbdpo_torch import Agent

    with pytest.raises(ConfigError, match="torchrun --nproc_per_node=2"):
        Agent(_variant_cfg(tiny, "single", 2))


def test_a_batch_that_does_not_split_evenly_is_refused(tiny):
    with pytest.raises(ConfigError, match="data_parallel_devices=4: must divide batch_size=6"):
        _variant_cfg(tiny, "single", 4)


if __name__ == "__main__":
    _worker(sys.argv[1])
