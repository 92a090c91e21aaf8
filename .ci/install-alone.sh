#!/usr/bin/env bash
# Install each package into an empty virtual environment and import it:
# mbdpo-core with neither torch nor jax; mbdpo-jax with no torch; mbdpo-torch with no jax;
# mbdpo-data with neither, converting .pt chunks.
# Then mbdpo-jax with the DMControl suite, still without torch, trains a short run.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=$(uv python find 3.12)

check() {  # name, packages to install, module to import, modules that must be absent
  local name=$1 pkgs=$2 module=$3 absent=$4
  uv venv --quiet --python "$py" "$tmp/$name"
  # shellcheck disable=SC2086
  uv pip install --quiet --python "$tmp/$name/bin/python" $pkgs
  "$tmp/$name/bin/python" - "$module" "$absent" <<'PY'
import importlib, importlib.util, sys
module, absent = sys.argv[1], sys.argv[2].split(",") if sys.argv[2] else []
importlib.import_module(module)
present = [m for m in absent if importlib.util.find_spec(m) is not None]
assert not present, f"{module} pulled {present}"
print(f"ok: {module} imports alone; absent: {absent or 'n/a'}")
PY
}

check core "packages/mbdpo-core" mbdpo_core "torch,jax"
check jax "packages/mbdpo-core packages/mbdpo-jax" mbdpo_jax "torch"
check torch "packages/mbdpo-core packages/mbdpo-torch" mbdpo_torch "jax"
check envs "packages/mbdpo-core packages/mbdpo-envs[dmc]" mbdpo_envs "torch,jax"
check data "packages/mbdpo-core packages/mbdpo-data" mbdpo_data "torch,jax,tensordict"

# mbdpo-data converts TD-MPC2 .pt chunks and samples them with neither torch nor tensordict.
"$tmp/data/bin/python" apps/convert packages/mbdpo-data/tests/data/mt80-tiny "$tmp/mt80-tiny" --quiet
"$tmp/data/bin/python" - "$tmp/mt80-tiny" <<'PY'
import sys
import numpy as np
from mbdpo_data import DatasetSampler, OfflineDataset
batch = DatasetSampler(OfflineDataset(sys.argv[1]), seed=0, prefetch=0).sample(8, 3)
assert batch.obs.shape == (4, 8, 39) and batch.task.dtype == np.int64
assert np.isfinite(batch.action).all(), "a batch took row 0's filler action"
print("ok: mbdpo-data converts .pt chunks and samples them with no torch installed")
PY

# The JAX backend trains with no torch present: install core + envs[dmc] + jax, run apps/train.
uv pip install --quiet --python "$tmp/jax/bin/python" "packages/mbdpo-envs[dmc]"
"$tmp/jax/bin/python" -c "import importlib.util as u; assert u.find_spec('torch') is None, 'envs pulled torch'"
MUJOCO_GL=egl "$tmp/jax/bin/python" apps/train --backend jax task=cartpole-balance preset=cpu \
  mlp_dim=32 enc_dim=32 latent_dim=16 num_q=2 batch_size=16 diffusion_steps=3 \
  diffusion_num_samples=16 diffusion_num_elites=4 diffusion_num_pi_trajs=2 \
  seed_steps=500 steps=1000 eval_freq=500 eval_episodes=1 save_every=500 run_dir="$tmp/jax-run" \
  | tail -n 2
test -f "$tmp/jax-run/checkpoints/step_1000.safetensors"
test "$(wc -l < "$tmp/jax-run/eval.csv")" -eq 4
echo "ok: mbdpo-jax trains with no torch installed"
