"""use_compilation_cache: compiled programs land in the default folder under XDG_CACHE_HOME, the
user's JAX_COMPILATION_CACHE_DIR wins, and an empty one turns the cache off. Each case runs in a
new process, as the apps do (JAX's cache folder is process-wide)."""

import json
import os
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
