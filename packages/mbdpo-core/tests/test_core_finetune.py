"""The config of a fine-tuning run (mode=finetune): read from the checkpoint's sidecar, the
target appended to a multi-task checkpoint's tasks, a single-task checkpoint continued, and
clear errors. Expected values come from the task registry and the source config, not from the
code under test."""

import numpy as np
import pytest
from mbdpo_core import tasks as task_registry
from mbdpo_core.checkpoint import checkpoint_path, save_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.config.load import config_to_dict
from mbdpo_core.errors import CheckpointError, ConfigError
from mbdpo_core.loops import Schedule, task_id

SMALL = ["preset=cpu", "mlp_dim=32", "enc_dim=32", "latent_dim=16", "num_q=2"]


def write_sidecar(run_dir, *overrides: str, step: int = 100):
    """A checkpoint of a run of `overrides` (its config in the meta; one dummy array)."""
    cfg = load_config([*SMALL, *overrides])
    stem = checkpoint_path(run_dir, step)
    save_checkpoint(stem, {"dummy": np.zeros(1, np.float32)}, {"config": config_to_dict(cfg)})
    return cfg, stem


def finetune(stem, *overrides: str):
    return load_config(["mode=finetune", f"checkpoint={stem}", "preset=cpu", *overrides])


def test_a_multi_task_checkpoint_grows_by_the_target_with_the_published_source(tmp_path):
    source, stem = write_sidecar(tmp_path, "task=mt30")
    cfg = finetune(stem, "task=walker-run")
    walker_walk = source.tasks.index("walker-walk")
    target = task_registry.get("walker-run")
    assert cfg.multitask and cfg.task == "walker-run" and cfg.source_task == "walker-walk"
    assert cfg.tasks == (*source.tasks, "walker-run") and cfg.n_tasks == 31
    assert cfg.action_dims == (*source.action_dims, target.action_dim)
    assert cfg.obs_dims == (*source.obs_dims, target.obs_dim)
    assert cfg.discounts == (*source.discounts, source.discounts[walker_walk])
    assert (cfg.obs_shape, cfg.action_dim, cfg.task_dim) == (
        source.obs_shape,
        source.action_dim,
        source.task_dim,
    )
    assert (cfg.mlp_dim, cfg.latent_dim, cfg.num_q) == (32, 16, 2)  # the checkpoint's, not cpu's
    # walker-run is also task 2 of mt30: the run's task is the appended row
    assert task_id(cfg, "walker-run") == 30 and task_id(cfg, "walker-walk") == walker_walk
    assert cfg.evaluated_tasks == ("walker-run",)
    assert cfg.seed_steps == 0  # no random seeding from a checkpoint, as published
    assert Schedule.from_config(cfg).eval_episodes == cfg.eval_episodes


def test_source_task_picks_another_row_and_a_run_directory_names_its_newest(tmp_path):
    source, _ = write_sidecar(tmp_path, "task=mt30", step=100)
    write_sidecar(tmp_path, "task=mt30", step=200)
    cfg = finetune(tmp_path, "task=cartpole-swingup", "source_task=cartpole-balance")
    balance = source.tasks.index("cartpole-balance")
    assert cfg.source_task == "cartpole-balance"
    assert cfg.discounts[-1] == source.discounts[balance]
    assert cfg.checkpoint == str(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=cartpole-swingup"], "cartpole-swingup has no published source task; give"),
        (["task=walker-run", "source_task=mw-reach"], "source_task=mw-reach is not a task of"),
        (["task=humanoid-walk", "source_task=walker-walk"], "is wider than the checkpoint's"),
        (
            ["task=walker-run", "mlp_dim=64"],
            "keeps the checkpoint's architecture: it has mlp_dim=32",
        ),
        (["task=mt30"], "mode=finetune trains on one task"),
    ],
)
def test_a_target_the_checkpoint_cannot_take_is_a_clear_error(tmp_path, overrides, message):
    _, stem = write_sidecar(tmp_path, "task=mt30")
    with pytest.raises(ConfigError, match=message):
        finetune(stem, *overrides)


def test_the_architecture_may_be_repeated_and_training_keys_are_the_runs_own(tmp_path):
    _, stem = write_sidecar(tmp_path, "task=mt30", "batch_size=256", "lr=1e-3")
    cfg = finetune(stem, "task=walker-run", "mlp_dim=32", "batch_size=32")
    assert (cfg.mlp_dim, cfg.batch_size, cfg.lr) == (32, 32, 3e-4)


def test_a_single_task_checkpoint_continues_on_its_task_or_one_of_the_same_shapes(tmp_path):
    source, stem = write_sidecar(tmp_path, "task=walker-walk")
    same = finetune(stem, "task=walker-walk")
    assert not same.multitask and same.tasks == ("walker-walk",) and same.task_dim == 0
    assert (same.obs_shape, same.action_dim, same.latent_dim) == (
        source.obs_shape,
        source.action_dim,
        16,
    )
    assert finetune(stem, "task=walker-run").tasks == ("walker-run",)  # obs 24, action 6 too
    with pytest.raises(ConfigError, match="cannot continue the single-task checkpoint"):
        finetune(stem, "task=cartpole-swingup")
    with pytest.raises(ConfigError, match="this one is single-task"):
        finetune(stem, "task=walker-run", "source_task=walker-walk")


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(ConfigError, match="mode=finetune needs checkpoint=PATH"):
        load_config(["mode=finetune", "task=walker-run"])
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        finetune(tmp_path / "nope" / "step_5", "task=walker-run")
    with pytest.raises(CheckpointError, match="without complete checkpoints"):
        finetune(tmp_path, "task=walker-run")
