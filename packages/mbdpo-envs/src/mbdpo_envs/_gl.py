"""Rendering setup, run first when mbdpo_envs is imported (before any simulator is loaded).

- MUJOCO_GL defaults to "egl" (headless rendering; works on CPU-only machines through Mesa).
- On CPU-only machines EGL runs on Mesa's llvmpipe, which loads its own LLVM; triton (installed
  with PyTorch) loads another, and importing triton after llvmpipe is loaded segfaults (seen
  when torch's optimizer first imports torch._dynamo after dm_control was imported with
  MUJOCO_GL=egl). Loading triton first, when it is installed, avoids the clash.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

os.environ.setdefault("MUJOCO_GL", "egl")
if importlib.util.find_spec("triton") is not None:
    importlib.import_module("triton")
