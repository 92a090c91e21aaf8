"""Importing published TD-MPC2 / MBDPO checkpoints (mbdpo_data.published_checkpoint).

The published world model is rebuilt here by hand from plain torch.nn layers under the
published attribute names (NormedLinear = Linear -> LayerNorm -> Mish, SimNorm groups of 8,
the rgb encoder behind its shift and pixel-scaling modules), given random weights, saved with
torch.save in each published layout, imported, and loaded into both backends: every head's
output must equal the hand-built module's for the same input.
"""

from __future__ import annotations

import math
import pickle

import jax.numpy as jnp
import mbdpo_jax
import mbdpo_torch
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mbdpo_core.config.load import load_config
from mbdpo_core.errors import CheckpointError, ConfigError
from mbdpo_core.params import init_params
from mbdpo_data.published_checkpoint import infer_model_size, read_published, to_canonical
from torch import nn

TOL = 1e-5
TINY = ["preset=cpu", "mlp_dim=32", "latent_dim=16", "enc_dim=32", "num_q=2"]
RGB = ["task=cartpole-swingup", "obs=rgb", "preset=cpu", "latent_dim=32", "mlp_dim=32"]
MT30 = [*TINY, "task=mt30", "task_dim=8"]


class SimNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x.unflatten(-1, (-1, 8)), dim=-1).flatten(-2)


class NormedLinear(nn.Linear):
    def __init__(self, in_dim: int, out_dim: int, act: nn.Module | None = None) -> None:
        super().__init__(in_dim, out_dim)
        self.ln = nn.LayerNorm(out_dim)
        self.act = act if act is not None else nn.Mish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.ln(super().forward(x)))


class PixelScale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / 255.0 - 0.5


def mlp(in_dim, hidden, out_dim, act=None):
    dims = [in_dim, *hidden]
    layers = [NormedLinear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)]
    last = NormedLinear(dims[-1], out_dim, act) if act else nn.Linear(dims[-1], out_dim)
    return nn.Sequential(*layers, last)


def conv_encoder(channels_in, ch):
    return nn.Sequential(
        nn.Identity(),  # the published random shift (training only; parameter-free)
        PixelScale(),
        nn.Conv2d(channels_in, ch, 7, stride=2),
        nn.ReLU(),
        nn.Conv2d(ch, ch, 5, stride=2),
        nn.ReLU(),
        nn.Conv2d(ch, ch, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(ch, ch, 3, stride=1),
        nn.Flatten(),
        SimNorm(),
    )


class Published(nn.Module):
    """The published world model's attribute layout, minus the Q ensemble (built apart)."""

    def __init__(self, cfg, energy: bool) -> None:
        super().__init__()
        Z, A, M, K = cfg.latent_dim, cfg.action_dim, cfg.mlp_dim, cfg.num_bins
        E = cfg.task_dim if cfg.multitask else 0
        if cfg.multitask:
            self._task_emb = nn.Embedding(cfg.n_tasks, E, max_norm=1)
            masks = torch.zeros(cfg.n_tasks, A)
            for i, dim in enumerate(cfg.action_dims):
                masks[i, :dim] = 1.0
            self.register_buffer("_action_masks", masks)
        if cfg.obs == "rgb":
            enc = conv_encoder(cfg.obs_shape[0], cfg.num_channels)
        else:
            hidden = [cfg.enc_dim] * max(cfg.num_enc_layers - 1, 1)
            enc = mlp(cfg.obs_shape[0] + E, hidden, Z, SimNorm())
        self._encoder = nn.ModuleDict({cfg.obs: enc})
        self._dynamics = mlp(Z + E + A, [M, M], Z, SimNorm())
        self._reward = mlp(Z + E + A, [M, M], K)
        if cfg.episodic:
            self._termination = mlp(Z + E, [M, M], 1)
        self._pi = mlp(Z + E, [M, M], 2 * A)
        if energy:
            self._F = mlp(Z + E + A, [M, M], 1)
            self._score = mlp(
                Z + E + cfg.horizon * A + cfg.diffusion_time_embed_dim, [M, M], cfg.horizon * A
            )
        self.register_buffer("log_std_min", torch.tensor(cfg.log_std_min))
        self.register_buffer("log_std_dif", torch.tensor(cfg.log_std_max) - self.log_std_min)


def build(cfg, energy, seed=0):
    """(published module, Q members, target Q members) with random weights."""
    torch.manual_seed(seed)
    Z, A, M, K = cfg.latent_dim, cfg.action_dim, cfg.mlp_dim, cfg.num_bins
    E = cfg.task_dim if cfg.multitask else 0
    model = Published(cfg, energy)
    qs = [mlp(Z + E + A, [M, M], K) for _ in range(cfg.num_q)]
    targets = [mlp(Z + E + A, [M, M], K) for _ in range(cfg.num_q)]
    with torch.no_grad():
        for module in [model, *qs, *targets]:
            for p in module.parameters():
                p.normal_(0.0, 0.3)
    return model.eval(), qs, targets


def stacked(members):
    """name -> parameters of every member stacked [Nq, ...], in module order."""
    names = [n for n, _ in members[0].named_parameters()]
    return {
        n: torch.stack([dict(m.named_parameters())[n].detach() for m in members]) for n in names
    }


def published_state(model, qs, targets, layout):
    """The state dict as TD-MPC2 / MBDPO save it, with the Q ensemble in `layout`."""
    sd = model.state_dict()  # an OrderedDict carrying _metadata, as published
    q, tq = stacked(qs), stacked(targets)
    if layout == "nested":
        for name, value in q.items():
            sd[f"_Qs.params.{name}"] = value
            sd[f"_detach_Qs_params.{name}"] = value  # the same tensor, as published
        for name, value in tq.items():
            sd[f"_target_Qs_params.{name}"] = value
        for prefix in ("_Qs.params", "_detach_Qs_params", "_target_Qs_params"):
            sd[f"{prefix}.__batch_size"] = torch.Size([len(qs)])
            sd[f"{prefix}.__device"] = torch.device("cpu")
    else:  # older TD-MPC2: one entry per member parameter, numbered in module order
        for i, value in enumerate(q.values()):
            sd[f"_Qs.params.{i}"] = value
        for i, value in enumerate(tq.values()):
            sd[f"_target_Qs.params.{i}"] = value
        for buffer in ("log_std_min", "log_std_dif", "_action_masks"):  # not in that API
            sd.pop(buffer, None)
    return sd


def time_embedding(tau, dim):
    half = dim // 2
    freqs = np.exp(-np.arange(half) * math.log(10000.0) / (half - 1))
    args = tau[:, None].astype(np.float64) * freqs
    return np.concatenate([np.sin(args), np.cos(args)], axis=-1).astype(np.float32)


def inputs(cfg, seed=1, B=5):
    rng = np.random.default_rng(seed)
    if cfg.obs == "rgb":
        obs = rng.integers(0, 256, (B, *cfg.obs_shape), dtype=np.uint8)
    else:
        obs = rng.standard_normal((B, cfg.obs_shape[0])).astype(np.float32)
    z = rng.standard_normal((B, cfg.latent_dim)).astype(np.float32)
    return {
        "obs": obs,
        "z": z,
        "a": rng.uniform(-1, 1, (B, cfg.action_dim)).astype(np.float32),
        "x": rng.standard_normal((B, cfg.horizon, cfg.action_dim)).astype(np.float32),
        "tau": rng.integers(1, 5, B),
        "task": rng.integers(0, cfg.n_tasks, B) if cfg.multitask else None,
    }


@torch.no_grad()
def reference_outputs(cfg, model, qs, targets, d):
    """Every head's output computed with the hand-built published modules."""
    task = torch.as_tensor(d["task"]) if cfg.multitask else None

    def cat(x, *rest):
        emb = [model._task_emb(task)] if cfg.multitask else []
        return torch.cat([x, *emb, *rest], dim=-1)

    obs, z, a = (torch.as_tensor(d[k]) for k in ("obs", "z", "a"))
    out = {}
    if cfg.obs == "rgb":
        out["encode"] = model._encoder["rgb"](obs.float())
    else:
        out["encode"] = model._encoder["state"](cat(obs))
    out["next"] = model._dynamics(cat(z, a))
    out["reward"] = model._reward(cat(z, a))
    mean, raw = model._pi(cat(z)).chunk(2, dim=-1)
    log_std = model.log_std_min + 0.5 * model.log_std_dif * (torch.tanh(raw) + 1)
    if cfg.multitask:
        mean, log_std = mean * model._action_masks[task], log_std * model._action_masks[task]
    out["pi_mean"], out["pi_log_std"] = torch.tanh(mean), log_std
    out["Q"] = torch.stack([m(cat(z, a)) for m in qs])
    out["Q_target"] = torch.stack([m(cat(z, a)) for m in targets])
    if hasattr(model, "_F"):
        out["F"] = model._F(cat(z, a))
        temb = torch.as_tensor(time_embedding(d["tau"], cfg.diffusion_time_embed_dim))
        x = torch.as_tensor(d["x"])
        out["score"] = model._score(cat(z, x.flatten(-2), temb)).reshape(x.shape)
    if cfg.episodic:
        out["termination"] = model._termination(cat(z))
    return {k: v.numpy().astype(np.float64) for k, v in out.items()}


def backend_outputs(cfg, params, backend, d, keys):
    """The same heads from an agent of `backend` that imported `params`."""
    agent = (mbdpo_torch if backend == "torch" else mbdpo_jax).Agent(cfg)
    agent.import_params(params)
    wm = agent.model
    conv = torch.as_tensor if backend == "torch" else jnp.asarray
    c = {k: None if v is None else conv(v) for k, v in d.items()}
    t, z, a = c["task"], c["z"], c["a"]
    out = {}
    with torch.no_grad():
        out["encode"] = wm.encode(c["obs"], t)
        out["next"] = wm.next(z, a, t)
        out["reward"] = wm.reward(z, a, t)
        _, info = wm.pi(z, t, conv(np.zeros_like(d["a"])))
        out["pi_mean"], out["pi_log_std"] = info["mean"], info["log_std"]
        out["Q"] = wm.Q(z, a, t)
        out["Q_target"] = wm.Q(z, a, t, target=True)
        if "F" in keys:
            out["F"] = wm.F(z, a, t)
            out["score"] = wm.score(z, c["x"], c["tau"], t)
        if "termination" in keys:
            out["termination"] = wm.termination(z, t)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


CASES = {  # name -> (config overrides, format, with F and score, Q layout, wrapped in "model")
    "mbdpo-state-episodic": ([*TINY, "episodic=true"], "mbdpo", True, "nested", True),
    "tdmpc2-state-flattened-bare": (TINY, "tdmpc2", False, "flattened", False),
    "tdmpc2-rgb": (RGB, "tdmpc2", False, "nested", True),
    "mbdpo-rgb-flattened": (RGB, "mbdpo", True, "flattened", True),
    "tdmpc2-mt30": (MT30, "tdmpc2", False, "nested", True),
    "tdmpc2-mt30-flattened-bare": (MT30, "tdmpc2", False, "flattened", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_imported_checkpoint_gives_the_published_modules_outputs_in_both_backends(case, tmp_path):
    overrides, fmt, energy, layout, wrapped = CASES[case]
    cfg = load_config(overrides)
    model, qs, targets = build(cfg, energy)
    sd = published_state(model, qs, targets, layout)
    path = tmp_path / "published.pt"
    torch.save({"model": sd} if wrapped else sd, path)

    params, notes = to_canonical(read_published(path, fmt), cfg)

    d = inputs(cfg)
    want = reference_outputs(cfg, model, qs, targets, d)
    for backend in ("torch", "jax"):
        got = backend_outputs(cfg, params, backend, d, want)
        assert set(got) == set(want)
        diffs = {k: float(np.max(np.abs(got[k] - want[k]))) for k in want}
        assert all(v <= TOL for v in diffs.values()), f"{backend}: {diffs}"
    if energy:
        assert notes == []
    else:
        assert [n.split(":")[0] for n in notes] == ["energy", "score"]
        init = init_params(cfg, np.random.default_rng(0))
        for name in [n for n in params if n.startswith(("energy.", "score."))]:
            np.testing.assert_array_equal(params[name], init[name])


def test_read_published_returns_the_saved_tensors_by_key(tmp_path):
    cfg = load_config(TINY)
    model, qs, targets = build(cfg, energy=True)
    sd = published_state(model, qs, targets, "nested")
    path = tmp_path / "mbdpo.pt"
    torch.save({"model": sd}, path)

    arrays = read_published(path, "mbdpo")

    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    assert set(arrays) == set(tensors)
    for key, value in tensors.items():
        np.testing.assert_array_equal(arrays[key], value.numpy(), err_msg=key)


def test_a_non_contiguous_tensor_is_read_with_its_strides(tmp_path):
    weight = torch.arange(12.0).reshape(3, 4)
    path = tmp_path / "t.pt"
    torch.save({"model": {"w": weight.t(), "v": weight[1:, 2:]}}, path)

    arrays = read_published(path, "tdmpc2")

    np.testing.assert_array_equal(arrays["w"], weight.numpy().T)
    np.testing.assert_array_equal(arrays["v"], weight.numpy()[1:, 2:])


def _saved(tmp_path, cfg, edit=None, fmt="tdmpc2", wrapped=True):
    model, qs, targets = build(cfg, energy=False)
    sd = published_state(model, qs, targets, "nested")
    if edit:
        edit(sd)
    path = tmp_path / "edited.pt"
    torch.save({"model": sd} if wrapped else sd, path)
    return path


def test_an_unknown_key_is_named(tmp_path):
    cfg = load_config(TINY)
    path = _saved(tmp_path, cfg, lambda sd: sd.update({"_G.0.weight": torch.zeros(3, 4)}))
    with pytest.raises(CheckpointError, match=r"'_G\.0\.weight' \(3, 4\) cannot be mapped"):
        to_canonical(read_published(path, "tdmpc2"), cfg)


def test_a_termination_head_is_refused_by_a_non_episodic_config(tmp_path):
    cfg = load_config([*TINY, "episodic=true"])
    path = _saved(tmp_path, cfg)
    with pytest.raises(CheckpointError, match=r"'_termination\.0\.weight'.*does not have"):
        to_canonical(read_published(path, "tdmpc2"), load_config(TINY))


def test_a_wrong_shape_names_key_shape_and_expected(tmp_path):
    cfg = load_config(TINY)
    path = _saved(tmp_path, cfg, lambda sd: sd.update({"_reward.0.weight": torch.zeros(7, 3)}))
    expected = (cfg.mlp_dim, cfg.latent_dim + cfg.action_dim)  # published [out, in]
    with pytest.raises(CheckpointError) as err:
        to_canonical(read_published(path, "tdmpc2"), cfg)
    assert "'_reward.0.weight' has shape (7, 3)" in str(err.value)
    assert f"expected {expected}" in str(err.value)


def test_a_checkpoint_of_another_model_size_is_refused_by_shape(tmp_path):
    path = _saved(tmp_path, load_config(TINY))
    with pytest.raises(CheckpointError, match=r"'_encoder\.state\.0\.weight' has shape \(32, 5\)"):
        to_canonical(read_published(path, "tdmpc2"), load_config([*TINY, "enc_dim=24"]))


def test_a_missing_parameter_is_named(tmp_path):
    cfg = load_config(TINY)
    path = _saved(tmp_path, cfg, lambda sd: sd.pop("_pi.2.bias"))
    with pytest.raises(CheckpointError, match=r"lacks 1 parameters of this model: pi\.2\.bias"):
        to_canonical(read_published(path, "tdmpc2"), cfg)


def test_log_std_buffers_other_than_the_configs_are_refused(tmp_path):
    cfg = load_config(TINY)
    path = _saved(tmp_path, cfg, lambda sd: sd.update({"log_std_min": torch.tensor(-5.0)}))
    with pytest.raises(CheckpointError, match=r"log_std_min = -5\.0 .* config gives -10\.0"):
        to_canonical(read_published(path, "tdmpc2"), cfg)


def test_action_masks_of_another_task_set_are_refused(tmp_path):
    cfg = load_config(MT30)
    masks = torch.ones(cfg.n_tasks, cfg.action_dim)
    path = _saved(tmp_path, cfg, lambda sd: sd.update({"_action_masks": masks}))
    with pytest.raises(CheckpointError, match="_action_masks"):
        to_canonical(read_published(path, "tdmpc2"), cfg)


def test_a_bare_state_dict_is_not_an_mbdpo_checkpoint(tmp_path):
    cfg = load_config(TINY)
    path = _saved(tmp_path, cfg, wrapped=False)
    assert "_pi.0.weight" in read_published(path, "tdmpc2")
    with pytest.raises(CheckpointError, match=r"without a 'model' state dict.*mbdpo"):
        read_published(path, "mbdpo")


def test_an_unknown_format_names_the_valid_ones(tmp_path):
    path = _saved(tmp_path, load_config(TINY))
    with pytest.raises(ConfigError, match=r"format='tdmpc' .*'tdmpc2', 'mbdpo'"):
        read_published(path, "tdmpc")


def _touch(path):
    open(path, "w").close()


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_touch, (str(self.marker),))


def test_a_pickle_naming_another_global_is_refused_without_running_it(tmp_path):
    control = tmp_path / "control-ran"
    pickle.loads(pickle.dumps(_Payload(control)))  # plain unpickling does run it
    assert control.exists()
    marker = tmp_path / "payload-ran"
    path = _saved(tmp_path, load_config(TINY), lambda sd: sd.update({"x": _Payload(marker)}))

    with pytest.raises(CheckpointError) as err:
        read_published(path, "tdmpc2")

    assert f"{_touch.__module__}._touch" in str(err.value)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_a_file_that_is_not_a_torch_zip_is_refused(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a torch.save zip"):
        read_published(path, "mbdpo")


def test_model_size_is_inferred_from_the_shapes():
    def shapes(enc, mlp_dim, latent, layers, nq):
        dims = {f"_encoder.state.{i}.weight": (enc, 1) for i in range(layers)}
        dims.update({"_dynamics.0.weight": (mlp_dim, 1), "_dynamics.2.weight": (latent, 1)})
        dims["_Qs.params.0.weight"] = (nq, 1, 1)
        return {k: np.zeros(v, np.float32) for k, v in dims.items()}

    assert infer_model_size(shapes(256, 384, 128, 2, 2)) == 1
    assert infer_model_size(shapes(1024, 1024, 768, 3, 5)) == 19
    assert infer_model_size(shapes(1024, 1024, 512, 3, 5)) == 19  # TD-MPC2's mt30-19M
    assert infer_model_size(shapes(4096, 4096, 1376, 5, 8)) == 317
    assert infer_model_size(shapes(256, 384, 128, 2, 5)) is None
    assert infer_model_size(shapes(256, 100, 128, 2, 2)) is None
    assert infer_model_size({}) is None


def test_bfloat16_tensors_are_read_as_their_float32_values(tmp_path):
    cfg = load_config(TINY)
    model, qs, targets = build(cfg, energy=True)
    sd = {k: v.bfloat16() if v.is_floating_point() else v for k, v in _tensors(model, qs, targets)}
    path = tmp_path / "bf16.pt"
    torch.save({"model": sd}, path)

    arrays = read_published(path, "mbdpo")

    for key, value in sd.items():
        want = value.float().numpy() if value.is_floating_point() else value.numpy()
        assert arrays[key].dtype == want.dtype, key
        np.testing.assert_array_equal(arrays[key], want, err_msg=key)
    assert any(v.dtype == torch.bfloat16 for v in sd.values())


@pytest.mark.parametrize("wrapper", ["module.", "_orig_mod.", "module._orig_mod."])
def test_a_wrapped_models_prefix_is_dropped(wrapper, tmp_path):
    cfg = load_config(TINY)
    model, qs, targets = build(cfg, energy=True)
    sd = dict(_tensors(model, qs, targets))
    torch.save({"model": sd}, tmp_path / "plain.pt")
    torch.save({"model": {wrapper + k: v for k, v in sd.items()}}, tmp_path / "wrapped.pt")

    plain, _ = to_canonical(read_published(tmp_path / "plain.pt", "mbdpo"), cfg)
    wrapped, _ = to_canonical(read_published(tmp_path / "wrapped.pt", "mbdpo"), cfg)

    assert set(wrapped) == set(plain)
    for name in plain:
        np.testing.assert_array_equal(wrapped[name], plain[name], err_msg=name)


def _tensors(model, qs, targets):
    """(key, tensor) of a published-layout state dict, tensordict metadata left out."""
    sd = published_state(model, qs, targets, "nested")
    return [(k, v) for k, v in sd.items() if isinstance(v, torch.Tensor)]
