#!/usr/bin/env bash
# Fresh virtual environment with the pinned toolchain, then an in-place build of fusedloss against
# the torch it holds (--no-build-isolation: pip must never fetch a second torch to build with).
#   bash scripts/setup.sh [VENV_DIR]        (default: .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip setuptools wheel
# On a CPU-only machine of this project this resolves to the CPU build already on disk; on a GPU
# machine it is PyPI's CUDA build.
"$py" -m pip install -q torch==2.13.0
"$py" -m pip install -q triton==3.9.0 numpy==2.4.6 pytest==9.0.3 pytest-xdist==3.8.0 pyyaml ninja matplotlib
"$py" -m pip install -q --no-build-isolation -e .
"$py" - <<'PY'
import torch, triton, fusedloss
print(f"torch {torch.__version__} (cuda {torch.version.cuda}), triton {triton.__version__}")
for name, reasons in fusedloss.available_backends().items():
    print(f"  backend {name:9s}: {'available' if not reasons else '; '.join(reasons)}")
PY
