"""use_compilation_cache: compiled programs land in the default folder under XDG_CACHE_HOME, the
user's JAX_COMPILATION_CACHE_DIR wins, and an empty one turns the cache off. Each case runs in a
new process, as the apps do (JAX's cache folder is process-wide). Updates reuse the memory of
their temporaries (configure's malloc settings)."""

import json
import os
import platform
import subprocess
import sys

import pytest

CHILD = """
import json, jax, jax.numpy as jnp
from mbdpo_jax import use_compilation_cache
folder = use_compilation_cache()
jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).block_until_ready()
print(json.dumps({"folder": folder, "config": jax.config.jax_compilation_cache_dir}))
"""


def run_child(tmp_path, **env_vars):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",  # cache even this tiny program
        **env_vars,
    )
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def files_under(path):
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.parametrize("given", [None, "mine"])
def test_compiled_programs_are_written_to_the_cache_folder(given, tmp_path):
    folder = tmp_path / "xdg" / "mbdpo" / "jax" if given is None else tmp_path / given
    extra = {} if given is None else {"JAX_COMPILATION_CACHE_DIR": str(folder)}

    got = run_child(tmp_path, **extra)

    assert got == {"folder": str(folder), "config": str(folder)}
    assert files_under(folder), "no compiled program was cached"


def test_an_empty_variable_turns_the_cache_off(tmp_path):
    got = run_child(tmp_path, JAX_COMPILATION_CACHE_DIR="")

    assert got["folder"] is None and not got["config"]
    assert files_under(tmp_path / "xdg") == []


UPDATES = """
import json, resource
import numpy as np
from mbdpo_core.batch import Batch
from mbdpo_core.config.load import load_config
from mbdpo_jax import Agent

cfg = load_config(["task=cheetah-run", "model_size=1", "preset=paper", "device=cpu"])
rng = np.random.default_rng(0)
H, B = cfg.horizon, cfg.batch_size
batch = Batch(
    obs=rng.standard_normal((H + 1, B, cfg.obs_shape[0])).astype(np.float32),
    action=rng.uniform(-1, 1, (H, B, cfg.action_dim)).astype(np.float32),
    reward=rng.standard_normal((H, B, 1)).astype(np.float32),
    terminated=np.zeros((H, B, 1), np.float32),
)
agent = Agent(cfg)
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    agent.update(batch)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(faults))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc settings")
def test_updates_reuse_their_memory(tmp_path):
    """XLA's CPU runtime allocates an update's temporaries (98 MB at model_size 1) in one block per
    call; with the default malloc each call mapped a fresh block and faulted in every page. After
    two warm-up updates, most updates must touch almost no new page (counted by the kernel; an
    occasional update may map the block afresh when other allocations sit beside the free one)."""
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": "", "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", UPDATES], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    faults = json.loads(done.stdout.strip().splitlines()[-1])
    temporaries_pages = 98 << 20 >> 12
    assert faults[0] > temporaries_pages, faults  # the first update does fault them in
    clean = [f < temporaries_pages // 100 for f in faults[2:]]
    assert sum(clean) > len(clean) // 2, faults
