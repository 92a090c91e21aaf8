"""The whole online training loop against its parts (docs/design.md#loops): env steps per second
of the real `OnlineTrainer` (act + env step + update + replay sampling) and the sum of those
parts timed alone on the same agent, environment and replay.

For each setting (--setting) and backend (--backend) it builds what apps/train builds for
mode=online (`online_parts`: the agent, the task's environment, the replay, the evaluator, a
`Progress`, with a `Logger` and a `Checkpointer` in a temporary run directory; evaluation,
checkpoints and videos off) and runs it with seed_steps=--seed-steps (default: two episodes):
- burst: the ms per update of the seeding burst (seed_steps updates at once, the first one,
  which compiles, left out) and the projected minutes of the published 2,500-update burst;
- loop: after the burst and --warmup steps, the mean ms per env step over --steps steps (each
  owes `updates_per_step` updates on replay batches), timed at the loop's own safe points (the
  `StopRequest` it checks after every step and between two burst updates), and env steps/s;
- parts, alone, timed in --rounds + 1 pauses of the loop spread over that window (at safe
  points; the pauses are left out of the loop's time, so that both see the same load of a shared
  machine): act (training mode) on the loop's observation, a step of the evaluation environment
  (random actions; resets left out), update on a replay batch, replay sampling, each the mean
  of --reps calls in all after one warm-up call per pause; their sum per step (act + env +
  updates_per_step x (update + sample)) and the loop's overhead = loop - sum (ms and % of it);
- trained weights: act (as above) with the agent's initial state against its state after the
  loop and after --train-updates more updates on replay batches, the states loaded in turn
  over min(5, --reps) rounds (median): the ratios trained / initial.
Each figure also in matmul units (over the ms of a float32 1024x1024 matmul timed in the same
pauses, speed.py's `matmul_gflops`); floor_ms is a step's analytic FLOPs (speed.py's `act_flops` +
updates_per_step x `update_flops`) at that matmul's rate (a step whose every FLOP ran as fast).
--published-step-ms X (the published code's ms per loop step at the reduced setting, measured
apart) adds ours / published to the reduced rows.

Settings: `reduced` is the published reduced setting of issue 16 (model size 1, 128 samples,
16 elites, diffusion_steps=10, 24 policy trajectories, batch 256; the paper preset otherwise);
`cpu` is preset=cpu.

Usage:
    uv run python benchmarks/loop.py [--setting reduced] [--backend jax] [--steps 200]
        [--threads 1] [--published-step-ms 680] [--json rows.json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from mbdpo_core.backends import load_backend
from mbdpo_core.config.load import load_config
from mbdpo_core.logger import Logger
from mbdpo_core.loops import Checkpointer, Interrupted, StopRequest
from mbdpo_core.tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from speed import act_flops, available_backends, matmul_gflops, update_flops  # noqa: E402

SETTINGS = {
    "reduced": [
        "preset=paper",
        "model_size=1",
        "diffusion_num_samples=128",
        "diffusion_num_elites=16",
        "diffusion_steps=10",
        "diffusion_num_pi_trajs=24",
        "batch_size=256",
    ],
    "cpu": ["preset=cpu"],
}
"""setting name -> its config overrides."""
PUBLISHED_BURST = 2500
"""Updates of the published seeding burst on reacher-easy (5 episodes of 500 steps)."""
PARTS = ("act", "env", "update", "sample")


def train_app():
    """apps/train/__main__.py as a module (its `online_parts` builds what a run trains with)."""
    spec = importlib.util.spec_from_file_location("train_app", REPO / "apps/train/__main__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class SafePointClock(StopRequest):
    """Stamps (seconds, env step, updates) at every safe point of the loop it is given to, calls
    `pause()` at the safe points after the env steps in `pauses` (its time is left out of the
    stamps) and stops the loop (raises `Interrupted`) at the safe point after step `stop_at`."""

    def __init__(self, stop_at: int, pauses: set[int], pause: Callable[[], None]) -> None:
        super().__init__()
        self.stop_at, self.pauses, self.pause, self.state = stop_at, set(pauses), pause, None
        self.marks: list[tuple[float, int, int]] = []
        self.paused_s = 0.0

    def check(self) -> None:
        st = self.state
        self.marks.append((time.perf_counter() - self.paused_s, st.step, st.updates))
        if st.step in self.pauses:
            self.pauses.discard(st.step)
            start = time.perf_counter()
            self.pause()
            self.paused_s += time.perf_counter() - start
        if st.step >= self.stop_at:
            raise Interrupted("benchmark window done")


def mean_ms(fn: Callable[[], object], warmup: int, reps: int) -> float:
    """Mean ms of fn() over reps calls after warmup calls."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def env_step_ms(env, action_dim: int, reps: int, rng: np.random.Generator) -> float:
    """Mean ms of env.step with uniform random actions; resets at episode ends are left out."""
    total, done = 0.0, True
    for _ in range(reps):
        if done:
            env.reset(seed=int(rng.integers(2**31)))
        action = rng.uniform(-1, 1, action_dim).astype(np.float32)
        start = time.perf_counter()
        *_, terminated, truncated, _ = env.step(action)
        total += time.perf_counter() - start
        done = bool(terminated or truncated)
    return total / reps * 1e3


def act_ms_by_weights(agent, act: Callable[[], object], states: dict, args) -> dict[str, float]:
    """Median over rounds of the mean ms of act() with each agent state (`state_dict()`), the
    states interleaved so that a change of the machine's load touches them alike."""
    rounds = max(1, min(5, args.reps))
    times: dict[str, list[float]] = {name: [] for name in states}
    for _ in range(rounds):
        for name, state in states.items():
            agent.load_state_dict(*state)
            times[name].append(mean_ms(act, 1, max(1, args.reps // rounds)))
    return {name: float(np.median(t)) for name, t in times.items()}


def measure(backend: str, setting: str, args: argparse.Namespace) -> dict:
    """One row: the loop's and its parts' timings for (backend, setting); see the docstring."""
    module = load_backend(backend)
    length = TASKS[args.task].episode_length
    seed_steps = args.seed_steps or 2 * length
    start = seed_steps + 2 + args.warmup  # the safe point before the first timed step
    stop_at = start + args.steps
    overrides = [
        *SETTINGS[setting],
        f"task={args.task}",
        f"seed_steps={seed_steps}",
        f"steps={stop_at + length}",  # never reached: the clock stops the loop first
        "eval_freq=0",
        "save_every=0",
        "video_every=0",
        *args.override,
    ]
    cfg = load_config(overrides, gpu_available=module.gpu_available(), backend=backend)
    agent = module.Agent(cfg)
    initial = agent.state_dict()
    parts = train_app().online_parts(cfg, agent)
    rounds: list[dict[str, float]] = []
    pauses = {start + k * args.steps // args.rounds for k in range(args.rounds + 1)}
    clock = SafePointClock(stop_at, pauses, lambda: rounds.append(time_parts(trainer, args)))
    try:
        with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(io.StringIO()):
            trainer = parts.trainer(Logger(run_dir), Checkpointer(run_dir), clock, None)
            clock.state = trainer.state
            with contextlib.suppress(Interrupted):
                trainer.run()
            ms = {p: float(np.mean([r[p] for r in rounds])) for p in (*PARTS, "matmul")}

            def act() -> object:
                return agent.act(trainer.obs, t0=False, eval_mode=False, task=trainer.task)

            states = {"initial": initial, "loop": agent.state_dict()}
            for _ in range(args.train_updates):
                agent.update(trainer.replay.sample(cfg.batch_size, cfg.horizon))
            if args.train_updates:
                states["updates"] = agent.state_dict()
            by_weights = act_ms_by_weights(agent, act, states, args)
    finally:
        parts.close()
    burst = [t for t, s, u in clock.marks if s == seed_steps + 1 and u >= 1]
    steps = {s: t for t, s, u in reversed(clock.marks)}  # the first mark of each step
    loop_ms = (steps[stop_at] - steps[start]) / args.steps * 1e3
    per_step = cfg.updates_per_step
    parts_ms = ms["act"] + ms["env"] + per_step * (ms["update"] + ms["sample"])
    burst_ms = (burst[-1] - burst[0]) / (len(burst) - 1) * 1e3
    row = {
        "setting": setting,
        "backend": backend,
        "task": args.task,
        "seed_steps": seed_steps,
        "steps": args.steps,
        "updates_per_step": per_step,
        "loop_ms": loop_ms,
        "loop_steps_per_s": 1e3 / loop_ms,
        **{f"{p}_ms": ms[p] for p in PARTS},
        "parts_ms": parts_ms,
        "overhead_ms": loop_ms - parts_ms,
        "overhead_pct": 100 * (loop_ms - parts_ms) / loop_ms,
        "burst_ms_per_update": burst_ms,
        "burst_published_min": burst_ms * PUBLISHED_BURST / 60e3,
        "act_initial_ms": by_weights["initial"],
        "act_trained_ratio": by_weights["loop"] / by_weights["initial"],
        "train_updates": args.train_updates,
        "act_after_updates_ratio": by_weights["updates"] / by_weights["initial"]
        if args.train_updates
        else None,
        "matmul_ms": ms["matmul"],
    }
    gflop = (act_flops(cfg) + per_step * update_flops(cfg)) / 1e9
    row["floor_ms"] = gflop / (2 * 1024**3 / 1e9) * ms["matmul"]  # every FLOP at matmul speed
    for name in ("loop", "parts", "floor", *PARTS):
        row[f"{name}_units"] = row[f"{name}_ms"] / ms["matmul"]
    if setting == "reduced" and args.published_step_ms:
        row["vs_published"] = loop_ms / args.published_step_ms
    return row


def time_parts(trainer, args: argparse.Namespace) -> dict[str, float]:
    """Mean ms of each part alone, at a pause of the loop: act (training mode, on the loop's
    observation) and update (on a replay batch) of its agent, its replay's sampling, and a
    step of its evaluation environment (the training one is mid-episode). The acts and updates
    count as the agent's: they change its warm start and weights as the loop's do."""
    cfg, agent, replay = trainer.cfg, trainer.agent, trainer.replay
    reps = max(1, args.reps // args.rounds)
    batch = replay.sample(cfg.batch_size, cfg.horizon)
    (env,) = trainer.evaluator.envs.values()
    rng = np.random.default_rng(cfg.seed)
    return {
        "act": mean_ms(
            lambda: agent.act(trainer.obs, t0=False, eval_mode=False, task=trainer.task), 1, reps
        ),
        "env": env_step_ms(env, cfg.action_dim, reps, rng),
        "update": mean_ms(lambda: agent.update(batch), 1, reps),
        "sample": mean_ms(lambda: replay.sample(cfg.batch_size, cfg.horizon), 1, reps),
        "matmul": 2 * 1024**3 / matmul_gflops(reps=5) / 1e6,
    }


def table_line(row: dict) -> str:
    ratio = row["act_trained_ratio"]
    after = row["act_after_updates_ratio"]
    trained = f"{ratio:4.2f}" + (f"/{after:4.2f}" if after else "")
    published = f"  {row['vs_published']:4.2f}x published" if "vs_published" in row else ""
    return (
        f"{row['setting']:8s} {row['backend']:5s} {row['loop_ms']:8.1f} "
        f"({row['loop_steps_per_s']:5.1f}/s) {row['parts_ms']:8.1f} {row['overhead_pct']:6.1f}% "
        f"{row['act_ms']:7.1f} {row['env_ms']:6.2f} {row['update_ms']:7.1f} "
        f"{row['sample_ms']:6.2f} {row['burst_ms_per_update']:7.1f} "
        f"({row['burst_published_min']:5.1f} min) {trained:>9s} {row['matmul_ms']:6.2f} "
        f"{row['floor_ms']:7.1f}"
        f"{published}"
    )


HEADER = (
    "setting  backend  loop ms/step (steps/s)    parts  overhead     act    env  update"
    "  sample  burst ms/update (2,500)  act trained/initial  matmul ms  floor"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", action="append", choices=tuple(SETTINGS))
    parser.add_argument("--backend", action="append", choices=("torch", "jax"))
    parser.add_argument("--task", default="reacher-easy", choices=sorted(TASKS), metavar="TASK")
    parser.add_argument("--steps", type=int, default=200, help="timed loop steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps and calls first")
    parser.add_argument("--reps", type=int, default=20, help="calls per timed part")
    parser.add_argument("--rounds", type=int, default=4, help="pauses to time the parts in")
    parser.add_argument("--seed-steps", type=int, default=0, help="0: two episodes of --task")
    parser.add_argument("--train-updates", type=int, default=500, help="after the loop")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch/OpenMP threads; 1 also pins XLA to one"
    )
    parser.add_argument(
        "--published-step-ms", type=float, default=0.0, help="published ms per loop step"
    )
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    parser.add_argument("--json", type=Path, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    for name in ("steps", "reps", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.seed_steps and args.seed_steps < 3:
        parser.error(f"--seed-steps must be 0 or >= 3, got {args.seed_steps}")
    use_threads(args.threads)
    backends = args.backend or available_backends()
    rows = []
    print(HEADER, flush=True)
    for setting in args.setting or tuple(SETTINGS):
        for backend in backends:
            rows.append(measure(backend, setting, args))
            print(table_line(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


def use_threads(threads: int) -> None:
    """Intra-op threads of torch, XLA and OpenMP (before the backends are imported)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if threads == 1 and "intra_op_parallelism_threads" not in os.environ.get("XLA_FLAGS", ""):
        single = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {single}".strip()
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
