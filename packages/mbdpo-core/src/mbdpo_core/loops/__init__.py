"""Training loops and the parts they are composed of (docs/design.md#loops).

- `protocols`: what a loop needs from its parts (BatchSource, Replay, Stateful, Evaluator,
  RunLogger; DiscardingLogger for the non-zero ranks of a data-parallel run).
- `seeds`: reset seeds of training and evaluation episodes.
- `evaluation`: eval-mode episodes per task (`EpisodeEvaluator`).
- `task_eval`: many tasks, in worker processes if asked (`TaskEvaluator`).
- `checkpointing`: loop counters (`LoopState`) and checkpoint/resume (`Checkpointer`).
- `progress`: the phases of a run as a tqdm bar or status lines (`Progress`, `Schedule`).
- `interrupt`: stop requests by SIGINT/SIGTERM (`StopRequest`, `Interrupted`).
- `online`: the online loop (`OnlineTrainer`).
- `offline`: the offline loop on a fixed dataset (`OfflineTrainer`).
- `clock`: a run's wall time across sessions and the timing columns of its rows (`RunClock`).
"""

from .checkpointing import Checkpointer, LoopState, checkpoint_steps
from .evaluation import EVAL_METRICS, EpisodeEvaluator, run_episodes
from .interrupt import EXIT_CODES, Interrupted, StopRequest
from .offline import OfflineTrainer, offline_schedule
from .online import OnlineTrainer, checkpoint_due, make_replay
from .progress import Progress, Schedule
from .protocols import BatchSource, DiscardingLogger, Evaluator, Replay, RunLogger, Stateful
from .seeds import EVAL, TRAIN, episode_seed
from .task_eval import TaskEvaluator, task_id

__all__ = [
    "BatchSource",
    "Replay",
    "Stateful",
    "Evaluator",
    "RunLogger",
    "DiscardingLogger",
    "TRAIN",
    "EVAL",
    "episode_seed",
    "EVAL_METRICS",
    "run_episodes",
    "EpisodeEvaluator",
    "TaskEvaluator",
    "task_id",
    "LoopState",
    "Checkpointer",
    "checkpoint_steps",
    "Progress",
    "Schedule",
    "StopRequest",
    "Interrupted",
    "EXIT_CODES",
    "OnlineTrainer",
    "OfflineTrainer",
    "offline_schedule",
    "make_replay",
    "checkpoint_due",
]
