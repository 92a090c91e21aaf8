"""The config of a fine-tuning run (`mode=finetune checkpoint=PATH task=NAME`): the agent of a
checkpoint trained further online on one task (docs/design.md#fine-tuning).

The run's training keys come as for any run (defaults < preset < explicit); its architecture is
the checkpoint's. From a multi-task checkpoint the task set grows by one entry, the new task,
appended after the set's tasks (a task of the set is appended again: the new entry has its own
embedding row). Its embedding row starts as a copy of a source task's row (SOURCE_TASKS, the
published pairing, or `source_task=`), its discount is the source task's and its action mask
covers its own action dims (the source's, for every published pair). From a single-task
checkpoint the agent continues on its own task, or on another of the same shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import tasks as task_registry
from ..checkpoint import checkpoint_stem, read_meta
from ..errors import CheckpointError, ConfigError, suggest
from .schema import Config

SOURCE_TASKS = {
    "walker-run": "walker-walk",
    "cheetah-run": "cheetah-run-backwards",
    "hopper-hop": "hopper-stand",
    "pendulum-swingup": "pendulum-spin",
    "reacher-hard": "reacher-easy",
    "mw-bin-picking": "mw-pick-place",
    "mw-box-close": "mw-assembly",
    "mw-door-lock": "mw-door-open",
    "mw-door-unlock": "mw-door-open",
    "mw-hand-insert": "mw-sweep-into",
}
"""The published fine-tuning targets -> the pretrained task whose embedding row each starts from."""

ARCHITECTURE_KEYS = (
    "obs",
    "model_size",
    "num_enc_layers",
    "enc_dim",
    "mlp_dim",
    "latent_dim",
    "num_q",
    "num_channels",
    "task_dim",
    "mt30_dims",
    "simnorm_dim",
    "num_bins",
    "vmin",
    "vmax",
    "dropout",
    "use_score_network",
    "diffusion_time_embed_dim",
)
"""Keys a fine-tuning run takes from its checkpoint (the shapes and functions of its networks)."""


def source_config(checkpoint: str | None) -> Config:
    """The config of the checkpoint a fine-tuning run starts from (its arrays are not read).

    Raises:
        ConfigError: no checkpoint given. CheckpointError: not found, or not an agent's.
    """
    from .load import config_from_dict

    if checkpoint is None:
        raise ConfigError(
            "mode=finetune needs checkpoint=PATH: a run directory (its newest checkpoint) or "
            "<run>/checkpoints/step_N, written by apps/train with either backend."
        )
    stem = checkpoint_stem(Path(checkpoint))
    saved = read_meta(stem).get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {stem} has no config in its meta: not an agent's.")
    return config_from_dict(saved)


def adopt_architecture(values: dict[str, Any], source: Config, user: dict[str, Any]) -> None:
    """Set values' ARCHITECTURE_KEYS to the checkpoint's; an explicit other value is an error.

    A single-task checkpoint's task_dim (0: no embedding) is left to the target's derivation.
    """
    for key in ARCHITECTURE_KEYS:
        if key == "task_dim" and not source.multitask:
            continue
        theirs = getattr(source, key)
        if key in user and user[key] != theirs:
            raise ConfigError(
                f"mode=finetune keeps the checkpoint's architecture: it has {key}={theirs!r}, "
                f"got {key}={user[key]!r}. Drop {key}= (or train a new agent)."
            )
        values[key] = theirs


def check_single_task(values: dict[str, Any], source: Config) -> None:
    """A single-task checkpoint continues on its task, or on another of the same shapes."""
    if values["source_task"] is not None:
        raise ConfigError(
            f"source_task= picks the embedding row a new task starts from in a multi-task "
            f"checkpoint; this one is single-task (task={source.task}). Drop source_task=."
        )
    target = task_registry.get(values["task"])
    shapes = (source.obs_dims[0], source.action_dim)
    if target.name != source.task and (target.obs_dim, target.action_dim) != shapes:
        raise ConfigError(
            f"task={target.name} (obs {target.obs_dim}, action {target.action_dim}) cannot "
            f"continue the single-task checkpoint of task={source.task} (obs {shapes[0]}, "
            f"action {shapes[1]}): the shapes differ. Fine-tune on {source.task}, on a task of "
            "the same shapes, or start from a multi-task checkpoint."
        )


def appended_task(values: dict[str, Any], source: Config) -> dict[str, Any]:
    """The Config fields of a multi-task checkpoint's agent grown by the target task.

    Sets values["source_task"] (resolved) and values["task_dim"] (the checkpoint's).

    Raises:
        ConfigError: the target terminates episodes or is wider than the checkpoint's agent, no
            source task is known for it, or the source task is not one of the checkpoint's.
    """
    target = task_registry.get(values["task"])
    width, actions = source.obs_shape[0], source.action_dim
    if target.episodic:
        raise ConfigError(
            f"task={target.name} terminates episodes; a multi-task agent takes tasks without "
            "terminations."
        )
    if target.obs_dim > width or target.action_dim > actions:
        raise ConfigError(
            f"task={target.name} (obs {target.obs_dim}, action {target.action_dim}) is wider than "
            f"the checkpoint's agent (obs {width}, action {actions}, task={source.task})."
        )
    origin = values["source_task"] or SOURCE_TASKS.get(target.name)
    if origin is None:
        raise ConfigError(
            f"task={target.name} has no published source task; give source_task=NAME, a task of "
            f"the checkpoint ({source.task}) whose embedding the new task starts from. Published "
            f"targets: {', '.join(SOURCE_TASKS)}."
        )
    if origin not in source.tasks:
        raise ConfigError(
            f"source_task={origin} is not a task of the checkpoint (task={source.task})."
            f"{suggest(origin, source.tasks)} Valid: {', '.join(source.tasks)}."
        )
    values["source_task"] = origin
    values["task_dim"] = source.task_dim  # the target's single-task derivation set it to 0
    return dict(
        tasks=(*source.tasks, target.name),
        multitask=True,
        obs_shape=source.obs_shape,
        obs_dims=(*source.obs_dims, target.obs_dim),
        action_dim=actions,
        action_dims=(*source.action_dims, target.action_dim),
        episode_lengths=(*source.episode_lengths, target.episode_length),
        discounts=(*source.discounts, source.discounts[source.tasks.index(origin)]),
    )
