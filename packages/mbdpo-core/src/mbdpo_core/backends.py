"""Find a backend package by name without a static dependency on it."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from .errors import ConfigError, MissingExtraError

BACKENDS = {"torch": "mbdpo_torch", "jax": "mbdpo_jax"}
"""backend name -> package; each exports `Agent(cfg)` and `gpu_available() -> bool`."""


def load_backend(name: str) -> ModuleType:
    """Import the backend package `name` ("torch" | "jax")."""
    if name not in BACKENDS:
        raise ConfigError(f"Unknown backend {name!r}. Valid backends: {', '.join(BACKENDS)}.")
    try:
        module = importlib.import_module(BACKENDS[name])
    except ImportError as err:
        raise MissingExtraError(
            f"The {name} backend is not installed ({err}). Install it with "
            f"`uv sync --all-packages` or `pip install packages/mbdpo-{name}`."
        ) from err
    if not hasattr(module, "Agent"):
        raise MissingExtraError(f"The {name} backend ({BACKENDS[name]}) provides no Agent yet.")
    return module


def compile_cache_dir(backend: str) -> Path:
    """The default folder of `backend`'s on-disk cache of compiled programs:
    `$XDG_CACHE_HOME/mbdpo/<backend>`, `~/.cache/mbdpo/<backend>` when XDG_CACHE_HOME is unset."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "mbdpo" / backend
