"""Parse `key=value` overrides with Hydra, validate them, and build the frozen Config."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
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
ADDED_KEYS = ("resume_from", "allow_backend_switch", "keep_checkpoints")
"""Keys added after release 0.1; an older saved config takes their default.yaml values."""


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


@dataclass(frozen=True)
class Bound:
    """The valid values of one numeric key: an interval, open or closed at each end (None =
    unbounded), and why when the reason is not obvious."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    why: str = ""

    def admits(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            text = f"{'>' if self.open_low else '>='} {self.low}"
        else:
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            text = f"in {left}{self.low}, {self.high}{right}"
        return f"{text} ({self.why})" if self.why else text


_COUNT, _NON_NEGATIVE = Bound(1), Bound(0)
_POSITIVE, _FRACTION = Bound(0, open_low=True), Bound(0, 1, open_low=True)
BOUNDS: dict[str, Bound] = {
    "seed": Bound(0, 2**32 - 1, why="JAX keys hold 32 bits"),
    "steps": _COUNT,
    "eval_freq": Bound(0, why="0 = never"),
    "eval_episodes": _COUNT,
    "save_every": Bound(0, why="0 = only at the end and on Ctrl-C/SIGTERM"),
    "keep_checkpoints": Bound(0, why="0 = keep all"),
    "batch_size": _COUNT,
    "buffer_size": _COUNT,
    "lr": _POSITIVE,
    "enc_lr_scale": _NON_NEGATIVE,
    "grad_clip_norm": _POSITIVE,
    "rho": _FRACTION,
    "tau": _FRACTION,
    "consistency_coef": _NON_NEGATIVE,
    "reward_coef": _NON_NEGATIVE,
    "value_coef": _NON_NEGATIVE,
    "termination_coef": _NON_NEGATIVE,
    "discount_denom": _POSITIVE,
    "discount_min": _FRACTION,
    "discount_max": _FRACTION,
    "energy_coef": _NON_NEGATIVE,
    "energy_eta": _NON_NEGATIVE,
    "energy_clip": _POSITIVE,
    "energy_momentum": Bound(0, 1, open_high=True),
    "energy_neg_noise": _NON_NEGATIVE,
    "score_loss_coef": _NON_NEGATIVE,
    "diffusion_num_samples_mf": _COUNT,
    "diffusion_time_embed_dim": Bound(2, why="a sine and a cosine"),
    "horizon": _COUNT,
    "diffusion_steps": _COUNT,
    "diffusion_beta0": Bound(0, 1, open_low=True, open_high=True),
    "diffusion_betaT": Bound(0, 1, open_low=True, open_high=True),
    "diffusion_num_samples": _COUNT,
    "diffusion_num_elites": _COUNT,
    "diffusion_num_pi_trajs": _NON_NEGATIVE,
    "diffusion_temperature": _POSITIVE,
    "diffusion_action_noise": _NON_NEGATIVE,
    "iterations": _COUNT,
    "num_samples": _COUNT,
    "num_elites": _COUNT,
    "num_pi_trajs": _NON_NEGATIVE,
    "min_std": _NON_NEGATIVE,
    "max_std": _POSITIVE,
    "temperature": _POSITIVE,
    "entropy_coef": _NON_NEGATIVE,
    "num_bins": Bound(2, why="two-hot targets span vmin..vmax"),
    "num_enc_layers": _COUNT,
    "enc_dim": _COUNT,
    "mlp_dim": _COUNT,
    "latent_dim": _COUNT,
    "num_q": Bound(2, why="planning and training take the min of two random Q members"),
    "num_channels": _COUNT,
    "task_dim": _COUNT,
    "dropout": Bound(0, 1, open_high=True),
    "simnorm_dim": _COUNT,
}
"""key -> its valid values. seed_steps and buffer_size also depend on the task (load_config)."""

ORDERED: tuple[tuple[str, str, bool], ...] = (
    ("discount_min", "discount_max", False),
    ("diffusion_beta0", "diffusion_betaT", False),
    ("diffusion_num_elites", "diffusion_num_samples", False),
    ("diffusion_num_pi_trajs", "diffusion_num_samples", False),
    ("num_elites", "num_samples", False),
    ("num_pi_trajs", "num_samples", False),
    ("min_std", "max_std", False),
    ("log_std_min", "log_std_max", True),
    ("vmin", "vmax", True),
)
"""(smaller key, larger key, strictly): pairs of keys whose values must be ordered."""

DEVICES: dict[str, tuple[str, ...]] = {
    "torch": ("auto", "cpu", "cuda", "cuda:N"),
    "jax": ("auto", "cpu", "gpu", "gpu:N", "cuda", "cuda:N"),
    "none": ("auto", "cpu", "gpu", "gpu:N", "cuda", "cuda:N"),
}
"""backend -> valid `device` values (N: a device index), as mbdpo_{torch,jax}.runtime read them."""


def load_config(
    overrides: list[str] | dict[str, Any] = (),
    *,
    gpu_available: bool = False,
    backend: str = "none",
) -> Config:
    """Build the run's Config: defaults < preset < model_size preset < explicit overrides.

    Every value is validated here, before a run creates anything.

    Args:
        overrides: `key=value` strings (command line) or an already parsed dict.
        gpu_available: whether the chosen backend sees a GPU; decides `preset=auto` and whether
            a GPU `device` is valid.
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
    _check_values(values)
    _check_device(values["device"], backend, gpu_available)
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
            if not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value!r}.")
            values[key] = float(value)
        if hint.startswith("bool") and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}.")
        if hint.startswith("str"):
            if not isinstance(value, str | int | float):
                raise ConfigError(f"{key} must be a string, got {value!r}.")
            values[key] = str(value)


def _check_values(values: dict[str, Any]) -> None:
    """Ranges (BOUNDS), orders (ORDERED) and the rules that tie keys together."""
    for key, bound in BOUNDS.items():
        if values[key] is not None and not bound.admits(values[key]):
            raise ConfigError(f"Invalid {key}={values[key]!r}: must be {bound}.")
    for small, large, strict in ORDERED:
        if values[small] >= values[large] if strict else values[small] > values[large]:
            raise ConfigError(
                f"Invalid {small}={values[small]!r} with {large}={values[large]!r}: {small} "
                f"must be {'<' if strict else '<='} {large}."
            )
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
    checkpoint = values["resume_from"]
    if checkpoint is not None:
        if not re.fullmatch(r"step_\d+", checkpoint):
            raise ConfigError(
                f"Invalid resume_from={checkpoint!r}: must be step_N, the name of a checkpoint "
                "in <run_dir>/checkpoints (e.g. step_5000)."
            )
        if not values["resume"]:
            raise ConfigError(f"resume_from={checkpoint} needs resume=true.")


def _check_device(device: str, backend: str, gpu_available: bool) -> None:
    valid = DEVICES.get(backend, DEVICES["none"])
    if re.sub(r":\d+$", ":N", device) not in valid:
        with_backend = f" for the {backend} backend" if backend in ("torch", "jax") else ""
        raise ConfigError(
            f"Invalid device={device!r}{with_backend}. Valid choices: {', '.join(valid)}."
        )
    if device not in ("auto", "cpu") and not gpu_available:
        seen_by = f"the {backend} backend sees" if backend in ("torch", "jax") else "there is"
        raise ConfigError(
            f"device={device} but {seen_by} no GPU. Valid here: device=cpu or device=auto."
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
        _check_rgb_task(specs[0])
        _rgb_channels(values, notes, user)
        obs_shape: tuple[int, ...] = (9, 64, 64)
    else:
        obs_shape = (max(s.obs_dim for s in specs),)
    action_dim = max(s.action_dim for s in specs)
    lengths = tuple(s.episode_length for s in specs)
    _check_episode_fits(values, max(lengths))
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


def _check_episode_fits(values: dict[str, Any], length: int) -> None:
    """The replay must hold one whole episode, and be holding one when updates begin."""
    task, rows = values["task"], length + 1
    if values["buffer_size"] < rows:
        raise ConfigError(
            f"Invalid buffer_size={values['buffer_size']}: must be >= {rows} to hold one "
            f"episode of task={task} ({length} steps take {rows} rows, the first observation "
            "and one per step)."
        )
    seed_steps = values["seed_steps"]
    if seed_steps is not None and seed_steps < length:
        raise ConfigError(
            f"Invalid seed_steps={seed_steps}: must be >= {length}, the longest episode of "
            f"task={task}, so that the replay holds a finished episode when updates begin "
            f"(null = max(1000, 5 x episode_length) = {max(1000, 5 * length)})."
        )


def _check_rgb_task(spec: task_registry.TaskSpec) -> None:
    if spec.suite not in task_registry.RGB_SUITES:
        raise ConfigError(
            f"obs=rgb is not available for task={spec.name}: {spec.suite} tasks have no pixel "
            f"observations; only {', '.join(task_registry.RGB_SUITES)} tasks do. Use obs=state, "
            "or a task of that suite (`apps/train list tasks`)."
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
    if any(key not in data for key in ADDED_KEYS):
        defaults = OmegaConf.load(DEFAULT_YAML)
        data = {**{key: defaults[key] for key in ADDED_KEYS}, **data}
    missing = set(_USER_KEYS) - set(data)
    if missing:
        raise ConfigError(f"Saved config lacks the keys {sorted(missing)}.")
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
