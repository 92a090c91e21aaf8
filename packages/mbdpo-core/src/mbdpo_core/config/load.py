"""Parse `key=value` overrides with Hydra, validate them (`validate`), and build the frozen
Config."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .. import tasks as task_registry
from ..discount import discount_heuristic
from ..errors import ConfigError, suggest
from . import finetune, validate
from .presets import MODEL_SIZES, PRESETS
from .schema import Config
from .validate import CHOICES, WANDB_KEYS

CONFIG_DIR = Path(__file__).parent
DEFAULT_YAML = CONFIG_DIR / "default.yaml"

_USER_KEYS = tuple(f.name for f in dataclasses.fields(Config) if f.default is dataclasses.MISSING)
ALIASES = {
    f"contrastive_{k}": f"energy_{k}" for k in ("coef", "eta", "clip", "momentum", "neg_noise")
}
"""The published names of the energy head's keys, accepted for ours."""
ADDED_KEYS = (
    "resume_from",
    "allow_backend_switch",
    "keep_checkpoints",
    "replay_sampling",
    "obs_shift",
    "score_planning",
    "mt30_dims",
    "mode",
    "data_dir",
    "eval_tasks",
    "eval_workers",
    "log_freq",
    "checkpoint",
    "source_task",
    "num_envs",
    "updates_per_step",
    "data_parallel_devices",
    "format",
    "video_every",
    "compile_mode",
    "precision",
    *WANDB_KEYS,
)
"""Keys added after release 0.1 (`checkpoint`: unread from 0.2 to 0.4); an older saved config
takes their default.yaml values."""


def _canonical_keys(values: dict[str, Any]) -> dict[str, Any]:
    """Rename published aliases to our key names (an alias and its key together are an error)."""
    out = dict(values)
    for alias, key in ALIASES.items():
        if alias in out:
            if key in out:
                raise ConfigError(f"{alias} is an alias of {key}; give only one of them.")
            out[key] = out.pop(alias)
    return out


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Parse `key=value` strings with Hydra's override grammar into {key: value}.

    Values are plain str, int, float, bool or None. Raises ConfigError for malformed overrides,
    keys that are not config keys, sweeps (`a,b`, `range(...)`, `glob(...)`, ...) and lists or
    dicts.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed: dict[str, Any] = {}
    for text in overrides:
        if "=" not in text:
            raise ConfigError(f"Override {text!r} is not of the form key=value.")
        try:
            (override,) = parser.parse_overrides([text.lstrip("+")])
        except HydraException as err:
            raise ConfigError(f"Cannot parse override {text!r}: {err}") from None
        key = ALIASES.get(override.key_or_group, override.key_or_group)
        if key not in _USER_KEYS:
            raise ConfigError(
                f"Unknown config key {key!r}.{suggest(key, _USER_KEYS)} "
                f"Valid keys are those of {DEFAULT_YAML.name}: {', '.join(_USER_KEYS)}."
            )
        literal = f"""quote it: '{key}="{text.split("=", 1)[1]}"'"""
        if override.is_sweep_override():
            raise ConfigError(
                f"Override {text!r} is a Hydra sweep (a comma, range(), glob() or interval() "
                f"gives several values); apps/train runs one configuration, one value per key. "
                f"To pass it as one literal value (e.g. a path with a comma), {literal}."
            )
        value = override.value()
        if isinstance(value, list | dict):
            raise ConfigError(
                f"Override {text!r} gives a {type(value).__name__}; every key takes one value. "
                f"To pass it as one literal value, {literal}."
            )
        parsed[key] = value
    return parsed


def load_config(
    overrides: list[str] | dict[str, Any] = (),
    *,
    gpu_available: bool = False,
    backend: str = "none",
    source: Config | None = None,
) -> Config:
    """Build the run's Config: defaults < preset < model_size preset < explicit overrides.

    Every value is validated here, before a run creates anything.

    Args:
        overrides: `key=value` strings (command line) or an already parsed dict.
        gpu_available: whether the chosen backend sees a GPU; decides `preset=auto` and whether
            a GPU `device` is valid.
        backend: recorded in the config ("torch" | "jax" | "none").
        source: mode=finetune from a published checkpoint (format=tdmpc2|mbdpo): the config it
            was trained with, which the caller builds from the file (core does not read .pt
            files; apps/train does); a native checkpoint's is read from its meta.
    """
    user = dict(overrides) if isinstance(overrides, dict) else parse_overrides(list(overrides))
    user = _canonical_keys(user)
    for key in user:
        if key not in _USER_KEYS:
            raise ConfigError(f"Unknown config key {key!r}.{suggest(key, _USER_KEYS)}")
    values: dict[str, Any] = OmegaConf.to_container(OmegaConf.load(DEFAULT_YAML))  # type: ignore[assignment]
    notes: list[str] = []

    preset = user.get("preset", values["preset"])
    validate.check_choice("preset", preset)
    if preset == "auto":
        preset = "paper" if gpu_available else "cpu"
        if preset == "cpu":
            notes.append(
                "No GPU found: using the CPU preset (model_size 1, batch 64, 6 diffusion levels, "
                "64 samples, 8 elites). Pass preset=paper for the published settings."
            )
    values.update(PRESETS[preset])
    values["preset"] = preset
    values.update(user)

    size = values["model_size"]
    validate.check_choice("model_size", size)
    for key, value in MODEL_SIZES[size].items():
        if key not in user:
            values[key] = value
    if values["mode"] == "finetune":
        validate.check_checkpoint_format(values["format"], values["checkpoint"])
        if values["format"] == "native":
            source = finetune.source_config(values["checkpoint"])
        elif source is None:
            raise ConfigError(
                f"format={values['format']}: the checkpoint's config is built by the caller from "
                "the .pt file (uv run apps/train does); load_config got none."
            )
        finetune.adopt_architecture(values, source, user)
    else:
        source = None
    for key in CHOICES:
        validate.check_choice(key, values[key])
    validate.check_types(values, _USER_KEYS)
    validate.check_values(values)
    validate.check_device(values["device"], backend, gpu_available)
    return _derive(values, backend=backend, notes=notes, user=user, source=source)


def _derive(
    values: dict[str, Any], *, backend: str, notes: list[str], user: dict, source: Config | None
) -> Config:
    specs = task_registry.resolve(values["task"])
    multitask = values["task"] in task_registry.MULTITASK_SETS
    episodic = any(s.episodic for s in specs)
    if values["episodic"] is None:
        values["episodic"] = episodic
    if multitask:
        if values["episodic"]:
            raise ConfigError("Episodic (terminating) tasks are single-task only.")
        _multitask_dims(values, user)
    else:
        values["task_dim"] = 0
    validate.check_mode(values, multitask)
    validate.check_eval_tasks(values["eval_tasks"], [s.name for s in specs])
    if values["obs"] == "rgb":
        if multitask:
            raise ConfigError("obs=rgb is single-task only.")
        validate.check_rgb_task(specs[0])
        _rgb_channels(values, notes, user)
        obs_shape: tuple[int, ...] = (9, 64, 64)
    else:
        obs_shape = (max(s.obs_dim for s in specs),)
    action_dim = max(s.action_dim for s in specs)
    lengths = tuple(s.episode_length for s in specs)
    validate.check_episode_fits(values, max(lengths))
    if values["seed_steps"] is None:
        default = validate.default_seed_steps(max(lengths), values["num_envs"])
        values["seed_steps"] = 0 if source else default
    if values["planner"] == "mppi" and action_dim >= 20 and "iterations" not in user:
        values["iterations"] += 2
    discounts = tuple(
        discount_heuristic(
            n, values["discount_denom"], values["discount_min"], values["discount_max"]
        )
        for n in lengths
    )
    derived = dict(
        tasks=tuple(s.name for s in specs),
        multitask=multitask,
        obs_shape=obs_shape,
        obs_dims=tuple(s.obs_dim for s in specs),
        action_dim=action_dim,
        action_dims=tuple(s.action_dim for s in specs),
        episode_lengths=lengths,
        discounts=discounts,
    )
    if source is not None and source.multitask:
        derived.update(finetune.appended_task(values, source))
    elif source is not None:
        finetune.check_single_task(values, source)
    return Config(
        **values,
        **derived,
        backend=backend,
        bin_size=(values["vmax"] - values["vmin"]) / (values["num_bins"] - 1),
        notes=tuple(notes),
    )


def _multitask_dims(values: dict[str, Any], user: dict) -> None:
    """task_dim (and mt30's latent_dim) of a multi-task run, as the published parsers set them
    (docs/design.md#configuration); explicit values win.

    mt80: task_dim 96. mt30: 64 with `mt30_dims=mbdpo` (MBDPO's parser: its special cases name
    sizes 2, 21 and 340, which are not model sizes, so they never apply); with
    `mt30_dims=tdmpc2` (TD-MPC2's parser, the shapes of its released mt30 checkpoints) 96 at
    model sizes 1 and 317, else 64, and latent_dim 512 at model size 19.
    """
    tdmpc2 = values["task"] == "mt30" and values["mt30_dims"] == "tdmpc2"
    if "task_dim" not in user:
        wide = values["task"] != "mt30" or (tdmpc2 and values["model_size"] in (1, 317))
        values["task_dim"] = 96 if wide else 64
    if tdmpc2 and values["model_size"] == 19 and "latent_dim" not in user:
        values["latent_dim"] = 512


def _rgb_channels(values: dict[str, Any], notes: list[str], user: dict) -> None:
    """The conv encoder flattens 4 x 4 x num_channels features, which must equal latent_dim.

    Sets num_channels = latent_dim // 16 unless the user set it; raises ConfigError when the
    two do not agree.
    """
    latent = values["latent_dim"]
    if "num_channels" not in user:
        values["num_channels"] = latent // 16
        notes.append(
            f"obs=rgb: num_channels set to latent_dim // 16 = {latent // 16} (the conv encoder "
            "flattens 4 x 4 x num_channels features into the latent)."
        )
    channels = values["num_channels"]
    if latent != 16 * channels:
        raise ConfigError(
            f"obs=rgb needs latent_dim = 16 x num_channels (the conv encoder's 4 x 4 x "
            f"num_channels output is the latent), got latent_dim={latent} and "
            f"num_channels={channels}. Use a latent_dim that is a multiple of 16 and leave "
            f"num_channels unset, or set num_channels={latent // 16 or 1} with "
            f"latent_dim={16 * max(latent // 16, 1)}."
        )


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """JSON-ready dict of every field (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(data: dict[str, Any]) -> Config:
    """Inverse of config_to_dict (used when resuming or loading a checkpoint)."""
    names = {f.name for f in dataclasses.fields(Config)}
    data = _canonical_keys(data)
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"Saved config has unknown keys {sorted(unknown)}.")
    if any(key not in data for key in ADDED_KEYS):
        defaults = OmegaConf.load(DEFAULT_YAML)
        data = {**{key: defaults[key] for key in ADDED_KEYS}, **data}
    missing = set(_USER_KEYS) - set(data)
    if missing:
        raise ConfigError(f"Saved config lacks the keys {sorted(missing)}.")
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
