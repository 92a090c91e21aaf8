"""Acting throughput with vectorised environments (docs/design.md#vectorised-acting):
environment steps per second of acting alone (plan + step, no updates) with num_envs 1, 2, 4, 8.

For each backend and N it builds an agent (model size --model-size, the CPU preset's planner),
N environments of --task in worker processes (N = 1: the one environment in this process, the
`act` path), and times --steps vector steps after --warmup: `act_envs` on the N observations,
then the N environment steps. Prints one line per (backend, N): env steps/s and ms per vector
step (also in matmul units: over the time of one float32 1024x1024 matmul in this process, the
machine's reference).

Usage:
    uv run python benchmarks/vector_acting.py [--backend torch] [--envs 1,2,4,8] [--steps 50]
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np
from mbdpo_core.config.load import load_config
from mbdpo_envs import make_agent_env
from mbdpo_envs.vector import make_vector_env


def matmul_ms() -> float:
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    start = time.perf_counter()
    for _ in range(5):
        a @ a
    return (time.perf_counter() - start) / 5 * 1e3


def steps_per_second(backend: str, n: int, args: argparse.Namespace) -> tuple[float, float]:
    """(env steps/s, ms per vector step) of acting in n environments."""
    overrides = [f"task={args.task}", "preset=cpu", f"model_size={args.model_size}"]
    cfg = load_config([*overrides, f"num_envs={n}", f"steps={n * 1000}"], backend=backend)
    agent = importlib.import_module(f"mbdpo_{backend}").Agent(cfg)
    if n == 1:
        env = make_agent_env(cfg, cfg.task, cfg.seed)
        obs, _ = env.reset(seed=0)

        def step(obs, t0):
            obs, *_ = env.step(agent.act(obs, t0=t0, eval_mode=False))
            return obs
    else:
        env = make_vector_env(cfg, cfg.task, cfg.seed, n)
        obs, _ = env.reset(seed=list(range(n)))

        def step(obs, t0):
            obs, *_ = env.step(agent.act_envs(obs, np.full(n, t0), eval_mode=False))
            return obs

    try:
        for i in range(args.warmup):
            obs = step(obs, i == 0)
        start = time.perf_counter()
        for _ in range(args.steps):
            obs = step(obs, False)
        seconds = time.perf_counter() - start
    finally:
        env.close()
    return n * args.steps / seconds, seconds / args.steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("torch", "jax"), action="append")
    parser.add_argument("--envs", default="1,2,4,8")
    parser.add_argument("--task", default="walker-walk")
    parser.add_argument("--model-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    unit = matmul_ms()
    print(f"matmul 1024^2 float32: {unit:.2f} ms (1 matmul unit)")
    for backend in args.backend or ["torch", "jax"]:
        for n in (int(x) for x in args.envs.split(",")):
            rate, ms = steps_per_second(backend, n, args)
            print(
                f"{backend:5s} num_envs={n}: {rate:7.1f} env steps/s  {ms:7.1f} ms/vector step"
                f"  ({ms / unit:5.1f} matmul units)"
            )


if __name__ == "__main__":
    main()
