"""Train an MBDPO agent: `uv run apps/train --backend torch|jax key=value ...`.

mode=online (the default) learns one task from scratch, mode=offline pretrains one agent on a
task set from a converted dataset, mode=finetune trains a checkpoint further online on one task.
Every key of packages/mbdpo-core/src/mbdpo_core/config/default.yaml can be overridden.
Examples:
    uv run apps/train --backend torch
    uv run apps/train --backend jax task=cartpole-balance preset=cpu steps=20000 seed=1
    uv run apps/train --backend torch mode=offline task=mt30 data_dir=data/mt30
    uv run apps/train --backend jax mode=finetune checkpoint=runs/mt30/RUN task=walker-run
    uv run apps/train --backend torch mode=finetune checkpoint=mt30-48M.pt format=tdmpc2 \
        task=walker-run

mode=finetune format=tdmpc2|mbdpo starts from a published .pt checkpoint (TD-MPC2's or MBDPO's
torch.save file): its task set is read from its task embedding (80 rows: mt80, 30: mt30; none:
single-task, trained on task=), model_size from its widths (or model_size=), and the keys that
describe its model (obs, mt30_dims, mlp_dim, ...) may be given as for a new run
(docs/design.md#fine-tuning).
    uv run apps/train --backend torch run_dir=runs/my-run resume=true
    uv run apps/train list keys|presets|planners|tasks

Ctrl-C or SIGTERM stops after the current step and writes a checkpoint; resume=true continues.

wandb=true also tracks the run with Weights & Biases (wandb_mode=offline without a network;
`wandb sync <run_dir>/wandb/offline-run-*` uploads it later; docs/design.md#experiment-tracking).

Data-parallel updates (docs/design.md#data-parallel-updates): the torch backend runs one
process per device under `torchrun --nproc_per_node=N apps/train/__main__.py --backend torch
data_parallel_devices=N ...`; JAX shards over N devices of one process (or of every process of
a jax.distributed run). Only rank 0 writes the run directory.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mbdpo_core.agent_state import finetune_from, start_finetuning
from mbdpo_core.backends import BACKENDS, load_backend
from mbdpo_core.config import Config, load_config, parse_overrides
from mbdpo_core.config.describe import TOPICS, describe
from mbdpo_core.config.finetune import ARCHITECTURE_KEYS
from mbdpo_core.config.validate import check_checkpoint_format
from mbdpo_core.errors import ConfigError, MbdpoError
from mbdpo_core.logger import Logger
from mbdpo_core.loops import (
    EXIT_CODES,
    Checkpointer,
    DiscardingLogger,
    EpisodeEvaluator,
    Interrupted,
    OfflineTrainer,
    OnlineTrainer,
    Progress,
    Schedule,
    StopRequest,
    TaskEvaluator,
    make_replay,
    task_id,
)
from mbdpo_core.rundir import (
    RunLock,
    check_run_dir,
    default_run_dir,
    record,
    resume_config,
    write_config,
)
from mbdpo_core.tracking import WandbRun


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="apps/train",
        description=__doc__,
        epilog="\n\n".join(describe(topic) for topic in ("presets", "planners", "keys")),
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="torch",
        help="deep-learning backend (default: torch)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help=f"config overrides, or `list TOPIC` with TOPIC one of {', '.join(TOPICS)}",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.overrides[:1] == ["list"]:
        try:
            for topic in args.overrides[1:] or TOPICS:
                print(describe(topic))
        except MbdpoError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    try:
        return train(args)
    except MbdpoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # full disk, lost mount, permissions changed during the run
        hint = " (the disk is full)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        print(
            f"error: cannot write {err.filename or 'the run outputs'}: {err.strerror}{hint}. "
            "The newest complete checkpoint is intact: free space or fix the path, then "
            "continue with resume=true.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\n[mbdpo] interrupted before training started; nothing was saved.", file=sys.stderr)
        return EXIT_CODES["SIGINT"]


def train(args: argparse.Namespace) -> int:
    """Validate everything, then create or lock the run directory and train; the exit status."""
    explicit = parse_overrides(args.overrides)
    backend = load_backend(args.backend)
    backend.use_compilation_cache()  # a second run of the same shapes loads compiled programs
    rank, _ = backend.init_processes()  # before the backend sees its devices
    writes = rank == 0  # the other processes of a data-parallel run hold the same state
    published = published_source(explicit, args.backend)
    cfg = load_config(
        explicit,
        gpu_available=backend.gpu_available(),
        backend=args.backend,
        source=published and published.cfg,
    )
    if cfg.resume and cfg.run_dir is None:
        raise ConfigError("resume=true needs run_dir=PATH of the run to continue.")
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    if writes or cfg.resume:
        check_run_dir(run_dir, cfg.resume)
    if cfg.resume:
        cfg = resume_config(run_dir, cfg, explicit)
        requested = cfg.resume_from and int(cfg.resume_from.removeprefix("step_"))
        step = Checkpointer(run_dir).choose(requested)
    tracking = WandbRun(cfg, run_dir) if writes and cfg.wandb else None  # imports wandb
    agent = backend.Agent(cfg)
    if cfg.mode == "finetune" and not cfg.resume:
        origin = f", task {cfg.task} starting from {cfg.source_task}'s row" if cfg.multitask else ""
        if published is None:
            print(f"[mbdpo] fine-tuning {start_finetuning(agent)}{origin}")
        else:
            finetune_from(agent, published.params, published.cfg)
            print(f"[mbdpo] fine-tuning {cfg.checkpoint} (format={cfg.format}){origin}")
            for note in published.notes:
                print(f"[mbdpo] {note}")
    parts = offline_parts(cfg, agent) if cfg.mode == "offline" else online_parts(cfg, agent)
    for note in cfg.notes:
        print(f"[mbdpo] {note}")
    print(
        f"[mbdpo] backend={cfg.backend} task={cfg.task} preset={cfg.preset} "
        f"model_size={cfg.model_size} planner={cfg.planner} steps={cfg.steps} seed={cfg.seed}"
    )
    print(f"[mbdpo] run directory: {run_dir}")

    lock = RunLock(run_dir) if writes else None  # everything was checked; from here on we write
    try:
        checkpoints = Checkpointer(run_dir, keep=cfg.keep_checkpoints, writes=writes)
        removed = checkpoints.clean() if writes else []
        if removed:
            print(f"[mbdpo] removed {len(removed)} temporary file(s) of an interrupted write")
        stop = StopRequest()
        videos = run_dir / "videos" if writes and cfg.video_every else None
        trainer = parts.trainer(
            Logger(run_dir, wandb=tracking) if writes else DiscardingLogger(),
            checkpoints,
            stop,
            videos,
        )
        if cfg.resume:
            if writes and (later := checkpoints.discard_after(step)):
                print(f"[mbdpo] resume_from=step_{step}: removed the later checkpoints {later}")
            trainer.restore(step)
            st = trainer.state
            where = f"update {st.step:,}" if cfg.mode == "offline" else f"step {st.step:,}"
            episode = f" (episode {st.episode})" if st.episode else ""
            print(f"[mbdpo] resumed from {where}{episode}")
            if trainer.finished:
                print(
                    f"[mbdpo] the run is already at steps={cfg.steps:,}; give steps=N to extend it."
                )
                return 0
        if tracking is not None:
            tracking.start()
        if writes:
            write_config(run_dir, cfg)
            record(
                run_dir,
                "resume" if cfg.resume else "start",
                step=trainer.state.step,
                backend=cfg.backend,
            )
        try:
            with stop:
                result = trainer.run()
        except Interrupted as signal:
            st = trainer.state
            if writes:
                record(run_dir, "stopped", step=st.step, signal=signal.signal)
            print(
                f"[mbdpo] stopped by {signal.signal} at step {st.step:,}; checkpoint written. "
                f"Continue with:\n  uv run apps/train --backend {cfg.backend} "
                f"run_dir={run_dir} resume=true",
                file=sys.stderr,
            )
            return finish_tracking(tracking, EXIT_CODES[signal.signal], upload=True)
        except BaseException as err:
            if writes:
                record(run_dir, "failed", step=trainer.state.step, error=str(err)[:500])
            finish_tracking(tracking, 1, upload=False)
            raise
        if writes:
            record(run_dir, "finished", step=trainer.state.step)
        status = finish_tracking(tracking, 0, upload=True)
    finally:
        parts.close()
        if lock is not None:
            lock.release()
    summary = ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float | int))
    print(f"[mbdpo] done: {summary}")
    return status


def finish_tracking(tracking: WandbRun | None, exit_code: int, upload: bool) -> int:
    """End the W&B run (uploading the artefacts when `upload`); the session's exit status: a
    W&B failure is said in one line and turns 0 into 1 (the run directory is complete)."""
    if tracking is None:
        return exit_code
    try:
        tracking.finish(exit_code, upload)
    except (MbdpoError, KeyboardInterrupt) as err:
        reason = str(err) or "interrupted while uploading to W&B"
        print(f"error: {reason}", file=sys.stderr)
        return exit_code or 1
    return exit_code


@dataclass(frozen=True)
class PublishedSource:
    """A published checkpoint to fine-tune: the config it was trained with, its canonical
    parameters and the import's notes."""

    cfg: Config
    params: dict
    notes: list[str]


SOURCE_KEYS = (*ARCHITECTURE_KEYS, "task", "episodic", "horizon", "log_std_min", "log_std_max")
"""The explicit keys that describe a published checkpoint's model (docs/design.md#fine-tuning)."""


def published_source(explicit: dict, backend: str) -> PublishedSource | None:
    """mode=finetune format=tdmpc2|mbdpo (not resuming): the checkpoint read and imported; else
    None. Its config: `published_config` of its shapes and the explicit SOURCE_KEYS.

    Raises:
        ConfigError / CheckpointError: a bad format or path, an unreadable file, keys or shapes
            that do not fit the config.
    """
    fmt = explicit.get("format", "native")
    if explicit.get("mode") != "finetune" or fmt == "native" or explicit.get("resume"):
        return None
    from mbdpo_data.published_checkpoint import (
        infer_model_size,
        published_config,
        read_published,
        to_canonical,
    )

    check_checkpoint_format(fmt, explicit.get("checkpoint"))
    state = read_published(explicit["checkpoint"], fmt)
    cfg = published_config(
        {k: v.shape for k, v in state.items()},
        fmt,
        {k: v for k, v in explicit.items() if k in SOURCE_KEYS},
        model_size=infer_model_size(state),
        backend=backend,
    )
    params, notes = to_canonical(state, cfg)
    return PublishedSource(cfg, params, notes)


@dataclass
class RunParts:
    """What a mode builds before the run directory is touched: `trainer(logger, checkpoints,
    stop, videos)` makes its loop (videos: the folder of its evaluation videos, or None),
    `close()` releases its processes and threads."""

    trainer: Callable[
        [Logger, Checkpointer, StopRequest, Path | None], OnlineTrainer | OfflineTrainer
    ]
    close: Callable[[], None] = lambda: None


def online_parts(cfg: Config, agent: object) -> RunParts:
    """One task, acting and learning (from scratch, or fine-tuning a checkpoint); evaluated on
    its own environment, at the agent's widths."""
    if cfg.multitask and cfg.mode == "online":
        raise ConfigError(
            f"task={cfg.task} is a multi-task set; online training takes a single task. "
            f"Multi-task training is offline: mode=offline task={cfg.task} data_dir=DIR."
        )
    from mbdpo_core.loops.online_vector import VectorOnlineTrainer
    from mbdpo_envs import make_agent_env
    from mbdpo_envs.vector import make_vector_env

    task = cfg.task
    if cfg.num_envs > 1:  # worker processes, one batched planner call (#vectorised-acting)
        env, loop = make_vector_env(cfg, task, cfg.seed, cfg.num_envs), VectorOnlineTrainer
    else:
        env, loop = make_agent_env(cfg, task, cfg.seed), OnlineTrainer
    eval_env = make_agent_env(cfg, task, cfg.seed + 1)
    ids = {task: task_id(cfg, task)} if cfg.multitask else None
    return RunParts(
        lambda logger, checkpoints, stop, videos: loop(
            cfg,
            agent,
            env,
            replay=make_replay(cfg),
            evaluator=EpisodeEvaluator({task: eval_env}, cfg.eval_episodes, cfg.seed, ids),
            logger=logger,
            checkpoints=checkpoints,
            progress=Progress(Schedule.from_config(cfg), desc=task),
            stop=stop,
            videos=videos,
        ),
        close=env.close,
    )


def offline_parts(cfg: Config, agent: object) -> RunParts:
    """A task set trained on a converted dataset; evaluated on cfg.evaluated_tasks."""
    from mbdpo_data import DatasetSampler, OfflineDataset
    from mbdpo_envs import make_agent_env

    dataset = OfflineDataset(cfg.data_dir)
    layout = dataset.layout
    if (layout.name, layout.obs_dim, layout.action_dim) != (
        cfg.task,
        cfg.obs_shape[0],
        cfg.action_dim,
    ):
        raise ConfigError(
            f"data_dir={cfg.data_dir} holds {layout.name} (obs {layout.obs_dim}, action "
            f"{layout.action_dim}); task={cfg.task} trains on obs {cfg.obs_shape[0]}, action "
            f"{cfg.action_dim}. Give the {cfg.task} dataset."
        )
    sampler = DatasetSampler(dataset, seed=cfg.seed)
    workers = cfg.eval_workers or os.cpu_count() or 1
    evaluator = TaskEvaluator(cfg, cfg.evaluated_tasks, cfg.eval_episodes, make_agent_env, workers)

    def close() -> None:
        sampler.close()
        evaluator.close()

    return RunParts(
        lambda logger, checkpoints, stop, videos: OfflineTrainer(
            cfg, agent, sampler, evaluator, logger, checkpoints, stop=stop, videos=videos
        ),
        close,
    )


if __name__ == "__main__":
    sys.exit(main())
