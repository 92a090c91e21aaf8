"""The task embedding as published, PyTorch's Embedding(max_norm=1), in the oracle and both
backends (docs/method.md#task-embedding-and-action-masks): a lookup against torch.nn.Embedding
itself, and the stored table after updates and acting.

The expected values do not come from our code: the lookup's from torch.nn.Embedding; after an
update, the rows never looked up are the initial ones, the batch's rows have norm <= 1 (they
are renormalised again after the world-model step), the first update moves a row at most
lr x (1 + sqrt(E)) away from its renormalised start, and the gradient with a table of norms
above 1 equals the gradient with that table renormalised (a plain lookup gradient at the
renormalised rows)."""

import jax.numpy as jnp
import mbdpo_jax
import mbdpo_torch
import numpy as np
import pytest
import torch
from flax import nnx
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_core.noise import draw_numpy
from mbdpo_core.reference import losses as ref_losses
from mbdpo_core.reference import model as ref
from mbdpo_jax.layers import TaskEmbedding as JaxTaskEmbedding
from mbdpo_torch.layers import TaskEmbedding as TorchTaskEmbedding
from parity_budget import ACT_TOL, UPDATE_TOL

MULTITASK = ["task=mt30", "task_dim=8"]
BATCH_TASKS = (  # the task ids of three successive batches (B = 8)
    [0, 1, 2, 3, 4, 5, 6, 7],
    [4, 5, 6, 7, 8, 9, 10, 11],
    [0, 1, 20, 21, 22, 23, 0, 1],
)
NEVER = [*range(12, 20), *range(24, 30)]
"""Task ids in none of the batches."""
LOSSES = ("consistency_loss", "reward_loss", "value_loss", "energy_loss", "total_loss")


def test_lookup_is_torchs_embedding_with_max_norm():
    rng = np.random.default_rng(0)
    scale = np.array([[3.0], [0.1], [1.0], [5.0], [0.2], [2.0]])
    table = (rng.standard_normal((6, 4)) * scale).astype(np.float32)
    task = np.array([[0, 3, 3], [1, 5, 0]])
    upstream = rng.standard_normal((2, 3, 4)).astype(np.float32)

    published = torch.nn.Embedding(6, 4, max_norm=1.0)
    with torch.no_grad():
        published.weight.copy_(torch.from_numpy(table))
    out = published(torch.from_numpy(task))
    (out * torch.from_numpy(upstream)).sum().backward()
    want_out = out.detach().numpy()
    want_table = published.weight.detach().numpy()
    want_grad = published.weight.grad.numpy()
    assert not np.allclose(want_table[[0, 3, 5]], table[[0, 3, 5]])  # renormalised in place
    np.testing.assert_array_equal(want_table[[1, 2, 4]], table[[1, 2, 4]])  # kept / not used
    close = {"rtol": 1e-6, "atol": 1e-7}

    ours = TorchTaskEmbedding(6, 4)
    with torch.no_grad():
        ours.weight.copy_(torch.from_numpy(table))
    out = ours(torch.from_numpy(task))
    (out * torch.from_numpy(upstream)).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), want_out, **close)
    np.testing.assert_allclose(ours.weight.detach().numpy(), want_table, **close)
    np.testing.assert_allclose(ours.weight.grad.numpy(), want_grad, **close)

    jax_emb = JaxTaskEmbedding(6, 4)
    jax_emb.weight[...] = jnp.asarray(table)
    jt = jnp.asarray(task)

    def loss(m):
        return jnp.sum(m(jt) * upstream)

    grad = nnx.grad(loss)(jax_emb)
    np.testing.assert_allclose(np.asarray(jax_emb(jt)), want_out, **close)
    np.testing.assert_allclose(np.asarray(grad["weight"][...]), want_grad, **close)
    np.testing.assert_array_equal(np.asarray(jax_emb.weight[...]), table)  # a lookup: no write
    jax_emb.renorm_(jt)
    np.testing.assert_allclose(np.asarray(jax_emb.weight[...]), want_table, **close)

    params = {"task_emb.weight": table}
    np.testing.assert_allclose(ref.task_embedding(params, task), want_out, **close)
    after = ref.renorm_task_rows(params, task)["task_emb.weight"]
    np.testing.assert_allclose(after, want_table, **close)


def batch_of(cfg, rng, tasks):
    H, B, A = cfg.horizon, len(tasks), cfg.action_dim
    return Batch(
        obs=rng.standard_normal((H + 1, B, cfg.obs_shape[0])).astype(np.float32),
        action=rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        reward=(rng.standard_normal((H, B, 1)) * 3).astype(np.float32),
        terminated=np.zeros((H, B, 1), np.float32),
        task=np.asarray(tasks),
    )


def agents_from(cfg, params):
    out = {"torch": mbdpo_torch.Agent(cfg), "jax": mbdpo_jax.Agent(cfg)}
    for agent in out.values():
        agent.import_params(params)
    return out


def large_table_params(cfg, random_params):
    params = random_params(cfg)
    params["task_emb.weight"] = params["task_emb.weight"] * 8.0
    norms = np.linalg.norm(params["task_emb.weight"], axis=-1)
    assert norms.min() > 1.0  # every row is renormalised when looked up
    return params


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(a[k], np.float64) - b[k]))) for k in a)


def test_gradient_is_the_plain_lookup_gradient_at_the_renormalised_rows(tiny, random_params):
    cfg = load_config([*tiny, *MULTITASK])
    params = large_table_params(cfg, random_params)
    renormed = ref.renorm_task_rows(params, BATCH_TASKS[0])
    rng = np.random.default_rng(11)
    batch, noise = batch_of(cfg, rng, BATCH_TASKS[0]), draw_numpy("update", cfg, rng)
    for name, agent in agents_from(cfg, params).items():
        grads = agent.grads_with_noise(batch, noise)
        again = agents_from(cfg, renormed)[name].grads_with_noise(batch, noise)
        scale = {k: np.maximum(1.0, np.abs(again[k])) for k in again}
        worst = max(float(np.max(np.abs(grads[k] - again[k]) / scale[k])) for k in again)
        assert worst <= UPDATE_TOL, f"{name}: gradients differ by {worst}"
        assert np.abs(grads["task_emb.weight"][BATCH_TASKS[0]]).max() > 1e-3


def test_table_after_updates_agrees_and_is_renormalised(tiny, random_params):
    cfg = load_config([*tiny, *MULTITASK])
    params = large_table_params(cfg, random_params)
    table0 = params["task_emb.weight"]
    ag = agents_from(cfg, params)
    rng = np.random.default_rng(12)
    seen: set[int] = set()
    for k, tasks in enumerate(BATCH_TASKS):
        batch, noise = batch_of(cfg, rng, tasks), draw_numpy("update", cfg, rng)
        before = ag["torch"].export_params()
        stats = tuple(float(v) for v in ag["torch"].energy_stats)
        oracle = ref_losses.world_model_losses(before, cfg, batch, noise, stats)
        metrics = {name: agent.update_with_noise(batch, noise) for name, agent in ag.items()}
        for name in ag:
            for key in LOSSES:
                got, want = metrics[name][key], oracle[key]
                assert abs(got - want) <= UPDATE_TOL * max(1.0, abs(want)), (k, name, key)
        t_arrays, j_arrays = ag["torch"].state_dict()[0], ag["jax"].state_dict()[0]
        assert set(t_arrays) == set(j_arrays)
        assert max_diff(t_arrays, j_arrays) <= UPDATE_TOL, f"update {k}: torch vs JAX"
        seen |= set(tasks)
        for name, agent in ag.items():
            table = agent.export_params()["task_emb.weight"]
            untouched = sorted(set(range(cfg.n_tasks)) - seen)
            np.testing.assert_array_equal(table[untouched], table0[untouched], err_msg=name)
            norms = np.linalg.norm(table[sorted(set(tasks))].astype(np.float64), axis=-1)
            assert norms.max() <= 1.0 + 1e-6, (k, name, norms.max())
            if k == 0:
                start = ref.renorm_task_rows(params, tasks)["task_emb.weight"][tasks]
                bound = cfg.lr * (1.0 + np.sqrt(cfg.task_dim)) * 1.001
                assert np.abs(table[tasks] - start).max() <= bound, name
    assert set(NEVER).isdisjoint(seen)


def test_acting_renormalises_the_acting_task_row(tiny, random_params):
    cfg = load_config([*tiny, *MULTITASK])
    params = large_table_params(cfg, random_params)
    noise = draw_numpy("plan", cfg, np.random.default_rng(13))
    obs = np.random.default_rng(14).standard_normal(cfg.obs_shape).astype(np.float32)
    want = ref.renorm_task_rows(params, 3)["task_emb.weight"]
    others = [i for i in range(cfg.n_tasks) if i != 3]
    actions = {}
    for name, agent in agents_from(cfg, params).items():
        actions[name] = agent.plan_with_noise(obs, True, True, 3, noise)
        table = agent.export_params()["task_emb.weight"]
        np.testing.assert_allclose(table[3], want[3], rtol=1e-6, atol=0, err_msg=name)
        np.testing.assert_array_equal(table[others], params["task_emb.weight"][others])
    np.testing.assert_allclose(actions["torch"], actions["jax"], atol=ACT_TOL, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_rows_of_norm_at_most_one_are_kept(tiny, random_params, backend):
    cfg = load_config([*tiny, *MULTITASK])
    params = random_params(cfg)  # norms about 0.3
    assert np.linalg.norm(params["task_emb.weight"], axis=-1).max() < 1.0
    agent = agents_from(cfg, params)[backend]
    obs = np.zeros(cfg.obs_shape, np.float32)
    agent.plan_with_noise(obs, True, True, 5, draw_numpy("plan", cfg, np.random.default_rng(0)))
    table = agent.export_params()["task_emb.weight"]
    np.testing.assert_array_equal(table, params["task_emb.weight"])
