"""Speed of act and update per backend: ms per call and achieved GFLOP/s.

JSON fields per result: act_ms / update_ms (median), act_units / update_units (the same in
"matmul units": the time over one float32 1024x1024 matmul timed in the same process, the figure
that compares across machines), act_gflops / update_gflops (achieved GFLOP/s, comparable to
matmul_gflops), act_gflop / update_gflop (analytic GFLOP per call),
act_first_ms / update_first_ms (first call: JAX tracing + compilation, torch warm-up),
act_limit_units / update_limit_units (the analytic FLOPs at matmul speed: the limit), and with
--published the published code's published_act_ms / published_update_ms, published_act_units /
published_update_units and published_act_first_ms / published_update_first_ms.

For each backend present (torch, jax), model size (1, 5) and observation/action dims
(cheetah-run 17/6, dog-run 223/38) it builds an agent with the paper planner (or the CPU
preset's, --preset cpu), times `act` (training mode, warm start on) and `update` (batch 256)
and reports the median over repetitions after warm-up. A float32 1024x1024 matmul is timed in
the same process as the machine's reference throughput. Per model size and dims it prints a
table in matmul units: each backend and the exact-FLOP limit.

--published PATH also times the published PyTorch code (github.com/Edmond1Cheng/MBDPO, imported
at run time from that checkout by benchmarks/published.py; CPU only) with the same planner
settings, batch, dims, threads and matmul unit, adds its row to the table and prints the
ours/published ratios. --alternate N runs N rounds, each timing the published code then ours,
and reports the medians over rounds.

Weights: by default the TD-MPC2 initialisation with its all-zero weight matrices (the last layers
of reward, energy and Q) drawn with std 0.02 and the target Q a copy of Q, so that values,
softmaxes and elite choices are not degenerate (--weights random,
`mbdpo_core.params.nonzero_init_params`).
--weights init keeps the initialisation; --weights trained first runs --train-updates updates on
random batches (slow at model size 5). The published agent gets the same treatment
(`PublishedRun.fill_zero_matrices`; trained: as many of its own updates on random batches).

GFLOP counts are analytic: every Linear layer costs 2 x rows x in x out FLOPs (multiply-adds of
the matmul; biases, norms and activations are not counted). They count what the exact algorithm
needs, identical for both backends (see `act_flops` and `update_flops`):
- act (diffusion): per level, N candidates x (H steps of dynamics + reward + F, minus the first
  step's [z0, e] part of their first layers, computed once per act) + N x (policy + the two Q
  members of the pair) at the bootstrap + P policy rollouts (policy at z0 once per act);
- update: no-gradient parts x1 (TD target with the pair of target members, energy candidates),
  parts with parameter gradients x3 (forward + 2 x backward), the Q pair of the policy step x2
  (forward + input gradient).

Usage:
    uv run python benchmarks/speed.py [--backend torch] [--model-size 5] [--dims 17,6]
        [--preset paper|cpu] [--threads 2] [--published PATH [--alternate 4]] [--set compile=true]
        [--json]

On a machine shared with other busy processes, OpenMP threads that wait for each other at every
parallel region make 2-thread timings swing by 10x; time on a quiet machine (or with
--threads 1) and compare with the matmul figure printed alongside.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.config.schema import Config
from mbdpo_core.noise import diffusion_levels
from mbdpo_core.params import module_layers, nonzero_init_params
from mbdpo_core.tasks import TASKS

BACKENDS = ("torch", "jax")
DEFAULT_DIMS = ((17, 6), (223, 38))


# ----- analytic FLOP counts -------------------------------------------------------------------
def _macs(cfg: Config) -> dict[str, int]:
    """Multiply-adds per row of each module (per member for q)."""
    return {
        m: sum(l.in_dim * l.out_dim for l in layers) for m, layers in module_layers(cfg).items()
    }


def _value_macs(cfg: Config, rows: int, mac: dict[str, int]) -> int:
    """The value estimate for `rows` candidates sharing one first latent."""
    Z, E, M, H = cfg.latent_dim, cfg.task_dim, cfg.mlp_dim, cfg.horizon
    step = mac["dynamics"] + mac["reward"] + mac["energy"]
    first_step = step - (Z + E) * 3 * M  # the [z0, e] part is computed once per act
    term = H * mac.get("termination", 0)
    return rows * (first_step + (H - 1) * step + term + mac["pi"] + 2 * mac["q"])


def act_flops(cfg: Config) -> int:
    """FLOPs of one act with cfg.planner (see the module docstring)."""
    mac = _macs(cfg)
    Z, E, M, H = cfg.latent_dim, cfg.task_dim, cfg.mlp_dim, cfg.horizon
    total = mac["encoder"]
    if cfg.planner == "policy":
        return 2 * (total + mac["pi"])
    if cfg.planner == "diffusion" and cfg.score_net_plans:
        return 2 * (total + diffusion_levels(cfg) * mac["score"])
    if cfg.planner == "diffusion":
        levels, N, P = diffusion_levels(cfg), cfg.diffusion_num_samples, cfg.diffusion_num_pi_trajs
    else:
        levels, N, P = cfg.iterations, cfg.num_samples, cfg.num_pi_trajs
    P = min(P, N)
    rollouts = P * ((H - 1) * mac["pi"] + H * mac["dynamics"])
    rollout_sets = levels if cfg.planner == "diffusion" else 1
    total += (Z + E) * 3 * M + mac["pi"] + rollout_sets * rollouts
    total += levels * _value_macs(cfg, N, mac)
    return 2 * total


def update_flops(cfg: Config) -> int:
    """FLOPs of one update (see the module docstring)."""
    mac = _macs(cfg)
    H, B, Nq = cfg.horizon, cfg.batch_size, cfg.num_q
    Z, E, M = cfg.latent_dim, cfg.task_dim, cfg.mlp_dim
    R = H * B
    no_grad = R * (mac["encoder"] + mac["pi"] + 2 * mac["q"])  # TD target
    en_z = (Z + E) * M
    no_grad += R * (mac["pi"] + 3 * (mac["energy"] - en_z))  # energy candidates
    grad = B * mac["encoder"] + R * (mac["dynamics"] + mac["reward"] + Nq * mac["q"])
    grad += R * mac.get("termination", 0)
    grad += R * en_z + 2 * R * (mac["energy"] - en_z)  # positive and negative, shared z part
    grad += (H + 1) * B * mac["pi"]
    q_pair = (H + 1) * B * 2 * mac["q"]
    if cfg.use_score_network:
        no_grad += _value_macs(cfg, cfg.diffusion_num_samples_mf, mac)
        grad += mac["score"]
    return 2 * (no_grad + 3 * grad + 2 * q_pair)


# ----- timing ---------------------------------------------------------------------------------
def task_for(obs_dim: int, action_dim: int) -> str:
    """A single-task name with these dims (cheetah-run for 17/6, dog-run for 223/38)."""
    for name, spec in TASKS.items():
        if (spec.obs_dim, spec.action_dim) == (obs_dim, action_dim) and spec.suite == "dmcontrol":
            return name
    for name, spec in TASKS.items():
        if (spec.obs_dim, spec.action_dim) == (obs_dim, action_dim):
            return name
    raise SystemExit(f"No task has obs/action dims {obs_dim}/{action_dim} (e.g. 17,6 or 223,38).")


def median_time(fn: Callable[[], object], warmup: int, reps: int) -> float:
    """Median wall-clock seconds of fn() over reps calls, after warmup calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def first_call(fn: Callable[[], object]) -> float:
    """Seconds of the first call (for JAX: tracing + XLA compilation + one run)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_gflops(reps: int = 20) -> float:
    """Throughput of a float32 1024x1024 matmul (torch if installed, else numpy)."""
    try:
        import torch

        a = torch.randn(1024, 1024)
        fn: Callable[[], object] = lambda: a @ a  # noqa: E731
    except ImportError:
        a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
        fn = lambda: a @ a  # noqa: E731
    return 2 * 1024**3 / median_time(fn, 3, reps) / 1e9


def random_batch(cfg: Config, rng: np.random.Generator) -> Batch:
    H, B, A = cfg.horizon, cfg.batch_size, cfg.action_dim
    return Batch(
        obs=rng.standard_normal((H + 1, B, *cfg.obs_shape)).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        reward=rng.standard_normal((H, B, 1)).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
    )


def prepare_weights(agent, cfg: Config, mode: str, updates: int, rng: np.random.Generator) -> None:
    """Set the agent's weights per --weights (init | random | trained)."""
    if mode == "random":
        agent.import_params(nonzero_init_params(cfg, rng))
    elif mode == "trained":
        for _ in range(updates):
            agent.update(random_batch(cfg, rng))


@dataclass
class Contender:
    """One implementation to time: `act(t0)` plans one action for the shared observation,
    `update()` runs one update on the shared batch."""

    name: str
    act: Callable[[bool], object]
    update: Callable[[], object]


def measure(contender: Contender, args: argparse.Namespace, first: bool) -> dict[str, float]:
    """Median seconds of act (t0 off, training mode) and update; with `first`, also the first
    call of each (act with t0 on)."""
    times = {}
    if first:
        times["act_first_s"] = first_call(lambda: contender.act(True))
    times["act_s"] = median_time(lambda: contender.act(False), args.warmup, args.reps)
    if first:
        times["update_first_s"] = first_call(contender.update)
    times["update_s"] = median_time(contender.update, args.warmup, args.reps)
    return times


def our_contender(
    backend: str, size: int, dims: tuple[int, int], args: argparse.Namespace
) -> tuple[Contender, Config]:
    """A backend's agent for one setting, with weights per --weights, and its config."""
    module = importlib.import_module(f"mbdpo_{backend}")  # lazy: only the requested backends
    overrides = [
        f"task={task_for(*dims)}",
        f"model_size={size}",
        f"preset={args.preset}",
        f"batch_size={args.batch_size}",
        f"device={args.device}",
        *args.set,
    ]
    cfg = load_config(overrides, gpu_available=module.gpu_available(), backend=backend)
    agent = module.Agent(cfg)
    prepare_weights(agent, cfg, args.weights, args.train_updates, np.random.default_rng(0))
    obs, batch = shared_inputs(cfg)
    act = lambda t0: agent.act(obs, t0, False)  # noqa: E731
    return Contender(backend, act, lambda: agent.update(batch)), cfg


def published_contender(code, cfg: Config, args: argparse.Namespace) -> Contender:
    """The published agent with our config's planner settings, batch size and task dims."""
    from published import PLANNER_KEYS, PublishedRun, published_config  # lazy: imports torch

    spec = TASKS[cfg.task]
    their_cfg = published_config(
        code,
        cfg.model_size,
        spec.obs_dim,
        spec.action_dim,
        spec.episode_length,
        {key: getattr(cfg, key) for key in PLANNER_KEYS},
        cfg.batch_size,
        cfg.task,
    )
    run = PublishedRun(code, their_cfg)
    if args.weights == "random":
        run.fill_zero_matrices()
    elif args.weights == "trained":
        rng = np.random.default_rng(0)
        for _ in range(args.train_updates):
            run.update(random_batch(cfg, rng))
    obs, batch = shared_inputs(cfg)
    return Contender("published", lambda t0: run.act(obs, t0), lambda: run.update(batch))


def shared_inputs(cfg: Config) -> tuple[np.ndarray, Batch]:
    """The observation [obs_dim] and batch every contender of one setting is timed on."""
    rng = np.random.default_rng(1)
    return rng.standard_normal(cfg.obs_shape).astype(np.float32), random_batch(cfg, rng)


def run_setting(
    backends: list[str],
    size: int,
    dims: tuple[int, int],
    args: argparse.Namespace,
    code,
    matmul_ms: float,
) -> list[dict]:
    """Time each backend (and the published code, when `code`) at one model size and dims:
    --alternate rounds, each timing the published code first, then ours; medians over rounds.

    Ours are built first, so process-wide settings a backend makes (torch: flush denormals,
    malloc thresholds) hold for the published agent too.
    """
    contenders, cfgs = [], {}
    for backend in backends:
        contender, cfgs[backend] = our_contender(backend, size, dims, args)
        contenders.append(contender)
    if code is not None:
        contenders.insert(0, published_contender(code, cfgs[backends[0]], args))
    rounds: dict[str, list[dict[str, float]]] = {c.name: [] for c in contenders}
    for index in range(args.alternate):
        for contender in contenders:
            rounds[contender.name].append(measure(contender, args, first=index == 0))
    times = {name: _median_over_rounds(found) for name, found in rounds.items()}
    return [
        result_row(backend, cfgs[backend], times[backend], times.get("published"), matmul_ms)
        for backend in backends
    ]


def _median_over_rounds(rounds: list[dict[str, float]]) -> dict[str, float]:
    times = {key: rounds[0][key] for key in ("act_first_s", "update_first_s")}
    for key in ("act_s", "update_s"):
        times[key] = statistics.median(r[key] for r in rounds)
    return times


def result_row(
    backend: str,
    cfg: Config,
    times: dict[str, float],
    published: dict[str, float] | None,
    matmul_ms: float,
) -> dict:
    """One JSON result (see the module docstring for the fields)."""
    act_gflop, update_gflop = act_flops(cfg) / 1e9, update_flops(cfg) / 1e9
    unit_gflop = 2 * 1024**3 / 1e9  # one float32 1024x1024 matmul
    row = {
        "backend": backend,
        "model_size": cfg.model_size,
        "obs_dim": cfg.obs_shape[0],
        "action_dim": cfg.action_dim,
        "act_ms": times["act_s"] * 1e3,
        "update_ms": times["update_s"] * 1e3,
        "act_units": times["act_s"] * 1e3 / matmul_ms,
        "update_units": times["update_s"] * 1e3 / matmul_ms,
        "act_gflops": act_gflop / times["act_s"],
        "update_gflops": update_gflop / times["update_s"],
        "act_gflop": act_gflop,
        "update_gflop": update_gflop,
        "act_limit_units": act_gflop / unit_gflop,
        "update_limit_units": update_gflop / unit_gflop,
        "act_first_ms": times["act_first_s"] * 1e3,
        "update_first_ms": times["update_first_s"] * 1e3,
    }
    if published is not None:
        for call in ("act", "update"):
            row[f"published_{call}_ms"] = published[f"{call}_s"] * 1e3
            row[f"published_{call}_units"] = published[f"{call}_s"] * 1e3 / matmul_ms
            row[f"published_{call}_first_ms"] = published[f"{call}_first_s"] * 1e3
    return row


def format_row(row: dict) -> str:
    """One backend's figures on one line."""
    return (
        f"{row['backend']:5s} size {row['model_size']:3d} "
        f"{row['obs_dim']:3d}/{row['action_dim']:2d}: "
        f"act {row['act_ms']:8.1f} ms = {row['act_units']:6.1f} units "
        f"({row['act_gflop']:6.1f} GFLOP, "
        f"{row['act_gflops']:5.1f} GFLOP/s, first {row['act_first_ms']:.0f} ms)  "
        f"update {row['update_ms']:7.1f} ms = {row['update_units']:5.1f} units "
        f"({row['update_gflop']:5.1f} GFLOP, "
        f"{row['update_gflops']:5.1f} GFLOP/s, "
        f"first {row['update_first_ms']:.0f} ms)"
    )


def format_table(rows: list[dict]) -> str:
    """The matmul-unit table of one setting (rows: the backends' results of one model size and
    dims): the published code when timed, each backend, the exact-FLOP limit, and the
    ours/published ratios."""
    first = rows[0]
    lines = [
        f"model size {first['model_size']}, obs {first['obs_dim']} / action {first['action_dim']}"
        " (matmul units: a call's time over one float32 1024x1024 matmul)",
        f"{'':38s}{'act':>8s}{'update':>9s}",
    ]
    published = "published_act_units" in first
    entries = []
    if published:
        entries.append(
            (
                "published PyTorch code",
                first["published_act_units"],
                first["published_update_units"],
            )
        )
    entries += [(f"mbdpo {row['backend']}", row["act_units"], row["update_units"]) for row in rows]
    limit = (
        "exact FLOPs at matmul speed (limit)",
        first["act_limit_units"],
        first["update_limit_units"],
    )
    entries.append(limit)
    lines += [f"{label:38s}{act:8.1f}{update:9.1f}" for label, act, update in entries]
    if published:
        ratios = [
            f"{row['backend']} act {row['act_units'] / row['published_act_units']:.2f}, "
            f"update {row['update_units'] / row['published_update_units']:.2f}"
            for row in rows
        ]
        lines.append("ours / published: " + "; ".join(ratios))
    return "\n".join(lines)


def available_backends() -> list[str]:
    found = []
    for name in BACKENDS:
        try:
            importlib.import_module(f"mbdpo_{name}")
            found.append(name)
        except ImportError:
            continue
    return found


def parse_dims(text: str) -> tuple[int, int]:
    try:
        obs, act = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--dims takes OBS,ACTION (e.g. 17,6), got {text!r}"
        ) from None
    return obs, act


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="backend to time (repeatable; default: every installed backend)",
    )
    parser.add_argument(
        "--model-size",
        action="append",
        type=int,
        choices=(1, 5, 19, 48, 317),
        help="model size (repeatable; default 1 and 5)",
    )
    parser.add_argument(
        "--dims",
        action="append",
        type=parse_dims,
        help="OBS,ACTION dims (repeatable; default 17,6 and 223,38)",
    )
    parser.add_argument(
        "--preset",
        choices=("paper", "cpu"),
        default="paper",
        help="planner settings: paper (20 levels, 512 samples) or cpu",
    )
    parser.add_argument("--device", default="cpu", help="device (cpu | cuda | auto | gpu)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--weights", choices=("init", "random", "trained"), default="random")
    parser.add_argument(
        "--train-updates",
        type=int,
        default=200,
        help="updates before timing with --weights trained",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (0 = torch's default: one per core)",
    )
    parser.add_argument(
        "--published",
        metavar="PATH",
        help="also time the published code from this checkout of github.com/Edmond1Cheng/MBDPO "
        "(CPU, torch) and print ours/published ratios",
    )
    parser.add_argument(
        "--alternate",
        type=int,
        default=1,
        help="rounds, each timing the published code then ours; medians over rounds",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for our agents (repeatable; e.g. compile=true, precision=bf16)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.alternate < 1:
        parser.error(f"--alternate must be >= 1, got {args.alternate}")
    code = None
    if args.published:
        if args.device != "cpu":
            raise SystemExit(
                f"--published runs the published code on the CPU: use --device cpu, "
                f"not {args.device!r}."
            )
        from published import load_published  # lazy: imports torch

        code = load_published(args.published)
    if args.threads and ("torch" in (args.backend or BACKENDS) or code is not None):
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass

    backends = args.backend or available_backends()
    if not backends:
        raise SystemExit("No backend installed: install mbdpo-torch and/or mbdpo-jax.")
    matmul = matmul_gflops()
    matmul_ms = 2 * 1024**3 / matmul / 1e6
    results = []
    for size in args.model_size or (1, 5):
        for dims in args.dims or DEFAULT_DIMS:
            rows = run_setting(backends, size, dims, args, code, matmul_ms)
            results += rows
            if not args.json:
                print("\n".join(format_row(row) for row in rows), flush=True)
                print(format_table(rows) + "\n", flush=True)
    if args.json:
        print(json.dumps({"matmul_gflops": matmul, "matmul_ms": matmul_ms, "results": results}))
    else:
        line = f"float32 1024x1024 matmul: {matmul:.1f} GFLOP/s = {matmul_ms:.2f} ms (1 unit)"
        print(line, file=sys.stderr)


if __name__ == "__main__":
    main()
