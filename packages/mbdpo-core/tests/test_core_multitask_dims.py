"""Multi-task widths and parameter shapes as the published parsers give them
(docs/design.md#configuration, `mt30_dims`).

The expected shapes are written here from the published architecture (module inputs, widths and
model-size presets of the reference anatomy, sections 1.2, 1.6 and 8.2), not from
mbdpo_core.params; the mt80 parameter counts are the published code's own counts.
"""

import numpy as np
import pytest
from mbdpo_core.config.load import load_config
from mbdpo_core.params import param_shapes

PRESETS = {  # model_size: (enc_dim, mlp_dim, latent_dim, num_enc_layers, num_q)
    1: (256, 384, 128, 2, 2),
    5: (256, 512, 512, 2, 5),
    19: (1024, 1024, 768, 3, 5),
    48: (1792, 1792, 768, 4, 5),
    317: (4096, 4096, 1376, 5, 8),
}
SETS = {"mt30": (30, 24), "mt80": (80, 39)}  # tasks, widest observation; widest action 6
MBDPO_MT80_PARAMS = {1: 1.95, 5: 6.60, 19: 22.96, 48: 58.52, 317: 363.48}
"""Millions of parameters of the published MBDPO model at mt80 (no target or detached copies)."""
TDMPC2_MT80_PARAMS = {1: 1.44, 5: 5.39, 19: 18.97, 48: 48.79, 317: 317.38}
"""The same without the energy head F and the score network (TD-MPC2's model)."""


def published_widths(task: str, size: int, parser: str) -> tuple[int, int]:
    """(task_dim, latent_dim) the published parser sets: MBDPO's mt30 special cases name sizes
    2, 21 and 340, which are not presets, so only TD-MPC2's (1 and 317: task_dim 96; 19: latent
    512) ever apply."""
    latent = PRESETS[size][2]
    if task == "mt80":
        return 96, latent
    if parser == "tdmpc2":
        return (96 if size in (1, 317) else 64), (512 if size == 19 else latent)
    return 64, latent


def published_shapes(task: str, size: int, parser: str) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, Linear weights [in, out], in our canonical names."""
    enc, M, _, n_enc, Nq = PRESETS[size]
    E, L = published_widths(task, size, parser)
    n_tasks, D = SETS[task]
    A, H, K, T = 6, 3, 101, 64  # action, horizon, bins, time-embedding width

    def mlp(name, dims, last_norm, lead=()):
        out = {}
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            out[f"{name}.{i}.weight"] = (*lead, a, b)
            out[f"{name}.{i}.bias"] = (*lead, b)
            if i < len(dims) - 2 or last_norm:
                out[f"{name}.{i}.ln.weight"] = (*lead, b)
                out[f"{name}.{i}.ln.bias"] = (*lead, b)
        return out

    return {
        **mlp("encoder", [D + E, *[enc] * max(n_enc - 1, 1), L], True),
        **mlp("dynamics", [L + E + A, M, M, L], True),
        **mlp("reward", [L + E + A, M, M, K], False),
        **mlp("pi", [L + E, M, M, 2 * A], False),
        **mlp("energy", [L + E + A, M, M, 1], False),
        **mlp("q", [L + E + A, M, M, K], False, lead=(Nq,)),
        **mlp("score", [L + E + H * A + T, M, M, H * A], False),
        "task_emb.weight": (n_tasks, E),
    }


@pytest.mark.parametrize("parser", ["mbdpo", "tdmpc2"])
@pytest.mark.parametrize("size", list(PRESETS))
@pytest.mark.parametrize("task", list(SETS))
def test_parameter_shapes_are_the_published_ones(task, size, parser):
    cfg = load_config([f"task={task}", f"model_size={size}", "preset=paper", f"mt30_dims={parser}"])
    assert (cfg.task_dim, cfg.latent_dim) == published_widths(task, size, parser)
    assert param_shapes(cfg, target=False) == published_shapes(task, size, parser)


@pytest.mark.parametrize("size", list(PRESETS))
def test_mt80_parameter_counts_are_the_published_ones(size):
    shapes = param_shapes(load_config(["task=mt80", f"model_size={size}", "preset=paper"]), False)
    count = sum(int(np.prod(s)) for s in shapes.values())
    tdmpc2 = sum(
        int(np.prod(s)) for k, s in shapes.items() if k.split(".")[0] not in ("energy", "score")
    )
    assert round(count / 1e6, 2) == MBDPO_MT80_PARAMS[size]
    assert round(tdmpc2 / 1e6, 2) == TDMPC2_MT80_PARAMS[size]


def test_default_is_mbdpos_parser_and_explicit_widths_win():
    assert load_config(["task=mt30", "model_size=1"]).task_dim == 64
    assert load_config(["task=mt30", "model_size=317", "preset=paper"]).task_dim == 64
    tdmpc2 = ["task=mt30", "model_size=19", "preset=paper", "mt30_dims=tdmpc2"]
    cfg = load_config([*tdmpc2, "latent_dim=640", "task_dim=32"])
    assert (cfg.latent_dim, cfg.task_dim) == (640, 32)
    single = load_config(["task=cheetah-run", "model_size=19", "mt30_dims=tdmpc2"])
    assert (single.latent_dim, single.task_dim) == (768, 0)
