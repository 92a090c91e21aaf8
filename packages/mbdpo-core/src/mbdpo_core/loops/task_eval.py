"""Evaluation of many tasks, in this process or in worker processes (docs/design.md#evaluation).

`TaskEvaluator` runs the same episodes as `EpisodeEvaluator`: at loop step s, every task's
episodes reset from `episode_seed(cfg.seed, EVAL, s)` (see `run_episodes`), and before each task
the agent's state is put back to what it was on entry, so a task's result depends neither on the
tasks evaluated before it nor on the process that evaluates it: one worker and N workers give
the same numbers.

With `workers > 1` the tasks are split round-robin over that many spawned processes (at most one
per task), started on first use and kept until `close()`. Each builds its backend's agent and its
tasks' environments once; per evaluation it receives the agent's state (without the optimiser
moments, which acting never reads) and sends back each task's metrics as it finishes. A task
given a video path is filmed where it is evaluated: a worker writes the mp4 itself.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import load_backend
from ..config.schema import Config
from ..errors import ConfigError, MbdpoError
from ..protocols import Agent
from ..scores import summarise
from .evaluation import EVAL_METRICS, run_episodes
from .seeds import EVAL, episode_seed

__all__ = ["TaskEvaluator", "EvaluationWorkerError", "task_id"]

MakeEnv = Callable[[Config, str, int], Any]
"""make_env(cfg, task, seed) -> the task's environment as the agent of cfg sees it."""

_OPTIM_PREFIX = "optim/"
_SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


class EvaluationWorkerError(RuntimeError):
    """A worker process failed or died; the message carries its traceback or exit code."""


def task_id(cfg: Config, task: str) -> int | None:
    """The id the agent of `cfg` takes for `task`: its last index in cfg.tasks for a multi-task
    agent (a task appended by fine-tuning has its own, newest row), None for a single-task one.

    Raises:
        ConfigError: `task` is not one of cfg.tasks (the message lists them).
    """
    if task not in cfg.tasks:
        raise ConfigError(
            f"Task {task!r} is not a task of this agent (task={cfg.task}); valid: "
            f"{', '.join(cfg.tasks)}."
        )
    return len(cfg.tasks) - 1 - cfg.tasks[::-1].index(task) if cfg.multitask else None


class TaskEvaluator:
    """Evaluates an agent on several tasks (an `Evaluator`).

    Args:
        cfg: the agent's config (seed, tasks, backend for the workers).
        tasks: the tasks to evaluate, each one of cfg.tasks; results come in this order.
        episodes: episodes per task and evaluation.
        make_env: make_env(cfg, task, seed), a top-level function (workers receive it pickled),
            e.g. `mbdpo_envs.make_agent_env`; called once per task with seed cfg.seed.
        workers: 1 evaluates in this process with the given agent; N > 1 in min(N, len(tasks))
            spawned processes (one task in one worker included), each building
            `load_backend(cfg.backend).Agent(cfg)`.

    Raises:
        ConfigError: no tasks, a repeated or unknown task, episodes or workers below 1.
    """

    def __init__(
        self,
        cfg: Config,
        tasks: Sequence[str],
        episodes: int,
        make_env: MakeEnv,
        workers: int = 1,
    ) -> None:
        tasks = list(tasks)
        if not tasks:
            raise ConfigError("TaskEvaluator needs at least one task.")
        if len(set(tasks)) != len(tasks):
            raise ConfigError(f"Tasks to evaluate are repeated: {', '.join(tasks)}.")
        for name, value in (("episodes", episodes), ("workers", workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"TaskEvaluator {name} must be an int >= 1, got {value!r}.")
        self.cfg, self.tasks, self.episodes, self.make_env = cfg, tasks, episodes, make_env
        self.task_ids = {t: task_id(cfg, t) for t in tasks}
        self.workers = workers
        self._envs: dict[str, Any] = {}
        self._pool: _Pool | None = None

    # ----- Evaluator ----------------------------------------------------------------------
    def per_task(
        self,
        agent: Agent,
        step: int,
        on_step: Callable[[], None] | None = None,
        videos: Mapping[str, Path] | None = None,
    ) -> dict[str, dict[str, float]]:
        """Task name -> its EVAL_METRICS at loop step `step`, in `tasks` order.

        `on_step()` is called after every environment step with one worker, after every
        finished task with several. `videos`: task name -> the mp4 its first episode is filmed
        into (`run_episodes`). The agent's state is as on entry afterwards.
        """
        videos = {task: Path(path) for task, path in (videos or {}).items()}
        if self.workers == 1:
            return self._here(agent, step, on_step, videos)
        arrays, meta = agent.state_dict()
        if self._pool is None:
            size = min(self.workers, len(self.tasks))
            self._pool = _Pool(self.cfg, self.tasks, self.episodes, self.make_env, size)
        try:
            results = self._pool.evaluate(_acting_state(arrays), meta, step, on_step, videos)
        except BaseException:
            # an evaluation stopped halfway leaves workers busy and replies in the pipes
            pool, self._pool = self._pool, None
            pool.close(wait_s=0.0)
            raise
        return {t: results[t] for t in self.tasks}

    def evaluate(
        self,
        agent: Agent,
        step: int,
        on_step: Callable[[], None] | None = None,
        videos: Mapping[str, Path] | None = None,
    ) -> dict[str, float]:
        """`summarise(per_task)`, plus `<task>/<metric>` for each task when there are several;
        `videos` as in per_task."""
        results = self.per_task(agent, step, on_step, videos)
        row = summarise(results)
        if len(results) > 1:
            row.update({f"{name}/{k}": r[k] for name, r in results.items() for k in EVAL_METRICS})
        return row

    def close(self) -> None:
        """Stop the worker processes and close the environments (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        envs, self._envs = self._envs, {}
        for env in envs.values():
            env.close()

    def __enter__(self) -> TaskEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- in this process ----------------------------------------------------------------
    def _here(
        self,
        agent: Agent,
        step: int,
        on_step: Callable[[], None] | None,
        videos: dict[str, Path],
    ) -> dict[str, dict[str, float]]:
        state = agent.state_dict()
        seed = episode_seed(self.cfg.seed, EVAL, step)
        results = {}
        try:
            for i, task in enumerate(self.tasks):
                if i:
                    agent.load_state_dict(*state)
                if task not in self._envs:
                    self._envs[task] = self.make_env(self.cfg, task, self.cfg.seed)
                env, video = self._envs[task], videos.get(task)
                results[task] = run_episodes(
                    agent, env, self.episodes, seed, self.task_ids[task], on_step, video
                )
        finally:
            agent.load_state_dict(*state)
        return results


def _acting_state(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The state arrays without the optimiser moments (a worker keeps its own zeros)."""
    return {k: v for k, v in arrays.items() if not k.startswith(_OPTIM_PREFIX)}


class _Pool:
    """Worker processes, each owning a fixed round-robin shard of the tasks."""

    def __init__(
        self, cfg: Config, tasks: list[str], episodes: int, make_env: MakeEnv, workers: int
    ) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.shards = [tasks[i::workers] for i in range(workers)]
        self.conns: list[Connection] = []
        self.procs = []
        try:
            for shard in self.shards:
                payload = pickle.dumps((cfg, shard, episodes, make_env))
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, payload), daemon=True)
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
            for i in range(workers):
                self._expect(i, "ready")
        except BaseException:
            self.close()
            raise

    def evaluate(
        self,
        arrays: dict[str, np.ndarray],
        meta: dict[str, Any],
        step: int,
        on_step: Callable[[], None] | None,
        videos: dict[str, Path],
    ) -> dict[str, dict[str, float]]:
        message = pickle.dumps((arrays, meta, step, videos), protocol=pickle.HIGHEST_PROTOCOL)
        for conn in self.conns:
            conn.send_bytes(message)
        results: dict[str, dict[str, float]] = {}
        busy = dict(enumerate(self.conns))
        while busy:
            for conn in wait(list(busy.values())):
                i = self.conns.index(conn)
                kind, *body = self._receive(i)
                if kind == "done":
                    del busy[i]
                    continue
                if kind != "task":
                    raise EvaluationWorkerError(f"evaluation worker {i} sent {kind!r}.")
                name, metrics = body
                results[name] = metrics
                if on_step is not None:
                    on_step()
        return results

    def close(self, wait_s: float = 5.0) -> None:
        """Ask every worker to stop; those still running after `wait_s` seconds (in all) are
        terminated (at once with wait_s=0, e.g. when an evaluation was interrupted)."""
        for conn in self.conns:
            try:
                conn.send_bytes(pickle.dumps(None))
            except OSError:
                pass
        deadline = time.monotonic() + wait_s
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()
        self.conns, self.procs = [], []

    def _receive(self, i: int) -> tuple:
        try:
            reply = self.conns[i].recv()
        except (EOFError, OSError):
            proc = self.procs[i]
            proc.join(timeout=5)
            raise EvaluationWorkerError(
                f"evaluation worker {i} (pid {proc.pid}, tasks {', '.join(self.shards[i])}) "
                f"exited with code {proc.exitcode} without replying."
            ) from None
        if reply[0] == "error":
            _, error, trace = reply
            if isinstance(error, MbdpoError):
                raise error
            raise EvaluationWorkerError(
                f"evaluation worker {i} (tasks {', '.join(self.shards[i])}) failed:\n{trace}"
            )
        return reply

    def _expect(self, i: int, kind: str) -> None:
        reply = self._receive(i)
        if reply[0] != kind:
            raise EvaluationWorkerError(f"evaluation worker {i} sent {reply[0]!r}, not {kind!r}.")


def _single_thread() -> None:
    """One intra-op thread for torch (OpenMP) and XLA, set before the backend is imported;
    JAX allocates GPU memory as needed, so that several workers share a GPU."""
    os.environ["OMP_NUM_THREADS"] = "1"
    flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_SINGLE_THREAD_XLA}".strip()
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def _send_error(conn: Connection, err: BaseException) -> None:
    trace = traceback.format_exc()
    try:
        pickle.loads(pickle.dumps(err))
        conn.send(("error", err, trace))
    except Exception:
        conn.send(("error", None, trace))


def _worker(conn: Connection, payload: bytes) -> None:
    """A worker process: build the agent and the shard's environments once, then evaluate
    the shard for every state received, until None arrives or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    _single_thread()
    try:
        cfg, shard, episodes, make_env = pickle.loads(payload)
        backend = load_backend(cfg.backend)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        agent = backend.Agent(cfg)
        optim = {k: v for k, v in agent.state_dict()[0].items() if k.startswith(_OPTIM_PREFIX)}
        envs = {task: make_env(cfg, task, cfg.seed) for task in shard}
        ids = {task: task_id(cfg, task) for task in shard}
    except BaseException as err:
        _send_error(conn, err)
        conn.close()
        return
    conn.send(("ready",))
    try:
        while True:
            try:
                message = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break
            if message is None:
                break
            arrays, meta, step, videos = message
            state = ({**arrays, **optim}, meta)
            seed = episode_seed(cfg.seed, EVAL, step)
            try:
                for task in shard:
                    agent.load_state_dict(*state)
                    env, video = envs[task], videos.get(task)
                    metrics = run_episodes(agent, env, episodes, seed, ids[task], None, video)
                    conn.send(("task", task, metrics))
            except BaseException as err:
                _send_error(conn, err)
                continue
            conn.send(("done",))
    finally:
        for env in envs.values():
            env.close()
        conn.close()
