"""Cross-backend parity of every world-model module: torch and JAX built from the same
canonical parameters agree with each other and with the numpy oracle (FORWARD_TOL, from the
error budget in parity_budget.py)."""

import jax.numpy as jnp
import mbdpo_jax
import mbdpo_torch
import numpy as np
import pytest
import torch
from mbdpo_core.config.load import load_config
from mbdpo_core.reference import model as ref
from parity_budget import FORWARD_TOL

VARIANTS = {"single": [], "multitask": ["task=mt30", "task_dim=8"], "episodic": ["episodic=true"]}


def module_outputs(cfg, params, backend, data):
    """Every module's output as float64 numpy, for backend 'torch' | 'jax' | 'numpy'."""
    d, out = data, {}
    if backend == "numpy":
        t = d["task"]
        out["encode"] = ref.encode(params, cfg, d["obs"], t)
        out["next"] = ref.next(params, cfg, d["z"], d["a"], t)
        out["reward"] = ref.reward(params, cfg, d["z"], d["a"], t)
        out["F"] = ref.F(params, cfg, d["z"], d["a"], t)
        out["Q"] = ref.Q(params, cfg, d["z"], d["a"], t)
        out["Q_target_dropout"] = ref.Q(params, cfg, d["z"], d["a"], t, target=True, keep=d["keep"])
        out["score"] = ref.score(params, cfg, d["z"], d["x"], d["tau"], t)
        pi, info = ref.pi(params, cfg, d["z"], t, d["eps"])
        if cfg.episodic:
            out["termination"] = ref.termination(params, cfg, d["z"], t)
    else:
        agent = (mbdpo_torch if backend == "torch" else mbdpo_jax).Agent(cfg)
        agent.import_params(params)
        wm = agent.model
        conv = torch.as_tensor if backend == "torch" else jnp.asarray
        c = {k: None if v is None else conv(v) for k, v in d.items()}
        t = c["task"]
        with torch.no_grad():
            out["encode"] = wm.encode(c["obs"], t)
            out["next"] = wm.next(c["z"], c["a"], t)
            out["reward"] = wm.reward(c["z"], c["a"], t)
            out["F"] = wm.F(c["z"], c["a"], t)
            out["Q"] = wm.Q(c["z"], c["a"], t)
            out["Q_target_dropout"] = wm.Q(c["z"], c["a"], t, target=True, keep=c["keep"])
            out["score"] = wm.score(c["z"], c["x"], c["tau"], t)
            pi, info = wm.pi(c["z"], t, c["eps"])
            if cfg.episodic:
                out["termination"] = wm.termination(c["z"], t)
    out["pi"] = pi
    out.update({f"pi_{k}": v for k, v in info.items()})
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def inputs(cfg, seed=1, B=6):
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.standard_normal((B, cfg.obs_shape[0])).astype(np.float32),
        "z": ref.simnorm(rng.standard_normal((B, cfg.latent_dim))).astype(np.float32),
        "a": rng.uniform(-1, 1, (B, cfg.action_dim)).astype(np.float32),
        "eps": rng.standard_normal((B, cfg.action_dim)).astype(np.float32),
        "x": rng.standard_normal((B, cfg.horizon, cfg.action_dim)).astype(np.float32),
        "tau": rng.integers(1, 5, B),
        "keep": (rng.random((cfg.num_q, B, cfg.mlp_dim)) < 0.7).astype(np.float32),
        "task": rng.integers(0, cfg.n_tasks, B) if cfg.multitask else None,
    }


def max_abs_diffs(a, b):
    assert set(a) == set(b), sorted(set(a) ^ set(b))
    return {k: float(np.max(np.abs(a[k] - b[k]))) for k in a}


def assert_close(a, b, tol):
    diffs = max_abs_diffs(a, b)
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    assert not bad, f"max abs differences above {tol}: {bad}"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_module_agrees_across_backends_and_oracle(variant, tiny, random_params):
    cfg = load_config([*tiny, *VARIANTS[variant]])
    params, data = random_params(cfg), inputs(cfg)
    outs = {b: module_outputs(cfg, params, b, data) for b in ("torch", "jax", "numpy")}
    assert_close(outs["torch"], outs["jax"], FORWARD_TOL)
    assert_close(outs["jax"], outs["numpy"], FORWARD_TOL)
    assert_close(outs["torch"], outs["numpy"], FORWARD_TOL)


def test_parity_check_detects_one_perturbed_weight(tiny, random_params):
    cfg = load_config(tiny)
    params, data = random_params(cfg), inputs(cfg)
    reference = module_outputs(cfg, params, "torch", data)
    perturbed = {k: v.copy() for k, v in params.items()}
    perturbed["dynamics.1.weight"][3, 5] += 1e-3
    with pytest.raises(AssertionError, match="next"):
        assert_close(reference, module_outputs(cfg, perturbed, "jax", data), FORWARD_TOL)
