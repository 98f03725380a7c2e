#!/usr/bin/env bash
# The project's test command (README and .ci/run call this):
#   1. the whole suite, Triton kernels under the interpreter on CPU tensors (and on CUDA if present);
#   2. ahead-of-time Triton compiles for sm_80 and sm_90, in a process without the interpreter;
#   3. the nvcc build of every .cu for sm_80 and sm_90 plus the C++ math tests (when nvcc exists).
#   bash scripts/test.sh [VENV_DIR]        (default: .venv)
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
py="$venv/bin/python"
export TRITON_DEFAULT_FP_FUSION=1
status=0

run() { echo "== $*"; "$@"; local rc=$?; [ $rc -eq 0 ] || { echo "!! failed ($rc): $*"; status=1; }; }

# pytest-xdist (scripts/setup.sh installs it) spreads the suite over FUSEDLOSS_TEST_WORKERS processes
# (default 2, the CI machine's cores); without it the suite runs in one process.
workers=()
if "$py" -c "import xdist" 2>/dev/null; then workers=(-n "${FUSEDLOSS_TEST_WORKERS:-2}"); fi
run env TRITON_INTERPRET=1 "$py" -m pytest tests -m "not aot" -q -rs "${workers[@]}"
run env -u TRITON_INTERPRET "$py" -m pytest tests -m aot -q -rs
if command -v nvcc >/dev/null 2>&1; then
  run env PYTHON="$py" bash scripts/check_cuda_build.sh build/cmake
else
  echo "!! nvcc not found: the CUDA compile check did not run"; status=1
fi
exit $status
