"""The framework-specific knobs (docs/design.md#runtime): device choice, float32 precision,
denormals, the generator."""

from __future__ import annotations

import os

import torch
from mbdpo_core.backends import compile_cache_dir
from mbdpo_core.errors import ConfigError
from mbdpo_core.memory import keep_freed_memory

_DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(name: str = "auto") -> torch.device:
    """Map a config device string to a torch device.

    `auto` -> cuda if available else cpu; `cpu`; `cuda`; `cuda:N`.
    Raises ConfigError for other strings or a CUDA device that is not there.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but torch sees no CUDA device. Use device=cpu.")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist."
            )
        return torch.device(name)
    raise ConfigError(f"Invalid device={name!r}. Valid choices: {', '.join(_DEVICE_CHOICES)}.")


def configure(device: torch.device) -> None:
    """Process-wide settings: full float32 matmuls (no TF32); on CPU flush denormals and keep freed
    memory for reuse (mbdpo_core.memory.keep_freed_memory).

    Trained weights produce many denormal floats in the planner, which slow x86 CPUs several
    fold; flushing them to zero changes results by < 1e-38.
    """
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if device.type == "cpu":
        torch.set_flush_denormal(True)
        keep_freed_memory()


def use_compilation_cache() -> str | None:
    """Keep torch.compile's compiled programs (Inductor's caches) in a lasting folder instead of
    /tmp, so that `compile=true` in a new process loads them (the apps call this;
    docs/design.md#runtime).

    The folder is $TORCHINDUCTOR_CACHE_DIR when set, else `compile_cache_dir("torch")`, which this
    sets as the variable (Inductor reads it when it first compiles; the processes this one starts
    inherit it). Returns the folder.
    """
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir("torch")))


def make_rng(seed: int, device: torch.device | None = None) -> torch.Generator:
    """A torch.Generator on `device` (cpu when None) seeded from the config seed (the agent's
    only RNG)."""
    gen = torch.Generator(device=device or "cpu")
    gen.manual_seed(int(seed))
    return gen


def gpu_available() -> bool:
    """Whether torch sees a CUDA device (decides preset=auto)."""
    return torch.cuda.is_available()
