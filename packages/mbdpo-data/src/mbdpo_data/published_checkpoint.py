"""Importing the published TD-MPC2 and MBDPO checkpoints into canonical parameters.

Both projects save `torch.save({"model": world_model.state_dict()})`; TD-MPC2's loader also
takes a bare state dict, so `format="tdmpc2"` accepts both and `format="mbdpo"` the wrapped one.
`read_published` reads the file with pt_chunk's restricted unpickler (no torch, no tensordict,
no code from the file); `to_canonical` renames, transposes and checks the arrays against
`mbdpo_core.params.param_shapes` (docs/data.md#published-checkpoints). Published layout:

  `_encoder.state.<i>.*`, `_dynamics.<i>.*`, `_reward`, `_termination`, `_pi`, `_F`, `_score`:
      Sequential index i = canonical layer i; Linear weight [out, in] (canonical [in, out])
  `_encoder.rgb.<j>.*`: conv j = 2, 4, 6, 8 (after the shift and pixel-scaling modules) =
      canonical layer (j - 2) / 2; weight OIHW (canonical HWIO)
  `_Qs.params.<i>.<p>` (tensordict layout): stacked [Nq, ...]; `_target_Qs_params.<i>.<p>` the
      target copy; `_detach_Qs_params.*` a duplicate of `_Qs` (ignored); `*.__batch_size`,
      `*.__device` tensordict metadata (ignored)
  `_Qs.params.<n>` / `_target_Qs.params.<n>` (older TD-MPC2): the members' parameters in
      module order, n = 4 x layer + (weight, bias, ln.weight, ln.bias)
  `log_std_min`, `log_std_dif`, `_action_masks`: buffers, checked against the config
  `_task_emb.weight`: the task embedding [Mt, E]

A state dict saved from a wrapped model (`module.` of DistributedDataParallel, `_orig_mod.` of
torch.compile) has the wrapper's prefix on every key; read_published drops it. bfloat16 tensors
are widened to float32.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mbdpo_core.config.load import load_config
from mbdpo_core.config.presets import MODEL_SIZES
from mbdpo_core.config.schema import Config
from mbdpo_core.errors import CheckpointError, ConfigError
from mbdpo_core.params import action_masks, init_params, param_shapes
from mbdpo_core.tasks import MULTITASK_SETS

from .pt_chunk import (
    BFLOAT16,
    SafeUnpickler,
    TensorRef,
    UnsafeGlobal,
    open_torch_zip,
    widen_bfloat16,
)

__all__ = [
    "FORMATS",
    "PUBLISHED_TASK_SETS",
    "infer_model_size",
    "published_config",
    "read_published",
    "to_canonical",
]

FORMATS = ("tdmpc2", "mbdpo")
"""Values of `format`: the project that wrote the checkpoint."""

MODULES = {
    "_dynamics": "dynamics",
    "_reward": "reward",
    "_termination": "termination",
    "_pi": "pi",
    "_F": "energy",
    "_score": "score",
}
"""Published module prefix -> canonical module name (besides encoder and Q)."""

KNOWN = (
    "_encoder.state.<i>.*, _encoder.rgb.<2|4|6|8>.*, _dynamics, _reward, _termination, _pi, "
    "_F, _score, _Qs.params, _detach_Qs_params, _target_Qs_params, _target_Qs.params, "
    "_task_emb.weight, log_std_min, log_std_dif, _action_masks"
)
"""The published key families, for error messages."""

OPTIONAL = ("energy.", "score.")
"""Canonical modules a TD-MPC2 checkpoint lacks; filled from init_params."""

_OLD_Q_NAMES = ("weight", "bias", "ln.weight", "ln.bias")
_TENSORDICT_META = (".__batch_size", ".__device")
_PARAM = r"(weight|bias|ln\.weight|ln\.bias)"
_PATTERNS = [
    (re.compile(rf"_encoder\.state\.(\d+)\.{_PARAM}"), "linear"),
    (re.compile(r"_encoder\.rgb\.(\d+)\.(weight|bias)"), "conv"),
    (re.compile(rf"(_dynamics|_reward|_termination|_pi|_F|_score)\.(\d+)\.{_PARAM}"), "module"),
    (re.compile(rf"(_Qs\.params|_target_Qs_params)\.(\d+)\.{_PARAM}"), "q"),
    (re.compile(r"(_Qs\.params|_target_Qs\.params)\.(\d+)"), "old_q"),
]


def _unwrap(path: Path, obj: Any, fmt: str) -> dict[str, Any]:
    """The state dict inside the unpickled object."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"]
    if fmt == "tdmpc2" and isinstance(obj, dict) and obj:
        return obj  # older TD-MPC2 files: the bare state dict
    raise CheckpointError(
        f"{path}: holds a {type(obj).__name__} without a 'model' state dict; a {fmt} checkpoint "
        'is torch.save({"model": state_dict})'
        + (" or a bare state dict." if fmt == "tdmpc2" else ".")
    )


def _array(path: Path, archive: zipfile.ZipFile, prefix: str, key: str, t: TensorRef) -> np.ndarray:
    """The tensor's values as a new numpy array (any strides within its storage)."""
    member = f"{prefix}data/{t.storage.key}"
    try:
        raw = archive.read(member)  # checks the member's CRC
    except (KeyError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path}: storage of {key!r} unreadable ({err}).") from None
    itemsize = t.storage.dtype.itemsize
    if len(raw) != t.storage.numel * itemsize:
        raise CheckpointError(
            f"{path}: storage of {key!r} holds {len(raw)} bytes, its record says "
            f"{t.storage.numel} x {itemsize}; the file is corrupt."
        )
    flat = np.frombuffer(raw, dtype=t.storage.dtype.newbyteorder("<"))
    if 0 in t.shape:
        return np.zeros(t.shape, np.float32 if t.storage.dtype == BFLOAT16 else flat.dtype)
    last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride, strict=True))
    if t.offset < 0 or min(t.stride, default=0) < 0 or last >= t.storage.numel:
        raise CheckpointError(f"{path}: tensor {key!r} lies outside its storage; corrupt.")
    strides = tuple(s * itemsize for s in t.stride)
    array = np.array(np.lib.stride_tricks.as_strided(flat[t.offset :], t.shape, strides))
    return widen_bfloat16(array) if t.storage.dtype == BFLOAT16 else array


WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""Key prefixes a wrapped model adds to every key of its state dict (DDP, torch.compile)."""


def _unwrapped_keys(state: dict[str, Any]) -> dict[str, Any]:
    """`state` without the wrapper prefixes that every one of its keys carries."""
    while state and (
        prefix := next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)
    ):
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def read_published(path: str | Path, format: str) -> dict[str, np.ndarray]:
    """The state dict of a published checkpoint: published key -> array, read safely.

    Tensordict metadata entries (`*.__batch_size`, `*.__device`, not tensors) are left out;
    WRAPPER_PREFIXES shared by every key are dropped; bfloat16 tensors become float32.
    Raises ConfigError for a format not in FORMATS; CheckpointError naming the file and the
    problem: not a torch zip, a pickled global outside pt_chunk.ALLOWED (refused unrun), no
    state dict, a non-tensor entry, a corrupt storage.
    """
    if format not in FORMATS:
        raise ConfigError(f"format={format!r} is not a checkpoint format; valid: {FORMATS}.")
    path = Path(path)
    archive, prefix = open_torch_zip(path, CheckpointError)
    with archive:
        try:
            obj = SafeUnpickler(io.BytesIO(archive.read(prefix + "data.pkl"))).load()
        except UnsafeGlobal as err:
            raise CheckpointError(
                f"{path}: its pickle asks for the global {err}, which a published checkpoint "
                "never holds; refused without running it (only state dicts of tensors are read)."
            ) from None
        except Exception as err:  # any failure of a damaged pickle is the file's fault
            raise CheckpointError(f"{path}: corrupt pickle: {err!r:.200}") from None
        arrays: dict[str, np.ndarray] = {}
        for key, value in _unwrap(path, obj, format).items():
            if str(key).endswith(_TENSORDICT_META):
                continue
            if not isinstance(value, TensorRef):
                raise CheckpointError(
                    f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor."
                )
            arrays[str(key)] = _array(path, archive, prefix, str(key), value)
    return _unwrapped_keys(arrays)


def _canonical_name(key: str) -> tuple[str, str] | None:
    """(canonical name, kind) of a published parameter key, None when no pattern matches.

    kind: "linear" (transpose the last two axes of a weight), "conv" (OIHW -> HWIO), "plain".
    """
    for pattern, kind in _PATTERNS:
        m = pattern.fullmatch(key)
        if m is None:
            continue
        if kind == "linear":
            return f"encoder.{m[1]}.{m[2]}", "linear"
        if kind == "conv":
            j = int(m[1])
            if j < 2 or j % 2:
                return None
            return f"encoder.{(j - 2) // 2}.{m[2]}", "conv"
        if kind == "module":
            return f"{MODULES[m[1]]}.{m[2]}.{m[3]}", "linear"
        if kind == "q":
            module = "q" if m[1] == "_Qs.params" else "target_q"
            return f"{module}.{m[2]}.{m[3]}", "linear"
        module = "q" if m[1] == "_Qs.params" else "target_q"  # old_q
        n = int(m[2])
        return f"{module}.{n // 4}.{_OLD_Q_NAMES[n % 4]}", "linear"
    return None


def _is_matrix(name: str, kind: str) -> bool:
    """Whether the parameter is a Linear or conv weight (whose layout differs)."""
    return kind != "plain" and name.endswith(".weight") and not name.endswith(".ln.weight")


def _to_canonical_layout(value: np.ndarray, name: str, kind: str) -> np.ndarray:
    """[.., out, in] -> [.., in, out]; conv OIHW -> HWIO (shape already checked)."""
    if not _is_matrix(name, kind):
        return value
    return value.transpose(2, 3, 1, 0) if kind == "conv" else np.swapaxes(value, -1, -2)


def _published_shape(shape: tuple[int, ...], name: str, kind: str) -> tuple[int, ...]:
    """The published shape of a canonical `shape` (inverse of _to_canonical_layout)."""
    if not _is_matrix(name, kind):
        return shape
    if kind == "conv":
        h, w, i, o = shape
        return (o, i, h, w)
    return (*shape[:-2], shape[-1], shape[-2])


def _check_buffers(state: Mapping[str, np.ndarray], cfg: Config) -> None:
    """log_std_min / log_std_dif / _action_masks, where present, must be the config's."""
    expected = {
        "log_std_min": np.float32(cfg.log_std_min),
        "log_std_dif": np.float32(cfg.log_std_max) - np.float32(cfg.log_std_min),
    }
    for key, want in expected.items():
        if key in state and not np.allclose(state[key], want, rtol=0, atol=1e-6):
            raise CheckpointError(
                f"{key} = {np.asarray(state[key]).tolist()} in the checkpoint, the config gives "
                f"{float(want)} (log_std_min={cfg.log_std_min}, log_std_max={cfg.log_std_max}); "
                "set them to the checkpoint's."
            )
    if "_action_masks" in state:
        masks = np.asarray(state["_action_masks"])
        want = action_masks(cfg) if cfg.multitask else None
        if want is None or masks.shape != want.shape or not np.array_equal(masks, want):
            raise CheckpointError(
                f"_action_masks of shape {masks.shape} in the checkpoint do not match the "
                f"config's task set (task={cfg.task}: "
                f"{None if want is None else want.shape}); choose the task set it was trained on."
            )


def to_canonical(
    state: Mapping[str, np.ndarray], cfg: Config, rng: np.random.Generator | None = None
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Published state dict -> (canonical float32 parameters of `cfg`, notes).

    Weights are transposed to the canonical layout of mbdpo_core.params. Missing `_F.*` /
    `_score.*` (a TD-MPC2 checkpoint) are filled from init_params(cfg, rng) and a note says
    so. Raises CheckpointError naming the key for an unknown key, a key mapped twice, a shape
    other than param_shapes(cfg) gives (published shape and expected), missing parameters, or
    buffers that contradict the config.
    """
    shapes = param_shapes(cfg)
    _check_buffers(state, cfg)
    params: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}
    for key, value in state.items():
        if key in ("log_std_min", "log_std_dif", "_action_masks") or key.endswith(_TENSORDICT_META):
            continue
        if key.startswith("_detach_Qs_params."):
            continue  # the same tensors as _Qs.params
        if key == "_task_emb.weight":
            name, kind = "task_emb.weight", "plain"
        else:
            mapped = _canonical_name(key)
            if mapped is None:
                raise CheckpointError(
                    f"checkpoint key {key!r} {tuple(np.shape(value))} cannot be mapped to a "
                    f"parameter of this model (task={cfg.task}, obs={cfg.obs}, "
                    f"episodic={cfg.episodic}); known: {KNOWN}."
                )
            name, kind = mapped
        if name not in shapes:
            raise CheckpointError(
                f"checkpoint key {key!r} {tuple(np.shape(value))} -> {name}, which this model "
                f"does not have (task={cfg.task}, obs={cfg.obs}, episodic={cfg.episodic})."
            )
        if name in source:
            raise CheckpointError(f"checkpoint keys {source[name]!r} and {key!r} are both {name}.")
        value = np.asarray(value)
        expected = _published_shape(shapes[name], name, kind)
        if value.shape != expected:
            raise CheckpointError(
                f"checkpoint key {key!r} has shape {value.shape}, expected {expected} for this "
                f"config ({name} {shapes[name]}); check task, obs and model_size."
            )
        params[name] = np.ascontiguousarray(_to_canonical_layout(value, name, kind), np.float32)
        source[name] = key

    notes: list[str] = []
    missing = [n for n in shapes if n not in params]
    fill = [n for n in missing if n.startswith(OPTIONAL)]
    absent = [n for n in missing if not n.startswith(OPTIONAL)]
    if absent:
        raise CheckpointError(
            f"the checkpoint lacks {len(absent)} parameters of this model: "
            f"{', '.join(absent[:6])}{' ...' if len(absent) > 6 else ''}."
        )
    if fill:
        init = init_params(cfg, rng if rng is not None else np.random.default_rng(0))
        for module in sorted({n.split(".")[0] for n in fill}):
            names = [n for n in fill if n.startswith(module + ".")]
            params.update({n: init[n] for n in names})
            notes.append(f"{module}: not in the checkpoint, {len(names)} arrays from init_params")
    return {n: params[n] for n in shapes}, notes


def infer_model_size(state: Mapping[str, np.ndarray]) -> int | None:
    """The model_size preset whose widths match the published shapes, or None.

    Compares mlp_dim (from `_dynamics`), enc_dim and encoder depth (from a state encoder; not
    for rgb) and num_q (from the Q ensemble) with MODEL_SIZES. latent_dim is not compared:
    TD-MPC2's mt30 checkpoints change it (config `mt30_dims=tdmpc2`); to_canonical checks it.
    """
    if "_dynamics.0.weight" not in state:
        return None
    found = {"mlp_dim": state["_dynamics.0.weight"].shape[0]}
    enc = [k for k in state if re.fullmatch(r"_encoder\.state\.\d+\.weight", k)]
    if enc:
        found["enc_dim"] = state["_encoder.state.0.weight"].shape[0]
        found["num_enc_layers"] = len(enc)  # max(n - 1, 1) + 1 layers; presets have n >= 2
    for key in ("_Qs.params.0.weight", "_Qs.params.0"):
        if key in state:
            found["num_q"] = state[key].shape[0]
            break
    for size, preset in MODEL_SIZES.items():
        if all(preset[k] == v for k, v in found.items()):
            return size
    return None


PUBLISHED_TASK_SETS = {80: "mt80", 30: "mt30"}
"""Rows of a published checkpoint's task embedding -> its task set."""


def published_config(
    shapes: dict[str, tuple[int, ...]],
    fmt: str,
    keys: dict[str, Any],
    *,
    model_size: int | None,
    backend: str = "none",
) -> Config:
    """The config a published checkpoint (format=tdmpc2|mbdpo) was trained with, from its
    parameter shapes (published key -> shape) and the keys the user gave
    (docs/data.md#published-checkpoints).

    task: mt80 or mt30 by the rows of `_task_emb.weight` (keys' task= names the tasks to run,
    not the set); without one the checkpoint is single-task and keys must give task=NAME, its
    task. obs: rgb when `_encoder.rgb.*` is present. episodic: whether `_termination.*` is.
    mt30_dims: tdmpc2 for format=tdmpc2 (its released mt30 widths), else mbdpo. model_size: keys',
    else `model_size` (inferred from the widths by the caller), else default.yaml's. preset:
    paper (the published settings). Explicit keys win over all of these but task; the rest
    comes from default.yaml.

    Raises:
        ConfigError: a task-embedding size that is no task set's, a single-task checkpoint
            without task=, or an invalid key.
    """
    values = dict(keys)
    rows = shapes.get("_task_emb.weight", (None,))[0]
    if rows is not None:
        if rows not in PUBLISHED_TASK_SETS:
            raise ConfigError(
                f"_task_emb.weight has {rows} rows; a published multi-task checkpoint has one per "
                f"task of {' or '.join(f'{s} ({n})' for n, s in PUBLISHED_TASK_SETS.items())}."
            )
        values["task"] = PUBLISHED_TASK_SETS[rows]
    elif values.get("task") in MULTITASK_SETS or values.get("task") is None:
        raise ConfigError(
            f"the format={fmt} checkpoint is single-task (no _task_emb.weight): give "
            f"task=NAME, the task it was trained on (got task={values.get('task')})."
        )
    values.setdefault(
        "obs", "rgb" if any(k.startswith("_encoder.rgb.") for k in shapes) else "state"
    )
    values.setdefault("episodic", any(k.startswith("_termination.") for k in shapes))
    values.setdefault("mt30_dims", "tdmpc2" if fmt == "tdmpc2" else "mbdpo")
    values.setdefault("preset", "paper")
    if model_size is not None:
        values.setdefault("model_size", model_size)
    return load_config(values, backend=backend)
