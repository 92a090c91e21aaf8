"""A pixel render followed by torch's lazy import of triton must not crash (see mbdpo_envs._gl)."""

import importlib.util
import subprocess
import sys

import pytest

SCRIPT = """
from mbdpo_envs import make
env = make("walker-walk", seed=0, obs="rgb")
obs, _ = env.reset()
import torch._dynamo  # imports triton, which bundles its own LLVM
print("ok", obs.shape)
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_triton_loads_after_an_egl_render():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok (9, 64, 64)" in out.stdout
