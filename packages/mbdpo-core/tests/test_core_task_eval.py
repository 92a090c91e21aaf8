"""TaskEvaluator: the seeds of EpisodeEvaluator, the same numbers in one process and in worker
processes, and the agent's state as it was, with a real (tiny) torch agent."""

import dataclasses

import numpy as np
import pytest
from mbdpo_core.config import load_config
from mbdpo_core.errors import ConfigError
from mbdpo_core.loops import EVAL_METRICS, EpisodeEvaluator, TaskEvaluator
from mbdpo_core.loops.task_eval import EvaluationWorkerError
from mbdpo_core.scores import summarise

pytest.importorskip("mbdpo_torch")
pytest.importorskip("mbdpo_envs.dmc")

from mbdpo_envs import make_agent_env  # noqa: E402
from mbdpo_torch import Agent  # noqa: E402

MT_TASKS = ["cartpole-balance", "pendulum-swingup"]
STEP = 7  # the loop step of the evaluations: seeds episode_seed(seed, EVAL, 7)


def agent_of(tiny, random_params, *overrides):
    cfg = load_config([*tiny, *overrides], backend="torch")
    agent = Agent(cfg)
    agent.import_params(random_params(cfg))  # a fresh agent's zero heads act alike everywhere
    return cfg, agent


def assert_same_state(agent, before):
    arrays, meta = agent.state_dict()
    assert arrays.keys() == before[0].keys()
    for name in arrays:
        np.testing.assert_array_equal(arrays[name], before[0][name], err_msg=name)
    assert meta == before[1]


def test_task_ids_and_bad_arguments(tiny):
    mt = load_config([*tiny, "task=mt30"], backend="torch")
    evaluator = TaskEvaluator(mt, ["pendulum-swingup", "walker-walk"], 1, make_agent_env)
    assert evaluator.task_ids == {"pendulum-swingup": 7, "walker-walk": 1}
    single = load_config([*tiny, "task=cartpole-balance"], backend="torch")
    assert TaskEvaluator(single, ["cartpole-balance"], 1, make_agent_env).task_ids == {
        "cartpole-balance": None
    }
    with pytest.raises(ConfigError, match="'mw-reach' is not a task.*walker-stand, walker-walk"):
        TaskEvaluator(mt, ["mw-reach"], 1, make_agent_env)
    with pytest.raises(ConfigError, match="valid: cartpole-balance"):
        TaskEvaluator(single, ["cartpole-swingup"], 1, make_agent_env)
    with pytest.raises(ConfigError, match="repeated"):
        TaskEvaluator(mt, ["walker-walk", "walker-walk"], 1, make_agent_env)
    with pytest.raises(ConfigError, match="at least one task"):
        TaskEvaluator(mt, [], 1, make_agent_env)
    with pytest.raises(ConfigError, match="episodes must be an int >= 1"):
        TaskEvaluator(mt, ["walker-walk"], 0, make_agent_env)
    with pytest.raises(ConfigError, match="workers must be an int >= 1"):
        TaskEvaluator(mt, ["walker-walk"], 1, make_agent_env, workers=0)


def test_agent_env_pads_a_task_to_the_multitask_agent(tiny):
    mt = load_config([*tiny, "task=mt30"], backend="torch")
    env = make_agent_env(mt, "cartpole-balance", 0)
    obs, _ = env.reset(seed=3)
    assert obs.shape == mt.obs_shape and env.action_dim == mt.action_dim
    assert not obs[5:].any()  # cartpole's 5 features, then zeros
    single = load_config([*tiny, "task=cartpole-balance"], backend="torch")
    assert make_agent_env(single, "cartpole-balance", 0).observation_shape == (5,)


def test_one_worker_runs_the_episodes_of_episode_evaluator(tiny, random_params):
    """Same seeds and task ids as EpisodeEvaluator; the agent's state is put back."""
    cfg, agent = agent_of(tiny, random_params, "task=mt30", "planner=policy")
    before = agent.state_dict()
    steps = []
    with TaskEvaluator(cfg, MT_TASKS, 1, make_agent_env) as evaluator:
        row = evaluator.evaluate(agent, STEP, on_step=lambda: steps.append(1))
        assert_same_state(agent, before)
        envs = {t: make_agent_env(cfg, t, cfg.seed) for t in MT_TASKS}
        ids = {t: cfg.tasks.index(t) for t in MT_TASKS}
        reference = EpisodeEvaluator(envs, 1, cfg.seed, ids).per_task(agent, STEP)
    per_task = {t: {k: row[f"{t}/{k}"] for k in EVAL_METRICS} for t in MT_TASKS}
    assert per_task == reference
    assert row == {
        **summarise(reference),
        **{f"{t}/{k}": v for t in per_task for k, v in per_task[t].items()},
    }
    assert len(steps) == 2 * 500  # on_step after every environment step


def evaluate_both_ways(cfg, agent, tasks):
    """(per-task metrics with 1 worker, with 2 workers, on_step calls of the second)."""
    before = agent.state_dict()
    with TaskEvaluator(cfg, tasks, 1, make_agent_env, workers=1) as here:
        one = here.per_task(agent, STEP)
    assert_same_state(agent, before)
    calls = []
    with TaskEvaluator(cfg, tasks, 1, make_agent_env, workers=2) as pool:
        two = pool.per_task(agent, STEP, on_step=lambda: calls.append(1))
    assert_same_state(agent, before)
    return one, two, len(calls)


@pytest.mark.slow  # two workers start in ~10-30 s (each imports torch and builds an agent)
def test_workers_give_the_numbers_of_one_process_policy_planner(tiny, random_params):
    cfg, agent = agent_of(tiny, random_params, "task=mt30", "planner=policy")
    one, two, calls = evaluate_both_ways(cfg, agent, MT_TASKS)
    assert list(two) == MT_TASKS and two == one
    assert calls == len(MT_TASKS)  # on_step once per finished task
    assert len({r["episode_reward"] for r in one.values()}) == 2  # the tasks differ


@pytest.mark.slow
@pytest.mark.parametrize(
    "task, tasks",
    [("mt30", MT_TASKS), ("cartpole-balance", ["cartpole-balance"])],
    ids=["mt30", "single-task"],
)
def test_workers_give_the_numbers_of_one_process_diffusion_planner(
    tiny, random_params, task, tasks
):
    """The planner draws noise and keeps a warm start: both are part of the state each task
    starts from, in this process (restored between tasks) and in a worker (loaded)."""
    cfg, agent = agent_of(tiny, random_params, f"task={task}")
    one, two, _ = evaluate_both_ways(cfg, agent, tasks)
    assert list(two) == tasks and two == one


def test_a_worker_that_cannot_start_is_our_error_and_no_pool_is_left(tiny, random_params):
    cfg, agent = agent_of(tiny, random_params, "task=mt30", "planner=policy")
    nope = dataclasses.replace(cfg, backend="nope")
    evaluator = TaskEvaluator(nope, MT_TASKS, 1, make_agent_env, workers=2)
    with pytest.raises(ConfigError, match="Unknown backend 'nope'"):
        evaluator.per_task(agent, STEP)
    assert evaluator._pool is None
    evaluator.close()


@pytest.mark.slow
def test_a_worker_failing_mid_evaluation_is_an_error_with_its_traceback(tiny, random_params):
    cfg, agent = agent_of(tiny, random_params, "task=mt30", "planner=policy")
    # builtin getattr(cfg, task, seed) "makes" the int seed, which has no reset(); both workers
    # fail, and whichever reports first is the error
    evaluator = TaskEvaluator(cfg, MT_TASKS, 1, getattr, workers=2)
    with pytest.raises(
        EvaluationWorkerError,
        match=r"(?s)evaluation worker [01] \(tasks [a-z-]+.*\) failed.*has no attribute 'reset'",
    ):
        evaluator.per_task(agent, STEP)
    assert evaluator._pool is None  # closed: no stale replies reach the next evaluation
    evaluator.close()
