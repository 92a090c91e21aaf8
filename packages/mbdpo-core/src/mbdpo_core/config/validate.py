"""Validation of config values, all before a run creates anything (docs/design.md#configuration):
choices, types, ranges (`BOUNDS`), orders (`ORDERED`), devices (`DEVICES`) and the rules tying
keys to each other or to the task."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .. import tasks as task_registry
from ..errors import ConfigError, MissingExtraError, suggest
from ..video import check_video_support
from .presets import MODEL_SIZES, PRESET_CHOICES
from .schema import Config

CHOICES: dict[str, tuple[Any, ...]] = {
    "mode": ("online", "offline", "finetune"),
    "format": ("native", "tdmpc2", "mbdpo"),
    "obs": ("state", "rgb"),
    "obs_shift": ("always", "update"),
    "preset": PRESET_CHOICES,
    "planner": ("diffusion", "mppi", "policy"),
    "energy_pairing": ("aligned", "published"),
    "mt30_dims": ("mbdpo", "tdmpc2"),
    "score_planning": ("network", "monte_carlo"),
    "replay_sampling": ("rows", "episodes"),
    "model_size": tuple(MODEL_SIZES),
    "precision": ("float32", "bf16"),
    "compile_mode": ("default", "reduce-overhead", "max-autotune"),
}


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
    "num_envs": _COUNT,
    "updates_per_step": _COUNT,
    "eval_freq": Bound(0, why="0 = never"),
    "eval_episodes": _COUNT,
    "eval_workers": Bound(0, why="0 = one per CPU core"),
    "video_every": Bound(0, why="0 = never"),
    "log_freq": _COUNT,
    "save_every": Bound(0, why="0 = only at the end and on Ctrl-C/SIGTERM"),
    "keep_checkpoints": Bound(0, why="0 = keep all"),
    "batch_size": _COUNT,
    "data_parallel_devices": _COUNT,
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


def check_choice(key: str, value: Any) -> None:
    choices = CHOICES[key]
    if value not in choices:
        raise ConfigError(
            f"Invalid {key}={value!r}. Valid choices: {', '.join(map(str, choices))}."
        )


def check_types(values: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Each of `keys` has its schema type (ints, finite floats, bools, strings, null if allowed);
    floats and strings are normalised in place."""
    hints = {f.name: f.type for f in dataclasses.fields(Config)}
    for key in keys:
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


def check_values(values: dict[str, Any]) -> None:
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
    envs, steps = values["num_envs"], values["steps"]
    if envs > 1 and values["mode"] == "offline":
        raise ConfigError(
            f"Invalid num_envs={envs}: mode=offline steps no environment (valid: num_envs=1)."
        )
    if steps % envs:
        raise ConfigError(
            f"Invalid num_envs={envs}: must divide steps={steps} (a vector step advances every "
            "environment, and the run ends after exactly `steps` environment steps)."
        )
    if values["score_only_inference"] and not values["use_score_network"]:
        raise ConfigError(
            "score_only_inference=true plans with the score network, which is only trained "
            "with use_score_network=true."
        )
    if values["score_only_inference"] and values["score_planning"] != "network":
        raise ConfigError(
            "score_only_inference=true plans with the score network, which contradicts "
            f"score_planning={values['score_planning']}; drop one of them."
        )
    devices, batch = values["data_parallel_devices"], values["batch_size"]
    if batch % devices:
        raise ConfigError(
            f"Invalid data_parallel_devices={devices}: must divide batch_size={batch} (each "
            "device updates on an equal share of the batch)."
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
    check_tracking(values)
    check_videos(values["video_every"], values["eval_freq"])


def check_videos(video_every: int, eval_freq: int) -> None:
    """video_every films evaluations, so it is a multiple of eval_freq (> 0); videos need the
    extra mbdpo-core[video] (docs/design.md#videos)."""
    if not video_every:
        return
    if not eval_freq:
        raise ConfigError(
            f"Invalid video_every={video_every} with eval_freq=0: videos film evaluation "
            "episodes and eval_freq=0 evaluates only at the end; give an eval_freq that divides "
            "video_every, or video_every=0 (no videos)."
        )
    if video_every % eval_freq:
        near = eval_freq * max(1, round(video_every / eval_freq))
        raise ConfigError(
            f"Invalid video_every={video_every}: must be a multiple of eval_freq={eval_freq} "
            f"(videos film evaluation episodes), e.g. video_every={near}, or 0 (no videos)."
        )
    check_video_support(f"video_every={video_every}")


MISSING_WANDB = (
    "wandb=true needs the wandb package, which is not installed: `uv sync --extra wandb` "
    "(pip: `pip install 'mbdpo-core[wandb]'`)."
)
WANDB_OPTIONS = ("wandb_entity", "wandb_group", "wandb_mode")
"""The W&B keys that default to null, refused without wandb=true (which alone reads them)."""
WANDB_KEYS = ("wandb", "wandb_project", *WANDB_OPTIONS)
"""Every W&B key: where a run is tracked, never what it computes."""


def check_tracking(values: dict[str, Any]) -> None:
    """wandb=true needs the wandb package; wandb_mode is online, offline or null; project and
    entity are names W&B accepts; WANDB_OPTIONS are given with wandb=true only."""
    if not values["wandb"]:
        for key in WANDB_OPTIONS:
            if values[key] is not None:
                raise ConfigError(f"{key} is read with wandb=true only; add wandb=true or drop it.")
        return
    if values["wandb_mode"] not in (None, "online", "offline"):
        raise ConfigError(
            f"Invalid wandb_mode={values['wandb_mode']!r}. Valid choices: online, offline, null "
            "(the WANDB_MODE environment variable, else online)."
        )
    for key in ("wandb_project", "wandb_entity"):
        name = values[key]
        if name is not None and (not name or set(name) & set("/\\#?%:")):
            raise ConfigError(
                f"Invalid {key}={name!r}: a W&B name must be non-empty and without / \\ # ? % :"
            )
    if find_spec("wandb") is None:
        raise MissingExtraError(MISSING_WANDB)


def check_device(device: str, backend: str, gpu_available: bool) -> None:
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


def check_episode_fits(values: dict[str, Any], length: int) -> None:
    """The replay must hold one whole episode, and be holding one when updates begin."""
    task, rows = values["task"], length + 1
    if values["buffer_size"] < rows:
        raise ConfigError(
            f"Invalid buffer_size={values['buffer_size']}: must be >= {rows} to hold one "
            f"episode of task={task} ({length} steps take {rows} rows, the first observation "
            "and one per step)."
        )
    seed_steps, envs = values["seed_steps"], values["num_envs"]
    if seed_steps is not None and 0 < seed_steps < envs * length:
        need = f"num_envs={envs} x {length}" if envs > 1 else f"{length}"
        rule = "5 x episode_length, num_envs x episode_length" if envs > 1 else "5 x episode_length"
        raise ConfigError(
            f"Invalid seed_steps={seed_steps}: must be >= {need}, the longest episode of "
            f"task={task}, so that the replay holds a finished episode when updates begin "
            f"(null = max(1000, {rule}) = {default_seed_steps(length, envs)}), or 0 (no "
            "random steps: updates begin once the replay holds an episode)."
        )


def default_seed_steps(length: int, num_envs: int) -> int:
    """seed_steps=null: max(1000, 5 x episode_length), at least num_envs x episode_length (the
    environment steps until a vectorised run's first episodes end)."""
    return max(1000, 5 * length, num_envs * length)


def check_mode(values: dict[str, Any], multitask: bool) -> None:
    """mode=offline trains on a task set from a dataset, mode=finetune one task from a
    checkpoint; data_dir, checkpoint and source_task belong to them alone."""
    mode = values["mode"]
    if mode == "offline":
        if not multitask:
            raise ConfigError(
                f"mode=offline pretrains one agent on a task set: task=mt30 or task=mt80 "
                f"(got task={values['task']})."
            )
        if values["data_dir"] is None:
            raise ConfigError(
                "mode=offline needs data_dir=DIR, a dataset converted with "
                "`uv run apps/convert SRC DIR`."
            )
    if mode == "finetune" and multitask:
        raise ConfigError(
            f"mode=finetune trains on one task: task=NAME (got the task set task={values['task']})."
        )
    owners = {"data_dir": "offline", "checkpoint": "finetune", "source_task": "finetune"}
    for key, owner in owners.items():
        if values[key] is not None and mode != owner:
            raise ConfigError(f"{key} is read by mode={owner} only; add mode={owner} or drop it.")
    if values["format"] != "native" and mode != "finetune":
        raise ConfigError(
            f"format={values['format']} is read by mode=finetune only (and apps/evaluate); "
            "add mode=finetune or drop it."
        )


def check_checkpoint_format(fmt: str, checkpoint: str | None) -> None:
    """format is one of CHOICES["format"]; a published one (tdmpc2 | mbdpo) needs checkpoint= to
    be an existing .pt file (docs/design.md#fine-tuning)."""
    check_choice("format", fmt)
    if fmt == "native":
        return
    if checkpoint is None or Path(checkpoint).suffix != ".pt":
        raise ConfigError(
            f"format={fmt} reads a published torch.save file: give checkpoint=PATH.pt "
            f"(got checkpoint={checkpoint!r}); this project's checkpoints are format=native."
        )
    if not Path(checkpoint).is_file():
        raise ConfigError(f"Invalid checkpoint={checkpoint!r} (format={fmt}): no such file.")


def check_eval_tasks(eval_tasks: str | None, tasks: list[str]) -> None:
    """eval_tasks names distinct tasks of the run, separated by spaces."""
    if eval_tasks is None:
        return
    names = eval_tasks.split()
    if not names:
        raise ConfigError("eval_tasks is empty; give task names separated by spaces, or null.")
    for name in names:
        if name not in tasks:
            valid = ", ".join(tasks) if len(tasks) <= 8 else f"the {len(tasks)} tasks of the set"
            raise ConfigError(
                f"eval_tasks names {name!r}, which this run does not train on."
                f"{suggest(name, tasks)} Valid: {valid} (`apps/train list tasks`)."
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"eval_tasks={eval_tasks!r} names a task twice.")


def check_rgb_task(spec: task_registry.TaskSpec) -> None:
    if spec.suite not in task_registry.RGB_SUITES:
        raise ConfigError(
            f"obs=rgb is not available for task={spec.name}: {spec.suite} tasks have no pixel "
            f"observations; only {', '.join(task_registry.RGB_SUITES)} tasks do. Use obs=state, "
            "or a task of that suite (`apps/train list tasks`)."
        )
