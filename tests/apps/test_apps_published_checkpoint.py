"""Published checkpoints (format=tdmpc2|mbdpo) in apps/evaluate and mode=finetune: .pt files
written with torch.save from the hand-built published modules of
packages/mbdpo-data/tests/test_data_published_checkpoint.py, scored and fine-tuned end to end,
and bad input refused before anything is written."""

import json

import numpy as np
import pytest
import torch
from app_runs import rows, run_app
from mbdpo_core.checkpoint import latest_checkpoint, load_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.loops.seeds import EVAL, episode_seed
from mbdpo_envs import make_agent_env
from test_data_published_checkpoint import build, published_state

MODEL = ["mlp_dim=32", "enc_dim=32", "latent_dim=16", "num_q=2"]
"""The published modules' widths (no preset has them: given explicitly, as TINY_MODEL does)."""
SINGLE = ["task=cartpole-balance", "preset=cpu", *MODEL]
MT30 = ["task=mt30", "preset=cpu", "task_dim=8", *MODEL]
EVALUATE = ["planner=policy", "eval_episodes=1", "eval_workers=1"]


def save_published(path, cfg, layout="nested", wrapped=True):
    """A TD-MPC2-layout checkpoint of cfg's model with random weights at `path`; its modules."""
    model, qs, targets = build(cfg, energy=False)
    state = published_state(model, qs, targets, layout)
    torch.save({"model": state} if wrapped else state, path)
    return model


@torch.no_grad()
def policy_return(cfg, model, seed: int) -> float:
    """The first evaluation episode at step 0 acted by the hand-built policy (tanh of its mean),
    as apps/evaluate resets it (docs/design.md#evaluation)."""
    env = make_agent_env(cfg, cfg.task, seed)
    obs, _ = env.reset(seed=episode_seed(episode_seed(seed, EVAL, 0), EVAL, 0))
    total, done = 0.0, False
    while not done:
        z = model._encoder["state"](torch.as_tensor(obs, dtype=torch.float32)[None])
        mean = model._pi(z).chunk(2, dim=-1)[0]
        obs, reward, terminated, truncated, _ = env.step(torch.tanh(mean)[0].numpy())
        total += float(reward)
        done = terminated or truncated
    env.close()
    return total


@pytest.fixture(scope="module")
def single_task(tmp_path_factory):
    """(path, config, hand-built modules) of a single-task cartpole-balance checkpoint."""
    path = tmp_path_factory.mktemp("published") / "cartpole-balance-1.pt"
    cfg = load_config(SINGLE)
    return path, cfg, save_published(path, cfg, layout="flattened", wrapped=False)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_evaluate_scores_a_tdmpc2_checkpoint_with_its_own_policy(single_task, backend, tmp_path):
    path, cfg, model = single_task
    out = tmp_path / backend
    done = run_app(
        "evaluate", "--backend", backend, f"checkpoint={path}", "format=tdmpc2",
        *SINGLE, *EVALUATE, f"out={out}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "energy: not in the checkpoint" in done.stdout
    (row,) = rows(out.with_name(out.name + ".csv"))
    assert row["task"] == "cartpole-balance"
    expected = policy_return(cfg, model, cfg.seed)
    assert float(row["episode_reward"]) == pytest.approx(expected, rel=1e-4)
    doc = json.loads(out.with_name(out.name + ".json").read_text())
    assert (doc["format"], doc["step"], doc["backend"]) == ("tdmpc2", 0, backend)


def test_evaluate_writes_beside_the_pt_file_and_keeps_existing_outputs(tmp_path):
    path = tmp_path / "walker-1.pt"
    save_published(path, load_config(SINGLE))
    args = [f"checkpoint={path}", "format=tdmpc2", *SINGLE, *EVALUATE]
    assert run_app("evaluate", *args).returncode == 0
    csv_file = tmp_path / "walker-1.eval.csv"
    assert csv_file.is_file() and (tmp_path / "walker-1.eval.json").is_file()
    before = csv_file.read_text()
    again = run_app("evaluate", *args)
    assert again.returncode == 2 and "overwrite=true" in again.stderr
    assert csv_file.read_text() == before


def test_finetune_from_a_tdmpc2_mt30_checkpoint_copies_the_source_row(tmp_path):
    source = load_config([*MT30, "mt30_dims=tdmpc2"])
    path = tmp_path / "mt30-tiny.pt"
    model = save_published(path, source)
    run_dir = tmp_path / "run"
    done = run_app(
        "train", "--backend", "jax", "mode=finetune", f"checkpoint={path}", "format=tdmpc2",
        "task=walker-run", *MT30[1:], "planner=policy", "steps=10", "eval_freq=0",
        "save_every=0", f"run_dir={run_dir}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "task walker-run starting from walker-walk's row" in done.stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["format"], config["task"], len(config["tasks"])) == ("tdmpc2", "walker-run", 31)
    arrays, _ = load_checkpoint(latest_checkpoint(run_dir))
    table = model._task_emb.weight.detach().numpy()
    walker_walk = source.tasks.index("walker-walk")
    # 10 steps < one walker episode (500): no update yet, the parameters are the file's
    expected = np.concatenate([table, table[[walker_walk]]])
    np.testing.assert_array_equal(arrays["params/task_emb.weight"], expected)
    np.testing.assert_array_equal(
        arrays["params/dynamics.0.weight"], model._dynamics[0].weight.detach().numpy().T
    )


@pytest.mark.parametrize(
    "keys, message",
    [
        (["format=tdmpc3"], "Invalid format='tdmpc3'. Valid choices: native, tdmpc2, mbdpo."),
        (["format=tdmpc2", "checkpoint={dir}/absent.pt"], "absent.pt' (format=tdmpc2): no such"),
        (["format=mbdpo", "checkpoint={dir}"], "format=mbdpo reads a published torch.save file"),
        (
            ["format=tdmpc2", "mlp_dim=64"],
            "'_dynamics.0.weight' has shape (32, 17), expected (64, 17)",
        ),
        (["format=tdmpc2", "task=mt30"], "is single-task (no _task_emb.weight): give task=NAME"),
        (["format=native", "mlp_dim=32"], "Unknown key 'mlp_dim'."),
    ],
)
def test_bad_input_is_one_line_before_anything_is_written(single_task, tmp_path, keys, message):
    path, *_ = single_task
    given = {k.split("=")[0]: k.format(dir=tmp_path) for k in keys}
    args = {"checkpoint": f"checkpoint={path}", "task": "task=cartpole-balance"} | given
    done = run_app("evaluate", *args.values(), *MODEL[1:], *EVALUATE, f"out={tmp_path / 'e'}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("e.*"))


@pytest.mark.parametrize(
    "keys, message",
    [
        (["format=mbdpo"], "holds a OrderedDict without a 'model' state dict"),
        (["format=tdmpc2", "task=walker-run"], "checkpoint key '_encoder.state.0.weight' has"),
        (["format=tdmpc2", "mode=online", "checkpoint="], "format=tdmpc2 is read by mode=finetune"),
    ],
)
def test_finetune_bad_input_is_refused_before_the_run_directory(
    single_task, tmp_path, keys, message
):
    path, *_ = single_task
    given = {k.split("=")[0]: k for k in keys}
    args = {"mode": "mode=finetune", "checkpoint": f"checkpoint={path}"} | given
    args = [a for a in {"task": "task=cartpole-balance", **args}.values() if not a.endswith("=")]
    run_dir = tmp_path / "run"
    done = run_app("train", *args, *MODEL, f"run_dir={run_dir}", "steps=10")
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()
