"""Train an MBDPO agent online: `uv run apps/train --backend torch|jax key=value ...`.

Every key of packages/mbdpo-core/src/mbdpo_core/config/default.yaml can be overridden.
Examples:
    uv run apps/train --backend torch
    uv run apps/train --backend jax task=cartpole-balance preset=cpu steps=20000 seed=1
    uv run apps/train --backend torch run_dir=runs/my-run resume=true
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mbdpo_core.backends import BACKENDS, load_backend
from mbdpo_core.config import load_config, parse_overrides
from mbdpo_core.errors import MbdpoError
from mbdpo_core.logger import Logger
from mbdpo_core.loops import (
    Checkpointer,
    EpisodeEvaluator,
    OnlineTrainer,
    Progress,
    make_replay,
)
from mbdpo_core.rundir import default_run_dir, resume_config, write_config


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="apps/train", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="torch",
        help="deep-learning backend (default: torch)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        explicit = parse_overrides(args.overrides)
        backend = load_backend(args.backend)
        cfg = load_config(explicit, gpu_available=backend.gpu_available(), backend=args.backend)
        if cfg.resume:
            if cfg.run_dir is None:
                raise MbdpoError("resume=true needs run_dir=PATH of the run to continue.")
            cfg = resume_config(Path(cfg.run_dir), cfg, explicit)
        if cfg.multitask:
            raise MbdpoError(
                f"task={cfg.task} is a multi-task set; online training takes a single task. "
                "Multi-task training is offline (mt30/mt80 datasets)."
            )
        from mbdpo_envs import make

        run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
        for note in cfg.notes:
            print(f"[mbdpo] {note}")
        print(
            f"[mbdpo] backend={cfg.backend} task={cfg.task} preset={cfg.preset} "
            f"model_size={cfg.model_size} planner={cfg.planner} steps={cfg.steps} "
            f"seed={cfg.seed}"
        )
        print(f"[mbdpo] run directory: {run_dir}")
        write_config(run_dir, cfg)
        agent = backend.Agent(cfg)
        task = cfg.tasks[0]
        env = make(task, cfg.seed, obs=cfg.obs)
        eval_env = make(task, cfg.seed + 1, obs=cfg.obs)
        trainer = OnlineTrainer(
            cfg,
            agent,
            env,
            replay=make_replay(cfg),
            evaluator=EpisodeEvaluator({task: eval_env}, cfg.eval_episodes, cfg.seed),
            logger=Logger(run_dir),
            checkpoints=Checkpointer(run_dir),
            progress=Progress(cfg.steps, desc=task),
        )
        if cfg.resume and trainer.restore():
            print(f"[mbdpo] resumed at step {trainer.state.step}")
        result = trainer.run()
    except MbdpoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float | int))
    print(f"[mbdpo] done: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
