#!/usr/bin/env bash
# Install each package into an empty virtual environment and import it:
# mbdpo-core with neither torch nor jax; mbdpo-jax with no torch; mbdpo-torch with no jax.
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
check data "packages/mbdpo-core packages/mbdpo-data" mbdpo_data "torch,jax"
