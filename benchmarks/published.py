"""The published MBDPO code as a timed reference for benchmarks/speed.py (--published PATH).

Nothing of the published code lives in this repository: `load_published` imports it at run time
from a checkout of github.com/Edmond1Cheng/MBDPO that the user names. `published_config` builds
the config object its `parse_cfg` would give (the defaults of `cfgs/config.yaml`, the model-size
table of its `common.MODEL_SIZE`, and the fields its parser and env factory derive) for one
single-task state-observation run with compile off; `PublishedRun` builds its agent on the CPU
and exposes one `act` and one `update` call, timed in matmul units (docs/design.md#runtime).

Its constructor places every tensor on "cuda:0": `_CudaToCpu` keeps them on the CPU, active only
while the constructor runs. The Adam optimizers' `capturable` flag (a CUDA-graph option that
changes no arithmetic) is turned off, as PyTorch's CPU Adam requires.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

PLANNER_KEYS = (
    "horizon",
    "diffusion_steps",
    "diffusion_num_samples",
    "diffusion_num_elites",
    "diffusion_num_pi_trajs",
    "diffusion_temperature",
    "diffusion_action_noise",
)
"""Our config keys that carry the planner settings over; the published config has the same names."""

_REQUIRED = ("MBDPO/mbdpo.py", "MBDPO/diffusion.py", "MBDPO/common/__init__.py", "cfgs/config.yaml")


@dataclass(frozen=True)
class PublishedCode:
    """The imported published code: its agent class, model-size table and config defaults."""

    agent_class: type
    model_sizes: dict[int, dict[str, int]]
    defaults: dict[str, object]


def load_published(path: str) -> PublishedCode:
    """Import the published code from the checkout at `path` (its `MBDPO/` goes on sys.path).

    Raises SystemExit with one line naming what is missing or what failed to import.
    """
    root = Path(path).expanduser().resolve()
    missing = [name for name in _REQUIRED if not (root / name).is_file()]
    if missing:
        raise SystemExit(
            f"--published {path}: not a checkout of github.com/Edmond1Cheng/MBDPO "
            f"(missing {', '.join(missing)})."
        )
    package = root / "MBDPO"
    if str(package) not in sys.path:
        sys.path.insert(0, str(package))
    try:
        from omegaconf import OmegaConf

        common = importlib.import_module("common")
        module = importlib.import_module("mbdpo")
    except Exception as exc:  # any failure of foreign code at import time
        raise SystemExit(
            f"--published {path}: importing the published code failed: "
            f"{type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    _check_origin(path, package, common)
    _check_origin(path, package, module)
    # OmegaConf's YAML reading, as their Hydra entry point does (it reads 3e-4 as a float).
    defaults = OmegaConf.to_container(OmegaConf.load(root / "cfgs" / "config.yaml"))
    defaults.pop("defaults", None)
    return PublishedCode(module.MBDPO, dict(common.MODEL_SIZE), defaults)


def _check_origin(path: str, package: Path, module: ModuleType) -> None:
    """The module must come from the checkout, not from an earlier import of the same name."""
    origin = Path(module.__file__).resolve()
    if package not in origin.parents:
        raise SystemExit(
            f"--published {path}: module {module.__name__!r} was already imported from {origin}; "
            "run with one published checkout per process."
        )


class PublishedConfig(SimpleNamespace):
    """Attribute access plus `get`, like the dataclass their `cfg_to_dataclass` returns."""

    def get(self, key: str, default: object = None) -> object:
        return getattr(self, key, default)


def published_config(
    code: PublishedCode,
    model_size: int,
    obs_dim: int,
    action_dim: int,
    episode_length: int,
    planner: dict[str, object],
    batch_size: int,
    task: str,
) -> PublishedConfig:
    """Their config for one single-task state run: defaults, the model-size row, derived fields.

    `planner` holds the PLANNER_KEYS values; `episode_length` is the task's agent steps per
    episode (their env factory sets it; their discount heuristic reads it).
    """
    if model_size not in code.model_sizes:
        raise SystemExit(
            f"--published: model_size={model_size} is not in the published table "
            f"(valid: {', '.join(map(str, code.model_sizes))})."
        )
    fields = dict(code.defaults)
    fields.update(code.model_sizes[model_size])
    fields.update(planner)
    fields.update(
        task=task,
        task_title=task.replace("-", " ").title(),
        obs="state",
        multitask=False,
        tasks=[task],
        task_dim=0,
        model_size=model_size,
        obs_shape={"state": (obs_dim,)},
        action_dim=action_dim,
        episode_length=episode_length,
        seed_steps=max(1000, 5 * episode_length),
        bin_size=(fields["vmax"] - fields["vmin"]) / (fields["num_bins"] - 1),
        batch_size=batch_size,
        compile=False,
        diffusion_eval_compile=False,
    )
    return PublishedConfig(**fields)


class _CudaToCpu(TorchFunctionMode):
    """While active, tensor factories asked for a CUDA device make CPU tensors, and `.to(cuda)`
    leaves a tensor where it is (their Q ensemble keeps a template module on the "meta" device)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.to:
            here = args[0].device
            args = tuple(here if _is_cuda(a) else a for a in args)
            if _is_cuda(kwargs.get("device")):
                kwargs["device"] = here
        elif _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


def _is_cuda(value: object) -> bool:
    if isinstance(value, torch.device):
        return value.type == "cuda"
    return isinstance(value, str) and value.startswith("cuda")


class PublishedRun:
    """Their agent on the CPU with one act and one update call to time.

    `act(obs, t0)`: obs [obs_dim] float32 numpy -> their `MBDPO.act(obs, t0, eval_mode=False)`
    (a [action_dim] tensor). `update(batch)`: a `mbdpo_core.batch.Batch` (obs [H+1, B, O],
    action [H, B, A], reward and terminated [H, B, 1]) -> their `MBDPO._update(obs, action,
    reward, terminated)`, the step their `update(buffer)` runs on `buffer.sample()`.
    """

    def __init__(self, code: PublishedCode, cfg: PublishedConfig, seed: int = 0):
        torch.manual_seed(seed)
        with _CudaToCpu(), contextlib.redirect_stdout(sys.stderr):  # it prints the discount
            self.agent = code.agent_class(cfg)
        self.agent.device = torch.device("cpu")
        for optim in (self.agent.optim, self.agent.pi_optim):
            for group in optim.param_groups:
                group["capturable"] = False

    def act(self, obs: np.ndarray, t0: bool) -> object:
        return self.agent.act(torch.from_numpy(obs), t0=t0, eval_mode=False)

    def update(self, batch) -> object:
        return self.agent._update(
            torch.from_numpy(batch.obs),
            torch.from_numpy(batch.action),
            torch.from_numpy(batch.reward),
            torch.from_numpy(batch.terminated),
        )

    def fill_zero_matrices(self, seed: int = 0) -> None:
        """Their initialisation with its all-zero weight matrices (the last layers of reward, F
        and the Q ensemble) drawn from N(0, 0.02^2) and the target Q a copy of Q, as
        mbdpo_core.params.nonzero_init_params does for ours (--weights random)."""
        model = self.agent.model
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                matrix = name.endswith("weight") and param.dim() >= 2 and not param.is_meta
                if matrix and not param.any():
                    noise = torch.randn(param.shape, generator=generator)
                    param.copy_(0.02 * noise)
            model._target_Qs_params.data.copy_(model._Qs.params.data)
