"""The online training loop (single task), framework-neutral: it talks to an Agent, an env
factory, a ReplayBuffer and a Logger only (anatomy 5.4, with our resume-exact checkpoints).

Order of one environment step: act (uniform random during the first `seed_steps` steps), step
the env, record; from step `seed_steps` on, update (a one-off burst of `seed_steps` updates, then
one per step). At an episode boundary: store the episode, evaluate if an evaluation fell due,
checkpoint if one fell due, reset. Checkpoints are written only at episode boundaries and
every episode's reset is seeded from (seed, episode index), so `resume=true` continues exactly
as the uninterrupted run would have.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .buffer import EpisodeRecorder, ReplayBuffer
from .checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from .config.schema import Config
from .logger import Logger
from .protocols import Agent

EnvFactory = Callable[[str, int], Any]
"""(task name, seed) -> env with reset(seed=...) and step(action)."""

_TRAIN, _EVAL = 0, 1


def episode_seed(seed: int, stream: int, index: int) -> int:
    """A reset seed for episode `index` of `stream` (train/eval), independent of history."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


@dataclass
class LoopState:
    """Counters that, with the agent and the buffer, make a run resumable."""

    step: int = 0
    episode: int = 0
    updates: int = 0
    rng: np.random.Generator = field(default_factory=np.random.default_rng)

    def to_meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "episode": self.episode,
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> LoopState:
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]
        return cls(meta["step"], meta["episode"], meta["updates"], rng)


def evaluate(
    agent: Agent,
    env: Any,
    episodes: int,
    seed: int,
    task: int | None = None,
) -> dict[str, float]:
    """Run `episodes` deterministic (eval_mode) episodes; mean return, final success, length."""
    returns, successes, lengths = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=episode_seed(seed, _EVAL, i))
        done, total, length, info = False, 0.0, 0, {}
        while not done:
            action = agent.act(obs, t0=length == 0, eval_mode=True, task=task)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        successes.append(float(info.get("success", 0.0)))
        lengths.append(length)
    return {
        "episode_reward": float(np.mean(returns)),
        "episode_success": float(np.mean(successes)),
        "episode_length": float(np.mean(lengths)),
    }


def checkpoint_due(step: int, every: int) -> bool:
    return every > 0 and step > 0 and step % every == 0


class OnlineTrainer:
    """Trains `agent` online on cfg.tasks[0]: eval.csv, train.csv, TensorBoard, checkpoints."""

    def __init__(
        self,
        cfg: Config,
        agent: Agent,
        make_env: EnvFactory,
        run_dir: str | Path,
        logger: Logger | None = None,
        progress: bool | None = None,
    ):
        self.cfg, self.agent, self.run_dir = cfg, agent, Path(run_dir)
        self.env = make_env(cfg.tasks[0], cfg.seed)
        self.eval_env = make_env(cfg.tasks[0], cfg.seed + 1)
        self.buffer = ReplayBuffer(
            capacity=cfg.buffer_size,  # independent of steps, so a resumed run samples alike
            obs_shape=cfg.obs_shape,
            action_dim=cfg.action_dim,
            obs_dtype=np.uint8 if cfg.obs == "rgb" else np.float32,
            seed=cfg.seed,
        )
        self.logger = logger or Logger(self.run_dir)
        self.state = LoopState(rng=np.random.default_rng(cfg.seed))
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.last_eval: dict[str, float] = {}

    # --- checkpoints -------------------------------------------------------------------------
    def save(self) -> Path:
        """Checkpoint agent, loop counters and replay at the current (episode-boundary) step."""
        step = self.state.step
        path = checkpoint_path(self.run_dir, step)
        arrays, meta = self.agent.state_dict()
        meta = {**meta, "loop": self.state.to_meta(), "last_eval": self.last_eval}
        buf_arrays, buf_meta = self.buffer.state_dict()
        save_checkpoint(self._replay_path(step), buf_arrays, {**buf_meta, "step": step})
        save_checkpoint(path, arrays, meta)
        for old in path.parent.glob("replay_step_*"):  # keep only the newest replay snapshot
            if old.name.split(".")[0] != self._replay_path(step).name:
                old.unlink()
        return path

    def _replay_path(self, step: int) -> Path:
        return self.run_dir / "checkpoints" / f"replay_step_{step}"

    def restore(self) -> bool:
        """Load the latest checkpoint of run_dir, if any; True when a run was resumed."""
        path = latest_checkpoint(self.run_dir)
        if path is None:
            return False
        arrays, meta = load_checkpoint(path)
        buf_arrays, buf_meta = load_checkpoint(self._replay_path(meta["loop"]["step"]))
        self.agent.load_state_dict(arrays, meta)
        self.buffer.load_state_dict(buf_arrays, buf_meta)
        self.state = LoopState.from_meta(meta["loop"])
        self.last_eval = meta.get("last_eval", {})
        self.logger.truncate_after(self.state.step)
        return True

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        """Train until cfg.steps; returns the last evaluation's metrics."""
        cfg, st = self.cfg, self.state
        bar = self._progress_bar()
        eval_due = cfg.eval_freq > 0 and st.step % cfg.eval_freq == 0
        eval_due &= not self._evaluated_at(st.step)  # a resumed run evaluated before saving
        save_due, done, recorder = False, True, None
        episode_metrics: list[dict[str, float]] = []
        t_start, step_start = time.perf_counter(), st.step
        obs = None
        while True:
            if done:
                if recorder is not None:
                    self._end_episode(recorder, episode_metrics)
                    episode_metrics = []
                if eval_due or st.step >= cfg.steps and not self._evaluated_at(st.step):
                    self._evaluate(bar)
                    eval_due = False
                if save_due or st.step >= cfg.steps:
                    self.save()
                    save_due = False
                if st.step >= cfg.steps:
                    break
                obs, _ = self.env.reset(seed=episode_seed(cfg.seed, _TRAIN, st.episode))
                recorder = EpisodeRecorder(obs)
                st.episode += 1
            if st.step < cfg.seed_steps:
                action = st.rng.uniform(-1, 1, cfg.action_dim).astype(np.float32)
            else:
                action = self.agent.act(obs, t0=len(recorder) == 0, eval_mode=False)
            obs, reward, terminated, truncated, info = self.env.step(action)
            recorder.add(action, reward, terminated, obs, info)
            done = bool(terminated or truncated)
            if st.step >= cfg.seed_steps:
                for _ in range(cfg.seed_steps if st.step == cfg.seed_steps else 1):
                    batch = self.buffer.sample(cfg.batch_size, cfg.horizon)
                    episode_metrics.append(self.agent.update(batch))
                    st.updates += 1
            st.step += 1
            eval_due |= cfg.eval_freq > 0 and st.step % cfg.eval_freq == 0
            save_due |= checkpoint_due(st.step, cfg.save_every)
            if bar is not None:
                bar.update(1)
            elif st.step % self.status_every == 0:
                self._print_status(t_start, step_start)
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t_start
        self.logger.close()
        return {
            **self.last_eval,
            "wall_time_s": elapsed,
            "steps_per_s": (st.step - step_start) / max(elapsed, 1e-9),
        }

    @property
    def status_every(self) -> int:
        """Steps between status lines when there is no progress bar (logs, nohup, CI)."""
        return max(self.cfg.steps // 20, 500)

    def _print_status(self, t_start: float, step_start: int) -> None:
        st, elapsed = self.state, time.perf_counter() - t_start
        rate = (st.step - step_start) / max(elapsed, 1e-9)
        eta = (self.cfg.steps - st.step) / max(rate, 1e-9)
        last = self.last_eval.get("episode_reward")
        print(
            f"step {st.step:,}/{self.cfg.steps:,}  {rate:.1f} steps/s  ETA {eta / 60:.0f} min"
            + (f"  last eval {last:.1f}" if last is not None else ""),
            flush=True,
        )

    def _evaluated_at(self, step: int) -> bool:
        return self.last_eval.get("step") == step

    def _end_episode(self, recorder: EpisodeRecorder, metrics: list[dict[str, float]]) -> None:
        episode = recorder.finish()
        self.buffer.add(episode)
        row = {
            "episode": self.state.episode,
            "episode_reward": float(np.nansum(episode["reward"])),
            "episode_success": recorder.success,
            "episode_length": len(recorder),
        }
        if metrics:
            row.update({k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]})
        self.logger.log("train", self.state.step, row)

    def _evaluate(self, bar: Any) -> None:
        result = evaluate(
            self.agent,
            self.eval_env,
            self.cfg.eval_episodes,
            episode_seed(self.cfg.seed, _EVAL, self.state.step),
        )
        self.logger.log("eval", self.state.step, result)
        self.last_eval = {"step": self.state.step, **result}
        if bar is not None:
            bar.set_postfix(eval_return=f"{result['episode_reward']:.1f}", refresh=False)

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        bar = tqdm(
            total=self.cfg.steps,
            initial=self.state.step,
            unit="step",
            dynamic_ncols=True,
            desc=self.cfg.tasks[0],
            smoothing=0.05,
        )
        if self.last_eval:
            bar.set_postfix(eval_return=f"{self.last_eval['episode_reward']:.1f}")
        return bar
