#!/usr/bin/env bash
# Sets up a fresh machine for flashcore: a virtual environment with torch and the
# build tools, the wheel built for every target architecture, and that wheel
# installed into the environment.
#   bash ci/install.sh [VENV]          (default VENV: .venv)
# Environment: CUDA_HOME (default /usr/local/cuda), TORCH_SPEC (default
# torch==2.14.1), FLASHCORE_CUDA_ARCHS / FLASHCORE_PTX_ARCH (see setup.py),
# MAX_JOBS (parallel compile jobs).
set -euo pipefail
venv=${1:-.venv}
cd "$(dirname "$0")/.."
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export PATH="$CUDA_HOME/bin:$PATH"
torch_spec=${TORCH_SPEC:-torch==2.14.1}

python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "$torch_spec" "setuptools>=77" wheel ninja pytest
rm -rf build dist
"$py" -m pip wheel -q --no-build-isolation --no-deps -w dist .
"$py" -m pip install -q --force-reinstall --no-deps dist/flashcore-*.whl
echo "installed: $(ls dist/flashcore-*.whl)"
