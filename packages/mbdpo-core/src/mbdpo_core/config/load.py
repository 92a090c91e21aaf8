"""Parse `key=value` overrides with Hydra, validate them, and build the frozen Config."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .. import tasks as task_registry
from ..discount import discount_heuristic
from ..errors import ConfigError, suggest
from .presets import MODEL_SIZES, PRESET_CHOICES, PRESETS
from .schema import Config

CONFIG_DIR = Path(__file__).parent
DEFAULT_YAML = CONFIG_DIR / "default.yaml"

CHOICES: dict[str, tuple[Any, ...]] = {
    "obs": ("state", "rgb"),
    "preset": PRESET_CHOICES,
    "planner": ("diffusion", "mppi", "policy"),
    "energy_pairing": ("aligned", "published"),
    "model_size": tuple(MODEL_SIZES),
}
_USER_KEYS = tuple(f.name for f in dataclasses.fields(Config) if f.default is dataclasses.MISSING)
ALIASES = {
    f"contrastive_{k}": f"energy_{k}" for k in ("coef", "eta", "clip", "momentum", "neg_noise")
}
"""The published names of the energy head's keys, accepted for ours."""
REMOVED_KEYS = ("checkpoint",)
"""Keys of earlier releases that nothing read; dropped when an old saved config is read."""


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

    Raises ConfigError for malformed overrides and for keys that are not config keys.
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
        parsed[key] = override.value()
    return parsed


def load_config(
    overrides: list[str] | dict[str, Any] = (),
    *,
    gpu_available: bool = False,
    backend: str = "none",
) -> Config:
    """Build the run's Config: defaults < preset < model_size preset < explicit overrides.

    Args:
        overrides: `key=value` strings (command line) or an already parsed dict.
        gpu_available: whether the chosen backend sees a GPU; decides `preset=auto`.
        backend: recorded in the config ("torch" | "jax" | "none").
    """
    user = dict(overrides) if isinstance(overrides, dict) else parse_overrides(list(overrides))
    user = _canonical_keys(user)
    for key in user:
        if key not in _USER_KEYS:
            raise ConfigError(f"Unknown config key {key!r}.{suggest(key, _USER_KEYS)}")
    values: dict[str, Any] = OmegaConf.to_container(OmegaConf.load(DEFAULT_YAML))  # type: ignore[assignment]
    notes: list[str] = []

    preset = user.get("preset", values["preset"])
    _check_choice("preset", preset)
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
    _check_choice("model_size", size)
    for key, value in MODEL_SIZES[size].items():
        if key not in user:
            values[key] = value
    for key in CHOICES:
        _check_choice(key, values[key])
    _check_types(values)
    return _derive(values, backend=backend, notes=notes, user=user)


def _check_choice(key: str, value: Any) -> None:
    choices = CHOICES[key]
    if value not in choices:
        raise ConfigError(
            f"Invalid {key}={value!r}. Valid choices: {', '.join(map(str, choices))}."
        )


def _check_types(values: dict[str, Any]) -> None:
    hints = {f.name: f.type for f in dataclasses.fields(Config)}
    for key in _USER_KEYS:
        value, hint = values[key], str(hints[key])
        allow_none = "None" in hint
        if value is None:
            if not allow_none:
                raise ConfigError(f"{key} may not be null.")
            continue
        if hint.startswith("int") and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ConfigError(f"{key} must be an integer, got {value!r}.")
        if hint.startswith("float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{key} must be a number, got {value!r}.")
            values[key] = float(value)
        if hint.startswith("bool") and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}.")
        if hint.startswith("str") and not isinstance(value, str):
            values[key] = str(value)
    for key in ("steps", "batch_size", "horizon", "diffusion_steps", "eval_episodes"):
        if values[key] < 1:
            raise ConfigError(f"{key} must be >= 1, got {values[key]}.")
    if values["latent_dim"] % values["simnorm_dim"]:
        raise ConfigError(
            f"latent_dim={values['latent_dim']} must be a multiple of "
            f"simnorm_dim={values['simnorm_dim']}."
        )
    if values["score_only_inference"] and not values["use_score_network"]:
        raise ConfigError(
            "score_only_inference=true plans with the score network, which is only trained "
            "with use_score_network=true."
        )


def _derive(values: dict[str, Any], *, backend: str, notes: list[str], user: dict) -> Config:
    specs = task_registry.resolve(values["task"])
    multitask = values["task"] in task_registry.MULTITASK_SETS
    episodic = any(s.episodic for s in specs)
    if values["episodic"] is None:
        values["episodic"] = episodic
    if multitask:
        if values["episodic"]:
            raise ConfigError("Episodic (terminating) tasks are single-task only.")
        if "task_dim" not in user:
            mt30_small = values["task"] == "mt30" and values["model_size"] not in (1, 317)
            values["task_dim"] = 64 if mt30_small else 96
    else:
        values["task_dim"] = 0
    if values["obs"] == "rgb":
        if multitask:
            raise ConfigError("obs=rgb is single-task only.")
        _rgb_channels(values, notes, user)
        obs_shape: tuple[int, ...] = (9, 64, 64)
    else:
        obs_shape = (max(s.obs_dim for s in specs),)
    action_dim = max(s.action_dim for s in specs)
    lengths = tuple(s.episode_length for s in specs)
    if values["seed_steps"] is None:
        values["seed_steps"] = max(1000, 5 * max(lengths))
    if values["planner"] == "mppi" and action_dim >= 20 and "iterations" not in user:
        values["iterations"] += 2
    discounts = tuple(
        discount_heuristic(
            n, values["discount_denom"], values["discount_min"], values["discount_max"]
        )
        for n in lengths
    )
    return Config(
        **values,
        backend=backend,
        tasks=tuple(s.name for s in specs),
        multitask=multitask,
        obs_shape=obs_shape,
        obs_dims=tuple(s.obs_dim for s in specs),
        action_dim=action_dim,
        action_dims=tuple(s.action_dim for s in specs),
        episode_lengths=lengths,
        discounts=discounts,
        bin_size=(values["vmax"] - values["vmin"]) / (values["num_bins"] - 1),
        notes=tuple(notes),
    )


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
    data = _canonical_keys({k: v for k, v in data.items() if k not in REMOVED_KEYS})
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"Saved config has unknown keys {sorted(unknown)}.")
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
