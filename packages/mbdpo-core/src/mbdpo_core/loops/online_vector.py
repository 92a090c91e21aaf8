"""The online loop over N = cfg.num_envs environments of one task
(docs/design.md#vectorised-acting).

A vector step acts in all N environments at once (uniform random actions while its first step
is <= `seed_steps`, then one batched planner call, `agent.act_envs`), steps them in their worker
processes and records N episodes. `step` counts environment steps: a vector step advances it by
N and owes the updates of its N environment steps (the burst of `seed_steps` at step
`seed_steps`, then `updates_per_step` per step), paid before the next vector step. The N
environments reset together, environment n of the vector episode that starts episode e with the
seed of episode e + n, and their episodes end together (fixed-length episodes, as DMControl's;
anything else is an error); the N episodes then enter the replay as separate episodes, each
with its train row. An evaluation or a checkpoint falls due when `step` passes a multiple of
`eval_freq` / `save_every` and happens at the next boundary of all N episodes.

Resume: a checkpoint written at a boundary continues exactly; one written mid-episode (the end
of the run, a stop request) holds the N running episodes and the agent's per-env warm starts,
and restoring resets every environment with its seed and replays its actions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..buffer import EpisodeRecorder
from .online import OnlineTrainer
from .seeds import TRAIN, episode_seed

__all__ = ["VectorOnlineTrainer"]


class VectorOnlineTrainer(OnlineTrainer):
    """OnlineTrainer over `env`, a gymnasium vector env of cfg.num_envs environments
    (`reset(seed=[N seeds])`, `step(actions [N, A])` with gymnasium's vector results, e.g.
    mbdpo_envs.make_vector_env); the agent also has `act_envs` and `env_plans`.
    Arguments as OnlineTrainer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.num_envs = self.cfg.num_envs
        self.steady_updates = self.cfg.updates_per_step * self.num_envs
        self.recorder: list[EpisodeRecorder] | None = None  # the N running episodes

    def _owed(self, first: int) -> int:
        """Updates owed by the vector step of environment steps first .. first + N - 1."""
        cfg, n = self.cfg, self.num_envs
        if not cfg.seed_steps:  # once the replay holds an episode
            return cfg.updates_per_step * n * int(self.state.episode > n)
        owed = {cfg.seed_steps: cfg.seed_steps}  # the burst; earlier steps owe nothing
        steps = range(max(first, cfg.seed_steps), first + n)
        return sum(owed.get(k, cfg.updates_per_step) for k in steps)

    def _env_step(self) -> None:
        cfg, st, n = self.cfg, self.state, self.num_envs
        if self.recorder is None:
            seeds = [episode_seed(cfg.seed, TRAIN, st.episode + i) for i in range(n)]
            self.obs, _ = self.env.reset(seed=seeds)
            self.recorder, self.done = [EpisodeRecorder(o, self.task) for o in self.obs], False
            st.episode += n
        if cfg.seed_steps and st.step <= cfg.seed_steps:
            self._enter("seeding", min(cfg.seed_steps + 1, cfg.steps) - st.step)
            actions = st.rng.uniform(-1, 1, (n, cfg.action_dim)).astype(np.float32)
        else:
            self._enter("training", cfg.steps - st.step)
            t0 = np.full(n, len(self.recorder[0]) == 0)
            actions = self.agent.act_envs(self.obs, t0, eval_mode=False, task=self.task)
        self.obs, reward, terminated, truncated, info = self.env.step(actions)
        success = info.get("success", np.zeros(n))
        for i, recorder in enumerate(self.recorder):
            recorder.add(actions[i], reward[i], terminated[i], self.obs[i], {"success": success[i]})
        ended = np.logical_or(terminated, truncated)
        if ended.any() and not ended.all():
            raise RuntimeError(
                f"num_envs={n}: episodes ended at different steps (ended: {ended.tolist()}); "
                "vectorised acting needs episodes of one fixed length (use num_envs=1)."
            )
        self.done = bool(ended.all())
        st.updates_due = self._owed(st.step)
        before, st.step = st.step, st.step + n
        st.eval_due |= cfg.eval_freq > 0 and st.step // cfg.eval_freq > before // cfg.eval_freq
        st.save_due |= cfg.save_every > 0 and st.step // cfg.save_every > before // cfg.save_every
        if st.updates_due <= self.steady_updates:
            self.progress.advance(st.step, n)

    def _end_episode(self) -> None:
        st, metrics = self.state, self.episode_metrics
        means = {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]} if metrics else {}
        columns = self.clock.columns("train", st.step)
        first = st.episode - self.num_envs
        for i, recorder in enumerate(self.recorder):
            episode = recorder.finish()
            self.replay.add(episode)
            row = {
                "episode": first + i + 1,
                "episode_reward": float(np.nansum(episode["reward"])),
                "episode_success": recorder.success,
                "episode_length": len(recorder),
            }
            self.logger.log("train", st.step, {**row, **means, **columns})
        self.recorder, self.episode_metrics = None, []

    def _episode_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
        """The N running episodes' rows [N, ...] and the agent's warm starts [N, H, A]."""
        if self.recorder is None:
            return {}, None
        rows = [recorder.finish() for recorder in self.recorder]
        arrays = {
            "episode/obs": np.stack([r["obs"] for r in rows]),
            "episode/action": np.stack([r["action"][1:] for r in rows]),
            "episode/reward": np.stack([r["reward"][1:] for r in rows]),
        }
        plans = self.agent.env_plans
        if plans is not None:
            arrays["episode/env_plans"] = plans
        keys = list(self.episode_metrics[0]) if self.episode_metrics else []
        metrics = {k: [float(m[k]) for m in self.episode_metrics] for k in keys}
        return arrays, {"metrics": metrics}

    def _resume_episode(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Rebuild the N running episodes: reset with their seeds, replay their actions."""
        n, first = self.num_envs, self.state.episode - self.num_envs
        seeds = [episode_seed(self.cfg.seed, TRAIN, first + i) for i in range(n)]
        obs, _ = self.env.reset(seed=seeds)
        recorded, done = arrays["episode/obs"], False
        for i in range(n):
            self._check_replayed(obs[i], recorded[i, 0], first + i, 0)
        recorders = [EpisodeRecorder(o, self.task) for o in obs]
        actions = arrays["episode/action"]
        for t in range(actions.shape[1]):
            obs, reward, terminated, truncated, info = self.env.step(actions[:, t])
            success = info.get("success", np.zeros(n))
            for i, recorder in enumerate(recorders):
                self._check_replayed(obs[i], recorded[i, t + 1], first + i, t + 1)
                recorder.add(
                    actions[i, t], reward[i], terminated[i], obs[i], {"success": success[i]}
                )
            done = bool(np.logical_or(terminated, truncated).all())
        self.recorder, self.obs, self.done = recorders, obs, done
        if "episode/env_plans" in arrays:
            self.agent.env_plans = arrays["episode/env_plans"]
        self._restore_metrics(meta)
