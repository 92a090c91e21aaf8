"""Data-parallel updates (docs/design.md#data-parallel-updates): with data_parallel_devices=2 on
two host-platform CPU devices, an update equals the one-device update on the full batch with the
same noise (metrics, parameters, Adam moments, RunningScale and F statistics), in three
variants that cover every statistic and pairing across the batch; the batch is really split.
The first variant's update runs in the fast suite (two compilations); the other variants and
the agent's own noise and act (each a subprocess and more compilations) in the slow one.

The devices exist only if XLA_FLAGS is set before jax is imported, so the agents run in a
subprocess per variant (this file run as a script) that writes its results to an .npz file.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

TINY = [
    "preset=cpu",
    "mlp_dim=32",
    "enc_dim=32",
    "latent_dim=16",
    "num_q=2",
    "batch_size=8",
    "diffusion_steps=3",
    "diffusion_num_samples=16",
    "diffusion_num_elites=4",
    "diffusion_num_pi_trajs=2",
]
VARIANTS = {
    "single": [],
    "multitask_published": ["task=mt30", "task_dim=8", "energy_pairing=published"],
    "episodic_score": ["episodic=true", "use_score_network=true", "dropout=0.1"],
}
"""single: RunningScale and F statistics; multitask_published: the published energy pairing
(rows paired across the batch) and task-embedding renormalisation; episodic_score: the score
loss (one sample of the batch), terminations and Q dropout masks split with the batch."""
TOL = 1e-5
"""Max abs difference / max(1, |value|): the two programs differ only in the order of
float32 sums over the batch."""
LR, BETA1 = 3e-4, 0.9
ROUNDING_GRAD = 1e-6
"""A first Adam step moves a parameter by lr g / (|g| + 1e-8). Where the batch's gradient sums
cancel to float32 rounding (|g| below this; in episodic_score 4 of 2,048 entries of q.1.weight,
one at |g| about 1e-9 against a median of 7e-4), that step is rounding noise of up to lr: such
entries are compared at lr."""
POLICY_TOL = 1e-4
"""The policy step (pi_* metrics, pi.* parameters and moments, RunningScale) reads Q after the
model step, so it carries those entries' differences (pi_grad_norm: 7e-5 in episodic_score)."""


def _random_batch(cfg, rng):
    from mbdpo_core.batch import Batch

    H, B, A = cfg.horizon, cfg.batch_size, cfg.action_dim
    return Batch(
        obs=rng.standard_normal((H + 1, B, cfg.obs_shape[0])).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        reward=(3 * rng.standard_normal((H, B, 1))).astype(np.float32),
        terminated=(rng.random((H, B, 1)) < 0.3).astype(np.float32)
        if cfg.episodic
        else np.zeros((H, B, 1), np.float32),
        task=rng.integers(0, cfg.n_tasks, cfg.batch_size) if cfg.multitask else None,
    )


def _worker(out: str, variant: str, own_noise: bool) -> None:
    """For one variant: one agent per device count from the same parameters, an update with
    numpy noise; with own_noise also an update with the agent's own noise and one act (each
    one more compilation); results -> `out` (.npz)."""
    import jax

    if cache := os.environ.get("MBDPO_JAX_CACHE_DIR"):  # as the root conftest.py
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    from mbdpo_core.config.load import load_config
    from mbdpo_core.noise import draw_numpy
    from mbdpo_core.params import init_params
    from mbdpo_jax import Agent
    from mbdpo_jax.data_parallel import shard_batch, shard_noise

    assert jax.device_count() == 2, jax.devices()
    results: dict[str, np.ndarray] = {}
    extra = VARIANTS[variant]
    rng = np.random.default_rng(5)
    cfg = load_config([*TINY, *extra])
    params = {
        k: (v + 0.1 * rng.standard_normal(v.shape)).astype(np.float32)
        for k, v in init_params(cfg, rng).items()
    }
    # spread Q over the batch, so that RunningScale moves (a 5-95 range below 1 keeps it)
    params["q.2.weight"] = 10 * params["q.2.weight"]
    batch, noise = _random_batch(cfg, rng), draw_numpy("update", cfg, rng)
    obs, plan_noise = batch.obs[0, 0], draw_numpy("plan", cfg, rng)
    task = int(batch.task[0]) if cfg.multitask else None
    for devices in (1, 2):
        agent = Agent(load_config([*TINY, *extra, f"data_parallel_devices={devices}"]))
        agent.import_params(params)
        key = f"{variant}/{devices}"
        for name, value in agent.update_with_noise(batch, noise).items():
            results[f"{key}/metric/{name}"] = np.float64(value)
        if own_noise:
            for name, value in agent.update(batch).items():
                results[f"{key}/own_noise_metric/{name}"] = np.float64(value)
            action = agent.plan_with_noise(obs, True, False, task, plan_noise)
            results[f"{key}/action"] = action
        arrays, meta = agent.state_dict()
        results.update({f"{key}/state/{k}": v for k, v in arrays.items()})
        results[f"{key}/running_scale"] = np.float64(meta["running_scale"])
        results[f"{key}/energy_stats"] = np.array(
            [meta["energy_stats"]["mean"], meta["energy_stats"]["std"]]
        )
        results[f"{key}/state_devices"] = np.int64(
            len(agent._state.model["nets"]["q"][0]["weight"].sharding.device_set)
        )
    sharded_cfg = load_config([*TINY, *extra, "data_parallel_devices=2"])
    device_batch = shard_batch(batch, sharded_cfg)
    device_noise = shard_noise(noise, sharded_cfg)
    for name, array in (("obs", device_batch.obs), ("q_keep", device_noise.q_keep)):
        results[f"{variant}/{name}_devices"] = np.int64(len(array.sharding.device_set))
        results[f"{variant}/{name}_shards"] = np.array(
            [s.data.shape for s in array.addressable_shards]
        )
    np.savez(out, **results)


@pytest.fixture(scope="module")
def results_of(tmp_path_factory) -> Callable[..., dict[str, np.ndarray]]:
    """(variant, own_noise=False) -> its results, computed once per module."""
    return functools.cache(functools.partial(_run_worker, tmp_path_factory))


def _run_worker(tmp_path_factory, variant: str, own_noise: bool = False) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("jax_dp") / f"{variant}.npz"
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
        "MBDPO_JAX_CACHE_DIR": os.environ.get(
            "MBDPO_JAX_CACHE_DIR", str(Path.home() / ".cache/mbdpo/jax-tests")
        ),
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), str(out), variant, str(own_noise)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    with np.load(out) as data:
        return dict(data)


def _excess(results, variant: str, part: str) -> float:
    """Max over every entry `<variant>/{1,2}/<part>...` of |difference| / max(1, |value|),
    each over its allowed difference (TOL, POLICY_TOL or LR); at most 1 passes (at least one
    entry must exist)."""
    prefix = f"{variant}/1/{part}"
    names = [k for k in results if k.startswith(prefix)]
    assert names, f"no results under {prefix}"
    worst = 0.0
    for name in names:
        one = np.asarray(results[name], np.float64)
        two = np.asarray(results[name.replace("/1/", "/2/", 1)], np.float64)
        allowed = np.full(one.shape, POLICY_TOL if _in_policy_step(name) else TOL)
        if "/state/params/" in name:
            allowed[_rounding_gradient(results, name)] = LR
        scaled = np.abs(one - two) / np.maximum(1.0, np.abs(one))
        worst = max(worst, float(np.max(scaled / allowed)))
    return worst


def _in_policy_step(name: str) -> bool:
    return any(
        f"/{part}" in name
        for part in ("metric/pi_", "state/params/pi.", "state/optim/pi/", "running_scale")
    )


def _rounding_gradient(results, name: str) -> np.ndarray:
    """Entries of a parameter whose first-step gradient (exp_avg / (1 - beta1), one device) is
    below ROUNDING_GRAD; none for parameters without Adam moments (target_q)."""
    variant, _, _, _, param = name.split("/")
    for group in ("model", "pi"):
        moment = results.get(f"{variant}/1/state/optim/{group}/{param}/exp_avg")
        if moment is not None:
            return np.abs(np.asarray(moment, np.float64)) / (1 - BETA1) < ROUNDING_GRAD
    return np.zeros(np.shape(results[name]), bool)


VARIANT_PARAMS = [
    pytest.param(v, marks=[pytest.mark.slow] if v != "single" else []) for v in VARIANTS
]


@pytest.mark.parametrize("variant", VARIANT_PARAMS)
def test_two_devices_update_as_one_device_on_the_full_batch(results_of, variant):
    results = results_of(variant)
    for part in ("metric/", "state/", "running_scale", "energy_stats"):
        assert _excess(results, variant, part) <= 1.0, part
    # the update changed the state: the comparison is not between two untouched agents
    assert results[f"{variant}/1/metric/grad_norm"] > 0
    assert results[f"{variant}/1/running_scale"] != 1.0


@pytest.mark.slow
def test_own_noise_update_and_act_match_too(results_of):
    """The agent's own key draws the same noise on either mesh; the planner then acts on one
    device from the same state."""
    results = results_of("single", own_noise=True)
    assert _excess(results, "single", "own_noise_metric/") <= 1.0
    assert _excess(results, "single", "action") <= 1.0


@pytest.mark.parametrize("variant", VARIANT_PARAMS)
def test_batch_and_noise_are_split_over_two_devices(results_of, variant):
    results = results_of(variant)
    B = 8
    assert results[f"{variant}/obs_devices"] == 2
    assert results[f"{variant}/q_keep_devices"] == 2
    assert [s[1] for s in results[f"{variant}/obs_shards"]] == [B // 2, B // 2]
    assert [s[2] for s in results[f"{variant}/q_keep_shards"]] == [B // 2, B // 2]
    # parameters stay replicated on both devices, one device holds the whole state
    assert results[f"{variant}/1/state_devices"] == 1
    assert results[f"{variant}/2/state_devices"] == 2


def test_more_devices_than_jax_sees_is_refused():
    """This test process has one CPU device (no XLA_FLAGS): asking for two names the count."""
    from mbdpo_core.config.load import load_config
    from mbdpo_core.errors import ConfigError
    from mbdpo_jax import Agent

    with pytest.raises(ConfigError, match=r"data_parallel_devices=2 but JAX sees 1 device"):
        Agent(load_config([*TINY, "data_parallel_devices=2"]))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], sys.argv[3] == "True")
