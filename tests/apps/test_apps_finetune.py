"""mode=finetune: a checkpoint's parameters given to either backend's agent (the new task's
embedding row copied from its source, everything else fresh), and the whole laptop path of the
paper's second and third settings, each step's files checked: convert generated mt30 chunks,
pretrain offline with torch, evaluate on three tasks, fine-tune with JAX, evaluate again with
torch (checkpoints cross in both directions in tests/parity/test_parity_checkpoints.py)."""

import json

import numpy as np
import pytest
from app_runs import TINY_MODEL, rows, run_app
from mbdpo_core.agent_state import AgentState, start_finetuning
from mbdpo_core.backends import load_backend
from mbdpo_core.batch import Batch
from mbdpo_core.checkpoint import checkpoint_path, save_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.loops import task_id
from mbdpo_data.layouts import LAYOUTS
from published_chunks import episodes_arrays, write_chunk

BACKENDS = ["torch", "jax"]
MT30 = ["task=mt30", *TINY_MODEL]
THREE = "walker-walk pendulum-spin cartpole-balance"


def finetuning_agent(run_dir, params_of, backend: str, *keys: str):
    """(source config, its parameters, the stem, a fine-tuning agent for walker-run of
    `backend`) from an mt30 checkpoint written as the other backend's."""
    source = load_config([*MT30, *keys])
    params = params_of(source)
    state = AgentState.initial(source, params, rng={})
    arrays, meta = state.to_checkpoint(source, "jax" if backend == "torch" else "torch")
    stem = checkpoint_path(run_dir, 100)
    save_checkpoint(stem, arrays, meta)
    cfg = load_config(["mode=finetune", f"checkpoint={run_dir}", "task=walker-run", *MT30[1:]])
    return source, params, stem, load_backend(backend).Agent(cfg)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_agent_gets_the_checkpoint_parameters_and_a_new_row_copied_from_the_source(
    tmp_path, random_params, backend
):
    source, params, stem, agent = finetuning_agent(tmp_path, random_params, backend)
    cfg = agent.cfg

    assert start_finetuning(agent) == stem
    got = AgentState.from_checkpoint(*agent.state_dict(), cfg)
    table = params["task_emb.weight"]
    walker_walk = source.tasks.index("walker-walk")
    expected = {**params, "task_emb.weight": np.concatenate([table, table[[walker_walk]]])}
    assert got.params.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(got.params[name], value, err_msg=name)
    assert got.optim_step == {"model": 0, "pi": 0}
    for moments in got.adam.values():
        assert all(not m.any() and not v.any() for m, v in moments.values())
    assert (got.running_scale, got.energy_stats) == (1.0, (0.0, 1.0))
    assert task_id(cfg, "walker-run") == 30
    action = agent.act(np.zeros(cfg.obs_shape, np.float32), t0=True, eval_mode=True, task=30)
    walker_run_dims = cfg.action_dims[-1]
    assert action.shape == (cfg.action_dim,) and not action[walker_run_dims:].any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_score_network_keeps_training(tmp_path, random_params, backend):
    """Unlike the published script, whose rebuilt optimisers leave the score network out."""
    *_, agent = finetuning_agent(tmp_path, random_params, backend, "use_score_network=true")
    cfg = agent.cfg
    assert cfg.use_score_network  # the checkpoint's architecture
    start_finetuning(agent)
    rng = np.random.default_rng(0)
    H, B = cfg.horizon, cfg.batch_size
    batch = Batch(
        obs=rng.standard_normal((H + 1, B, *cfg.obs_shape)).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, cfg.action_dim)).astype(np.float32),
        reward=rng.standard_normal((H, B, 1)).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
        task=np.full(B, cfg.n_tasks - 1),
    )
    before = agent.state_dict()[0]
    agent.update(batch)
    after = agent.state_dict()[0]
    score = [n for n in before if n.startswith("params/score.")]
    assert score and all(not np.array_equal(before[n], after[n]) for n in score)


@pytest.mark.slow
def test_convert_pretrain_evaluate_finetune_evaluate(tmp_path):
    pretrain, finetune = "torch", "jax"
    # generated chunks in the published format -> the converted dataset
    for i in range(2):
        write_chunk(tmp_path / "pt" / f"chunk_{i}.pt", episodes_arrays(LAYOUTS["mt30"], 3, seed=i))
    data = tmp_path / "npz"
    done = run_app("convert", str(tmp_path / "pt"), str(data), "--quiet")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in data.glob("[!.]*")) == [
        "chunk_0.npz",
        "chunk_1.npz",
        "manifest.json",
    ]

    # offline pretraining: 200 updates, checkpoints at 100 and 200, one final evaluation
    pre = tmp_path / "pretrain"
    done = run_app(
        "train", "--backend", pretrain, "mode=offline", *MT30, f"data_dir={data}", "steps=200",
        "log_freq=50", "eval_freq=0", "save_every=100", "eval_episodes=1", "eval_workers=1",
        "eval_tasks=pendulum-spin", "planner=policy", f"run_dir={pre}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["step"] for r in rows(pre / "train.csv")] == ["50", "100", "150", "200"]
    assert [(r["step"], r["task"]) for r in rows(pre / "eval.csv")] == [("200", "pendulum-spin")]
    stems = sorted(p.name for p in (pre / "checkpoints").glob("step_*.json"))
    assert stems == ["step_100.json", "step_200.json"]

    # evaluation of the pretrained agent on three tasks, by the other backend
    evaluated = evaluate(finetune, pre, f"task={THREE}")
    assert [r["task"] for r in evaluated] == THREE.split()

    # fine-tuning on pendulum-swingup (source pendulum-spin) by the other backend: two episodes,
    # the first acted by the pretrained agent without updates, the second with one per step
    fine = tmp_path / "finetune"
    done = run_app(
        "train", "--backend", finetune, "mode=finetune", f"checkpoint={pre}",
        "task=pendulum-swingup", *TINY_MODEL, "planner=policy", "steps=1000", "eval_freq=0",
        "eval_episodes=1", "save_every=0", f"run_dir={fine}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "task pendulum-swingup starting from pendulum-spin's row" in done.stdout
    config = json.loads((fine / "config.json").read_text())
    assert (config["mode"], config["source_task"], len(config["tasks"])) == (
        "finetune",
        "pendulum-spin",
        31,
    )
    first, second = rows(fine / "train.csv")
    assert (first["step"], second["step"]) == ("500", "1000")
    assert first["value_loss"] == "" and float(second["value_loss"]) > 0
    assert [r["step"] for r in rows(fine / "eval.csv")] == ["1000"]
    assert sorted(p.name for p in (fine / "checkpoints").glob("step_*.json")) == ["step_1000.json"]

    # evaluation of the fine-tuned agent (its task by default) by the pretraining backend
    assert [r["task"] for r in evaluate(pretrain, fine)] == ["pendulum-swingup"]


def evaluate(backend: str, run_dir, *keys: str) -> list[dict[str, str]]:
    """apps/evaluate of a run's newest checkpoint, one episode per task; the CSV's rows (the
    JSON beside it agrees)."""
    done = run_app(
        "evaluate", "--backend", backend, f"checkpoint={run_dir}", "eval_episodes=1",
        "planner=policy", "eval_workers=1", *keys,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (stem,) = sorted((run_dir / "checkpoints").glob("*.eval.csv"))
    report = json.loads(stem.with_suffix(".json").read_text())
    table = rows(stem)
    assert report["tasks"] == [r["task"] for r in table]
    return table
