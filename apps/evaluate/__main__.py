"""Score a checkpoint: `uv run apps/evaluate [--backend torch|jax] checkpoint=PATH key=value ...`.

PATH is a checkpoint written by apps/train with either backend (`<run>/checkpoints/step_N`, with
or without its .json / .safetensors suffix) or a run directory (its newest checkpoint). The
agent's config is the checkpoint's; the keys below change how it is evaluated:

  format=F            native (default: this project's checkpoint) | tdmpc2 | mbdpo: a published
                      .pt file (TD-MPC2's or MBDPO's torch.save), evaluated at loop step 0. It
                      has no saved config: its task set is read from its task embedding (80
                      rows: mt80, 30: mt30; none: single-task, then task=NAME is its task),
                      model_size from its widths, obs and episodic from its heads, and any key
                      of default.yaml that describes its model may be given (model_size=,
                      mt30_dims=, mlp_dim=, ...; preset: paper); docs/design.md#fine-tuning

  task=NAME|SET       a task of the checkpoint, or a task set (mt30, mt80, dmcontrol,
                      metaworld, ...) whose tasks it all has, or several of these separated
                      by spaces (task='walker-walk cheetah-run'); default: every task it has
                      (a fine-tuned agent: the task it was fine-tuned on)
  eval_episodes=N     episodes per task (default: the checkpoint's eval_episodes)
  planner=P           diffusion | mppi | policy (default: the checkpoint's)
  seed=S              seed of the evaluation episodes (default: the checkpoint's seed)
  eval_workers=N      processes evaluating tasks in parallel (default 0: one per CPU core;
                      never more than there are tasks; 1 = this process)
  device=D            where the agent runs (default auto: a GPU if the backend sees one)
  out=PATH            output stem (default: `<checkpoint>.eval` beside the checkpoint)
  save_video=true     one mp4 per task (its first episode, filmed as it is evaluated, 384x384)
                      in `<out>.videos/`; no TensorBoard (apps/evaluate writes no events)
  overwrite=true      replace existing outputs

Writes `<out>.csv` (one row per task: task, suite, episode_reward, episode_success,
episode_length, normalised_score) and `<out>.json` (per task, the summary with per-suite means,
and what was evaluated how). The normalised score is success x 100 for Meta-World tasks and
return / 10 for the others. The episodes at a checkpoint of loop step s reset as the run's own
evaluation at step s did (docs/design.md#evaluation).
Examples:
    uv run apps/evaluate checkpoint=runs/cartpole-balance/torch-seed1-x/checkpoints/step_100000
    uv run apps/evaluate --backend jax checkpoint=runs/mt30/ckpt/step_200000 task=walker-walk
    uv run apps/evaluate checkpoint=RUN_DIR planner=mppi eval_episodes=10 save_video=true
    uv run apps/evaluate checkpoint=mt80-317M.pt format=tdmpc2 task=walker-walk planner=mppi
    uv run apps/evaluate checkpoint=walker-run-1.pt format=tdmpc2 task=walker-run
Exit status: 0 done; 1 a failure while evaluating or writing; 2 bad input (nothing written);
130/143 interrupted (nothing written).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import errno
import io
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mbdpo_core import tasks as task_registry
from mbdpo_core.agent_state import load_params
from mbdpo_core.backends import BACKENDS, load_backend
from mbdpo_core.checkpoint import checkpoint_stem, load_checkpoint
from mbdpo_core.config.load import config_from_dict, parse_overrides
from mbdpo_core.config.schema import Config
from mbdpo_core.config.validate import check_checkpoint_format, check_choice
from mbdpo_core.errors import CheckpointError, ConfigError, MbdpoError, suggest
from mbdpo_core.loops import EXIT_CODES, TaskEvaluator
from mbdpo_core.loops.evaluation import EVAL_METRICS
from mbdpo_core.loops.task_eval import EvaluationWorkerError
from mbdpo_core.scores import normalised_score, summarise
from mbdpo_core.video import check_video_support

KEYS = (
    "checkpoint",
    "format",
    "task",
    "eval_episodes",
    "planner",
    "seed",
    "eval_workers",
    "device",
    "out",
    "save_video",
    "overwrite",
)
"""The keys apps/evaluate takes."""
CSV_COLUMNS = ("task", "suite", *EVAL_METRICS, "normalised_score")


@dataclasses.dataclass(frozen=True)
class Request:
    """What to evaluate and where to write, checked before anything is built or written."""

    checkpoint: Path  # the stem; a published checkpoint's .pt file
    arrays: dict  # format=native: the checkpoint's arrays; else canonical parameters
    meta: dict  # format=native: the checkpoint's meta; else {"format", "notes"}
    cfg: Config
    tasks: list[str]
    step: int
    workers: int
    out: Path  # the stem
    save_video: bool

    def outputs(self) -> list[Path]:
        files = [self.out.with_name(self.out.name + s) for s in (".csv", ".json")]
        return files + [self.video(t) for t in self.tasks] if self.save_video else files

    def video(self, task: str) -> Path:
        return self.out.with_name(self.out.name + ".videos") / f"{task}.mp4"

    def videos(self) -> dict[str, Path] | None:
        """Task -> its mp4 with save_video=true, else None."""
        return {t: self.video(t) for t in self.tasks} if self.save_video else None

    @property
    def format(self) -> str:
        return self.meta.get("format", "native")

    def restore(self, agent: Any) -> None:
        """Give `agent` the checkpoint's state (a published one's: its parameters, the rest
        fresh)."""
        if self.format == "native":
            agent.load_state_dict(self.arrays, self.meta)
        else:
            load_params(agent, self.arrays)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="apps/evaluate",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default=None,
        help="deep-learning backend (default: the checkpoint's)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=", ".join(KEYS))
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return evaluate(args)
    except MbdpoError as err:  # bad input, found before anything is written
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except EvaluationWorkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        hint = " (the disk is full)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        print(
            f"error: cannot write {err.filename or 'the outputs'}: {err.strerror}{hint}.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as err:
        name = "SIGTERM" if str(err) == "SIGTERM" else "SIGINT"
        print(
            f"\n[mbdpo] interrupted by {name}; every file written so far is complete (each is "
            "written whole or not at all).",
            file=sys.stderr,
        )
        return EXIT_CODES[name]


def one_line(err: BaseException) -> str:
    """An error message on one line (a shape mismatch lists one name per line)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


# ----- arguments ------------------------------------------------------------------------------
def parse_keys(overrides: list[str]) -> tuple[dict[str, str], list[str]]:
    """`key=value` strings -> ({key: value} of KEYS, the other `key=value` strings: config keys
    describing a published checkpoint's model). Other keys with format=native, repeated or
    malformed keys are errors."""
    values: dict[str, str] = {}
    model: list[str] = []
    for text in overrides:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"Argument {text!r} is not of the form key=value.")
        if key not in KEYS:
            model.append(text)
            continue
        if key in values:
            raise ConfigError(f"{key}= is given twice.")
        values[key] = value
    if model and values.get("format", "native") == "native":
        key = model[0].partition("=")[0]
        raise ConfigError(
            f"Unknown key {key!r}.{suggest(key, KEYS)} Valid keys: {', '.join(KEYS)} (and, with "
            "format=tdmpc2|mbdpo, the config keys describing the model)."
        )
    if "checkpoint" not in values:
        raise ConfigError("checkpoint=PATH is required (a checkpoint or a run directory).")
    return values, model


def _int(key: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"Invalid {key}={text!r}: must be an integer.") from None
    if value < minimum:
        raise ConfigError(f"Invalid {key}={value}: must be >= {minimum}.")
    return value


def _bool(key: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ConfigError(f"Invalid {key}={text!r}: must be true or false.")
    return text.lower() == "true"


def resolve_tasks(cfg: Config, text: str | None) -> list[str]:
    """The tasks to evaluate: every task of cfg (a fine-tuning run's: its task), or the tasks and
    task sets named in `text` (separated by spaces), each within cfg's tasks; in the order
    named, without repeats."""
    if text is None:
        return [cfg.task] if cfg.mode == "finetune" else list(cfg.tasks)
    names = text.split()
    if not names:
        raise ConfigError("task= is empty; give a task, task set or names separated by spaces.")
    out: list[str] = []
    for name in names:
        out.extend(t for t in _named_tasks(cfg, name) if t not in out)
    return out


def _named_tasks(cfg: Config, name: str) -> list[str]:
    if name in task_registry.TASK_SETS and name not in task_registry.TASKS:
        wanted = task_registry.TASK_SETS[name]
        missing = [t for t in wanted if t not in cfg.tasks]
        if missing:
            listed = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise ConfigError(
                f"task={name}: {len(missing)} of its {len(wanted)} tasks ({listed}) are not "
                f"tasks of the checkpoint (task={cfg.task}). Its tasks: {', '.join(cfg.tasks)}."
            )
        return list(wanted)
    if name not in cfg.tasks:
        known = "" if name in task_registry.TASKS else " (not a registered task)"
        hint = suggest(name, cfg.tasks)
        raise ConfigError(
            f"task={name}{known} is not a task of the checkpoint (task={cfg.task}).{hint} "
            f"Valid: {', '.join(cfg.tasks)}, or a task set of them."
        )
    return [name]


def output_stem(text: str | None, checkpoint: Path) -> Path:
    """out=, else `<checkpoint>.eval` beside the checkpoint (a .pt file: without its suffix)."""
    if text is None:
        name = checkpoint.stem if checkpoint.suffix == ".pt" else checkpoint.name
        return checkpoint.with_name(name + ".eval")
    out = Path(text)
    for suffix in (".csv", ".json"):
        if out.name.endswith(suffix):
            return out.with_name(out.name[: -len(suffix)])
    return out


def check_outputs(request: Request, overwrite: bool) -> None:
    """The outputs do not exist (or may be replaced) and their folder can be written."""
    if not overwrite:
        for path in request.outputs():
            if path.exists():
                raise ConfigError(
                    f"{path} exists; give another out=PATH or overwrite=true to replace it."
                )
    folder = request.out.parent.absolute()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"out={request.out}: cannot write in {folder}.")


def read_native(values: dict[str, str]) -> tuple[Path, dict, dict, Config]:
    """(stem, arrays, meta, saved config) of this project's checkpoint."""
    stem = checkpoint_stem(Path(values["checkpoint"]))
    arrays, meta = load_checkpoint(stem)
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"checkpoint {stem} has no config in its meta: not an agent's.")
    return stem, arrays, meta, config_from_dict(meta["config"])


def read_published_checkpoint(
    values: dict[str, str], model: list[str], backend: str | None
) -> tuple[Path, dict, dict, Config]:
    """(path, canonical parameters, {"format", "notes"}, config) of a published checkpoint:
    the config from its shapes and the model keys (`published_config`)."""
    from mbdpo_data.published_checkpoint import (
        infer_model_size,
        published_config,
        read_published,
        to_canonical,
    )

    fmt, path = values["format"], values["checkpoint"]
    check_checkpoint_format(fmt, path)
    keys = parse_overrides(model)
    if "task" in values:
        keys["task"] = values["task"]
    state = read_published(path, fmt)
    cfg = published_config(
        {k: v.shape for k, v in state.items()},
        fmt,
        keys,
        model_size=infer_model_size(state),
        backend=backend or "torch",
    )
    params, notes = to_canonical(state, cfg)
    return Path(path), params, {"format": fmt, "notes": notes}, cfg


def build_request(
    values: dict[str, str], model: list[str], backend: str | None
) -> tuple[Request, bool]:
    """Everything checked that can be before the agent is built; (request, overwrite)."""
    if values.get("format", "native") == "native":
        stem, arrays, meta, saved = read_native(values)
    else:
        stem, arrays, meta, saved = read_published_checkpoint(values, model, backend)
    changes: dict[str, Any] = {"backend": backend or meta.get("backend") or "torch"}
    if "planner" in values:
        check_choice("planner", values["planner"])
        changes["planner"] = values["planner"]
    if "eval_episodes" in values:
        changes["eval_episodes"] = _int("eval_episodes", values["eval_episodes"], 1)
    if "seed" in values:
        changes["seed"] = _int("seed", values["seed"], 0)
    changes["device"] = values.get("device", "auto")
    if changes["backend"] not in BACKENDS:
        raise CheckpointError(
            f"checkpoint {stem} was written by backend {changes['backend']!r}; give --backend "
            f"{' or '.join(BACKENDS)}."
        )
    cfg = dataclasses.replace(saved, **changes)
    tasks = resolve_tasks(cfg, values.get("task"))
    workers = _int("eval_workers", values.get("eval_workers", "0"), 0) or os.cpu_count() or 1
    loop = meta.get("loop")
    step = loop.get("step", 0) if isinstance(loop, dict) else 0
    request = Request(
        checkpoint=stem,
        arrays=arrays,
        meta=meta,
        cfg=cfg,
        tasks=tasks,
        step=int(step),
        workers=min(workers, len(tasks)),
        out=output_stem(values.get("out"), stem),
        save_video=_bool("save_video", values.get("save_video", "false")),
    )
    if request.save_video:
        check_video_support("save_video=true")
    return request, _bool("overwrite", values.get("overwrite", "false"))


# ----- evaluation -----------------------------------------------------------------------------
def evaluate(args: argparse.Namespace) -> int:
    """Check everything, build the agent, evaluate, write; the exit status."""
    request, overwrite = build_request(*parse_keys(args.overrides), args.backend)
    check_outputs(request, overwrite)
    cfg = request.cfg
    if request.workers > 1:  # several processes may share a GPU: JAX takes memory as needed
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    backend = load_backend(cfg.backend)
    backend.use_compilation_cache()  # a second evaluation of the same shapes skips compiling
    agent = backend.Agent(cfg)
    request.restore(agent)
    from mbdpo_envs import make_agent_env

    origin = request.meta.get("backend", "?") if request.format == "native" else request.format
    print(
        f"[mbdpo] checkpoint {request.checkpoint} ({origin}, task={cfg.task}, "
        f"step {request.step:,})"
    )
    for note in request.meta.get("notes", []):
        print(f"[mbdpo] {note}")
    print(
        f"[mbdpo] backend={cfg.backend} planner={cfg.planner} episodes={cfg.eval_episodes} "
        f"seed={cfg.seed} tasks={len(request.tasks)} workers={request.workers}"
    )
    start = time.monotonic()
    with TaskEvaluator(
        cfg, request.tasks, cfg.eval_episodes, make_agent_env, request.workers
    ) as evaluator:
        per_task = evaluator.per_task(
            agent, request.step, on_step=progress(request), videos=request.videos()
        )
    elapsed = time.monotonic() - start
    print(report(per_task))
    write_results(request, per_task, elapsed)
    for path in (request.videos() or {}).values():
        print(f"[mbdpo] wrote {path}")
    return 0


def progress(request: Request) -> Callable[[], None]:
    """A status line when a task finishes (several workers) or every 30 s (one process)."""
    total = len(request.tasks) if request.workers > 1 else None
    state = {"done": 0, "shown": time.monotonic()}

    def on_step() -> None:
        now = time.monotonic()
        if total is not None:
            state["done"] += 1
            print(f"[mbdpo] evaluated {state['done']}/{total} tasks", flush=True)
        elif now - state["shown"] >= 30:
            state["shown"] = now
            print("[mbdpo] evaluating ...", flush=True)

    return on_step


def rows(per_task: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One CSV row per task."""
    return [
        {
            "task": task,
            "suite": task_registry.get(task).suite,
            **{k: m[k] for k in EVAL_METRICS},
            "normalised_score": normalised_score(task, m["episode_reward"], m["episode_success"]),
        }
        for task, m in per_task.items()
    ]


def suite_means(per_task: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """suite -> means of its tasks (and their number), suites in order of first appearance."""
    suites: dict[str, list[str]] = {}
    for task in per_task:
        suites.setdefault(task_registry.get(task).suite, []).append(task)
    return {
        suite: {**summarise({t: per_task[t] for t in names}), "tasks": len(names)}
        for suite, names in suites.items()
    }


def report(per_task: dict[str, dict[str, float]]) -> str:
    """The console table: per task, per suite, overall."""
    width = max(len(t) for t in per_task) + 2
    lines = [f"{'task':<{width}}{'suite':<11}{'return':>10}{'success':>9}{'score':>8}"]
    for r in rows(per_task):
        lines.append(
            f"{r['task']:<{width}}{r['suite']:<11}{r['episode_reward']:>10.1f}"
            f"{r['episode_success']:>9.2f}{r['normalised_score']:>8.2f}"
        )
    for suite, m in suite_means(per_task).items():
        name = f"{suite} mean ({m['tasks']})"
        lines.append(
            f"{name:<{width + 11}}{m['episode_reward']:>10.1f}{m['episode_success']:>9.2f}"
            f"{m['normalised_score']:>8.2f}"
        )
    overall = summarise(per_task)
    lines.append(
        f"normalised score: {overall['normalised_score']:.2f} (mean over {len(per_task)} tasks)"
    )
    return "\n".join(lines)


def write_results(request: Request, per_task: dict[str, dict[str, float]], elapsed: float) -> None:
    cfg = request.cfg
    table = rows(per_task)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    document = {
        "checkpoint": str(request.checkpoint),
        "checkpoint_backend": request.meta.get("backend"),
        "format": request.format,
        "backend": cfg.backend,
        "task": cfg.task,
        "planner": cfg.planner,
        "episodes": cfg.eval_episodes,
        "seed": cfg.seed,
        "step": request.step,
        "workers": request.workers,
        "wall_time_s": elapsed,
        "tasks": request.tasks,
        "per_task": {r["task"]: {k: v for k, v in r.items() if k != "task"} for r in table},
        "suites": suite_means(per_task),
        "summary": summarise(per_task),
    }
    if request.save_video:
        document["videos"] = {t: str(request.video(t)) for t in request.tasks}
    csv_file, json_file = request.outputs()[:2]
    atomic_write(csv_file, lambda tmp: tmp.write_text(text.getvalue()))
    atomic_write(json_file, lambda tmp: tmp.write_text(json.dumps(document, indent=1) + "\n"))
    print(f"[mbdpo] wrote {csv_file} and {json_file}")


def atomic_write(target: Path, write: Callable[[Path], object]) -> None:
    """write(tmp) to a temporary file beside target (same suffix), fsync, rename onto target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
