"""make_vector_env (docs/design.md#vectorised-acting): N environments in spawned worker
processes through gymnasium's AsyncVectorEnv step exactly as N single environments given the
same reset seeds and actions."""

import numpy as np
import pytest
from mbdpo_core.config import load_config
from mbdpo_envs import make_agent_env
from mbdpo_envs.vector import make_vector_env

pytest.importorskip("dm_control")


def test_vector_env_steps_like_single_envs():
    cfg = load_config(["task=cartpole-balance", "preset=cpu", "num_envs=2", "steps=1000"])
    vec = make_vector_env(cfg, cfg.task, cfg.seed, 2)
    singles = [make_agent_env(cfg, cfg.task, 0) for _ in range(2)]
    try:
        assert vec.single_observation_space.shape == tuple(cfg.obs_shape)
        assert vec.single_action_space.shape == (cfg.action_dim,)
        seeds = [11, 12]
        obs, _ = vec.reset(seed=seeds)
        assert obs.shape == (2, *cfg.obs_shape) and obs.dtype == np.float32
        for n, env in enumerate(singles):
            np.testing.assert_array_equal(obs[n], env.reset(seed=seeds[n])[0])
        assert not np.array_equal(obs[0], obs[1])
        rng = np.random.default_rng(0)
        for _ in range(5):
            actions = rng.uniform(-1, 1, (2, cfg.action_dim)).astype(np.float32)
            obs, reward, terminated, truncated, info = vec.step(actions)
            assert info["success"].shape == (2,)
            for n, env in enumerate(singles):
                o, r, term, trunc, _ = env.step(actions[n])
                np.testing.assert_array_equal(obs[n], o)
                assert (reward[n], terminated[n], truncated[n]) == (r, term, trunc)
    finally:
        vec.close()
        for env in singles:
            env.close()
