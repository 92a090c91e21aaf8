"""Rendering setup shared by the MuJoCo adapters; import it before any simulator.

- MUJOCO_GL defaults to "egl" (headless rendering; works on CPU-only machines through Mesa).
- On CPU-only machines EGL runs on Mesa's llvmpipe, which loads its own LLVM; triton (installed
  with PyTorch) loads another, and importing triton after llvmpipe is loaded segfaults (seen
  when torch's optimizer first imports torch._dynamo after a pixel render). Loading triton first,
  when it is installed, avoids the clash.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

os.environ.setdefault("MUJOCO_GL", "egl")
if importlib.util.find_spec("triton") is not None:
    importlib.import_module("triton")
