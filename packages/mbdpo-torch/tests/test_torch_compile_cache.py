"""use_compilation_cache: torch.compile's programs land in the default folder under
XDG_CACHE_HOME instead of /tmp. It runs in a new process, as the apps do (Inductor reads the
folder when it first compiles). That a TORCHINDUCTOR_CACHE_DIR of the user's wins is
os.environ.setdefault's promise; one compilation (20-40 s) is enough here."""

import json
import os
import subprocess
import sys

CHILD = """
import json, torch
from mbdpo_torch import use_compilation_cache
folder = use_compilation_cache()
torch.compile(lambda x: torch.sin(x) @ x.T)(torch.ones(8, 8))
print(json.dumps({"folder": folder}))
"""


def test_compiled_programs_are_written_to_the_default_cache_folder(tmp_path):
    folder = tmp_path / "xdg" / "mbdpo" / "torch"
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")

    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"folder": str(folder)}
    assert [p for p in folder.rglob("*") if p.is_file()], "no compiled program was cached"
