"""Training loops and the parts they are composed of (docs/design.md#loops).

- `protocols`: what a loop needs from its parts (BatchSource, Replay, Stateful, Evaluator,
  RunLogger).
- `seeds`: reset seeds of training and evaluation episodes.
- `evaluation`: eval-mode episodes per task (`EpisodeEvaluator`).
- `checkpointing`: loop counters (`LoopState`) and checkpoint/resume (`Checkpointer`).
- `progress`: tqdm bar or status lines (`Progress`).
- `online`: the online loop (`OnlineTrainer`).
"""

from .checkpointing import Checkpointer, LoopState
from .evaluation import EVAL_METRICS, EpisodeEvaluator, run_episodes
from .online import OnlineTrainer, checkpoint_due, make_replay
from .progress import Progress
from .protocols import BatchSource, Evaluator, Replay, RunLogger, Stateful
from .seeds import EVAL, TRAIN, episode_seed

__all__ = [
    "BatchSource",
    "Replay",
    "Stateful",
    "Evaluator",
    "RunLogger",
    "TRAIN",
    "EVAL",
    "episode_seed",
    "EVAL_METRICS",
    "run_episodes",
    "EpisodeEvaluator",
    "LoopState",
    "Checkpointer",
    "Progress",
    "OnlineTrainer",
    "make_replay",
    "checkpoint_due",
]
