#!/usr/bin/env bash
# The one command a GPU machine runs, from the repo root:   bash scripts/gpu_check.sh
#
#   1. versions: nvidia-smi, torch (+ its CUDA), triton, nvcc;
#   2. build: pip install --no-build-isolation -e . (CUDA extension, since torch is a CUDA build),
#      retried once with 4 jobs if it fails; or GPU_CHECK_PREBUILT=DIR: DIR/_C.abi3.so.xz from an
#      earlier run on such a machine, used only if DIR/csrc.sha matches this tree's C++ sources;
#   3. tests on CUDA without TRITON_INTERPRET: pytest tests -m "not aot" with
#      FUSEDLOSS_TEST_CUDA_ONLY=1 (the CUDA cases; the CPU cases are CI's), on pytest-xdist workers;
#      then, if time is left, the AOT test (-m aot), which needs no GPU and which CI runs too;
#   4. every benchmarks/bench_*.py --device cuda (--quick unless GPU_CHECK_BENCH_ARGS says otherwise):
#      bench_focal.py, bench_metric.py (circle, multi-similarity), bench_multilabel.py (dense and
#      sparse multilabel CE), bench_pairwise.py, bench_pointwise.py, bench_session_softmax.py
#      (listwise rank/distill, JRC), bench_softmax.py (cross-entropy, softmax focal; Liger-Kernel's
#      CE when liger_kernel imports), bench_sv_softmax.py, bench_ziln.py;
#   5. scripts/check_cuda_build.sh (cmake/nvcc compile check), if it exists and time is left: it
#      needs no GPU and CPU CI runs it too, so it goes after the benchmarks, which do need the GPU;
#   6. one results file, benchmarks/results/gpu_check_<device-slug>.md: device, versions, pytest
#      summaries, benchmark tables. It is rewritten after every step (a killed run still leaves one)
#      and copied to $OUT when $OUT is set, with logs.tgz (step logs, benchmark CSV/PNG) and
#      build/ (the built extension as _C.abi3.so.xz and csrc.sha, for GPU_CHECK_PREBUILT).
#
# GPU_CHECK_ONLY=tests | bench runs one half (build, then the tests or the benchmarks) and writes
# gpu_check_<slug>_tests.md or _bench.md: where one command may run 10 minutes, the whole check does
# not fit in one (about 75 s build, 300 s of CUDA tests on 12 workers, 40 s per benchmark), so run
#   GPU_CHECK_ONLY=tests bash scripts/gpu_check.sh
#   GPU_CHECK_ONLY=bench GPU_CHECK_PREBUILT=<the first call's $OUT/build> bash scripts/gpu_check.sh
#
# Python: $PYTHON, else python3/python if it imports a CUDA build of torch; otherwise a fresh venv
# with torch==2.13.0 triton==3.9.0 numpy==2.4.6 pytest from PyPI (needs network).
# Every step has a timeout; the whole run keeps under GPU_CHECK_BUDGET_S (default 560 s, for a
# 600 s limit on the command). Exit status: 0 only if the build, both test runs, every benchmark
# and (when it had time to run) the CUDA build check succeeded; later steps run even when an
# earlier one failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
T0=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-560}
DEADLINE=$(( T0 + BUDGET ))
BENCH_ARGS=${GPU_CHECK_BENCH_ARGS---quick}
PART=${GPU_CHECK_ONLY:-all}
case $PART in all|tests|bench) ;; *) echo "GPU_CHECK_ONLY must be tests or bench, got '$PART'"; exit 2 ;; esac
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
unset TRITON_INTERPRET
export TRITON_DEFAULT_FP_FUSION=${TRITON_DEFAULT_FP_FUSION:-1}
export PYTHONUNBUFFERED=1

STEPS=()      # "name|status|seconds" for the summary
FAILED=0
say() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------------------------------- python
# GPU_CHECK_ALLOW_CPU=1 accepts a CPU-only torch: only for trying this script's plumbing on a
# machine without a GPU (every CUDA step then fails, as it should).
cuda_torch() {
  "$1" -c 'import os, sys, torch
sys.exit(0 if torch.version.cuda or os.environ.get("GPU_CHECK_ALLOW_CPU") == "1" else 1)' >/dev/null 2>&1
}

PY=""
for cand in "${PYTHON:-}" python3 python; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 || continue
  if cuda_torch "$cand"; then PY=$(command -v "$cand"); PY_HOW="already installed"; break; fi
done
if [ -z "$PY" ]; then
  VENV=${GPU_CHECK_VENV:-${TMPDIR:-/tmp}/fusedloss-gpu-venv}
  say "no python with a CUDA build of torch; creating $VENV and installing torch from PyPI"
  base=$(command -v python3 || command -v python)
  if "$base" -m venv "$VENV" > "$LOGS/venv.log" 2>&1 \
     && timeout 420 "$VENV/bin/python" -m pip install -q torch==2.13.0 triton==3.9.0 numpy==2.4.6 pytest \
        >> "$LOGS/venv.log" 2>&1 && cuda_torch "$VENV/bin/python"; then
    PY=$VENV/bin/python; PY_HOW="fresh venv: pip install torch==2.13.0 triton==3.9.0 numpy==2.4.6 pytest"
  else
    tail -20 "$LOGS/venv.log"
    PY=$VENV/bin/python; [ -x "$PY" ] || PY=$base
    PY_HOW="NO CUDA torch: venv/pip install failed (see logs/venv.log); continuing with $PY"
    FAILED=1
  fi
fi
PY_HOW="$PY_HOW; torch $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1)"
echo "python: $PY ($PY_HOW)"
# pytest is the one tool a bare machine's torch install may lack
"$PY" -c 'import pytest' >/dev/null 2>&1 || timeout 120 "$PY" -m pip install -q pytest > "$LOGS/pytest-install.log" 2>&1

DEV_NAME=$("$PY" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "no-cuda-device")' 2>/dev/null || echo no-cuda-device)
SLUG=$(printf '%s' "$DEV_NAME" | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9]+/-/g; s/^-+|-+$//g')
RESULTS=$ROOT/benchmarks/results
MD=$RESULTS/gpu_check_$SLUG$( [ "$PART" = all ] || echo "_$PART").md
mkdir -p "$RESULTS"

# nvcc: torch's build finds it on PATH, in $CUDA_HOME or in /usr/local/cuda; put the last two on
# PATH too, for cmake in check_cuda_build.sh.
NVCC=$(command -v nvcc || true)
for d in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -z "$NVCC" ] && [ -n "$d" ] && [ -x "$d/bin/nvcc" ]; then
    NVCC=$d/bin/nvcc
    export PATH=$d/bin:$PATH
  fi
done
# Build only for this GPU's architecture (halves nvcc time); the full 80;90 list is CI's job.
# (Not named CC: the machine's image exports CC, the C compiler that torch's build and nvcc's -ccbin
# use; overwriting it with "9 0" broke the first GPU run's build.)
DEV_CAP=$("$PY" -c 'import torch; c = torch.cuda.get_device_capability(); print(f"{c[0]} {c[1]}")' 2>/dev/null || true)
if [ -n "$DEV_CAP" ]; then
  set -- $DEV_CAP
  export FUSEDLOSS_CUDA_ARCHS=${FUSEDLOSS_CUDA_ARCHS:-$1$2}
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$1.$2}
fi
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
# What the extension is built from: a prebuilt one is used only for the same sources.
CSRC_SHA=$(find csrc setup.py CMakeLists.txt -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
export CSRC_SHA

# ----------------------------------------------------------------------------------- reporting
publish() {  # (re)write the results file from the step logs, copy it to $OUT
  local s n st sec t f
  {
    echo "# fusedloss GPU check: $DEV_NAME$( [ "$PART" = all ] || echo " ($PART only: GPU_CHECK_ONLY=$PART)")"
    echo
    echo "- date: $(date -Is); host: $(hostname); elapsed: $(( $(date +%s) - T0 )) s"
    echo "- git: $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$( [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (+ uncommitted changes)')"
    echo "- python: $PY ($PY_HOW)"
    echo "- build env: nvcc ${NVCC:-not found}, CUDA_HOME=${CUDA_HOME:-unset} FUSEDLOSS_CUDA_ARCHS=${FUSEDLOSS_CUDA_ARCHS:-unset} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-unset} TRITON_DEFAULT_FP_FUSION=$TRITON_DEFAULT_FP_FUSION TRITON_INTERPRET unset"
    echo
    echo "## Steps"
    echo
    echo "| step | status | seconds |"
    echo "|---|---|---|"
    for s in "${STEPS[@]}"; do IFS='|' read -r n st sec <<< "$s"; echo "| $n | $st | $sec |"; done
    echo
    echo "## Versions"
    echo
    echo '```text'; cat "$LOGS/versions.log" 2>/dev/null; echo '```'
    echo
    echo "## Build (pip install --no-build-isolation -e .)"
    echo
    echo '```text'
    if grep -qE "^Successfully installed|^built in place|^prebuilt" "$LOGS/build.log" 2>/dev/null; then
      grep -E "^Successfully|^built in place|^prebuilt|^retry|^backend |: warning: " "$LOGS/build.log" | tail -40
    fi
    if grep -qE "error|Killed|^retry" "$LOGS/build.log" 2>/dev/null; then
      echo "-- error lines:"
      grep -E -B2 -A6 "error:|Error [0-9]|Killed|signal|^retry" "$LOGS/build.log" | grep -v "^ *$" | head -60
    fi
    grep -qE "^Successfully installed|^built in place|^prebuilt" "$LOGS/build.log" 2>/dev/null \
      || tail -20 "$LOGS/build.log" 2>/dev/null
    echo '```'
    for t in tests aot; do
      [ -f "$LOGS/$t.log" ] || continue
      echo
      echo "## pytest ($t)"
      echo
      echo '```text'
      if grep -q "short test summary info" "$LOGS/$t.log"; then
        sed -n '/short test summary info/,$p' "$LOGS/$t.log" | tail -150
      else
        tail -5 "$LOGS/$t.log"
      fi
      echo '```'
    done
    if [ -f "$LOGS/cuda_build.log" ]; then
      echo; echo "## scripts/check_cuda_build.sh"; echo
      echo '```text'; tail -25 "$LOGS/cuda_build.log"; echo '```'
    fi
    for f in "$LOGS"/bench_*.log; do
      [ -f "$f" ] || continue
      echo; echo "## $(basename "$f" .log) --device cuda $BENCH_ARGS"; echo
      echo '```text'
      if grep -q '^## ' "$f"; then head -2 "$f"; sed -n '/^## /,$p' "$f" | grep -v '^\.\. '; else tail -40 "$f"; fi
      echo '```'
    done
  } > "$MD"
  if [ -n "${OUT:-}" ]; then
    # at most 8 files come back from $OUT: the results file, one archive, build/'s two
    cp -f "$MD" "$OUT/"
    (cd "$ROOT" && tar czf "$OUT/logs.tgz" -C "$LOGS" . -C "$ROOT" \
      $(ls benchmarks/results/"$SLUG".csv benchmarks/results/*_"$SLUG".png 2>/dev/null)) 2>/dev/null
  fi
  return 0
}

# step NAME CAP_S RESERVE_S LOG tee|notee|optional -- CMD...: run under a timeout of
# min(CAP, time left - RESERVE); RESERVE is kept for the steps after it. "optional": output to the
# log only; no time left, or running out of it, is not a failure (CI runs those steps too).
step() {
  local name=$1 cap=$2 reserve=$3 log=$4 tee=$5; shift 6
  local left=$(( DEADLINE - $(date +%s) - reserve )) t rc s0
  t=$(( left < cap ? left : cap ))
  if (( t < 15 )); then
    echo "skipped: no time left in the $BUDGET s budget" > "$log"
    if [ "$tee" = optional ]; then
      STEPS+=("$name|skipped (no time left in the $BUDGET s budget)|0")
    else
      STEPS+=("$name|SKIPPED (no time left in the $BUDGET s budget)|0"); FAILED=1
    fi
    publish; return 1
  fi
  say "$name (timeout ${t}s): $*"
  s0=$(date +%s)
  # SIGINT first: pytest and the benchmarks then print their summaries of what they finished.
  if [ "$tee" = tee ]; then
    timeout -s INT --kill-after=20 "$t" "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
  else
    timeout -s INT --kill-after=20 "$t" "$@" > "$log" 2>&1; rc=$?
    tail -15 "$log"
  fi
  local st="ok"
  case $rc in
    0) ;;
    124|137)
      if [ "$tee" = optional ]; then st="stopped at its ${t}s share (optional: CI runs it)"
      else st="TIMEOUT after ${t}s"; FAILED=1; fi ;;
    5) st="NO TESTS COLLECTED (rc 5)"; FAILED=1 ;;
    *) st="FAILED (rc $rc)"; FAILED=1 ;;
  esac
  echo "-- $name: $st"
  STEPS+=("$name|$st|$(( $(date +%s) - s0 ))")
  publish
  return $rc
}

# ---------------------------------------------------------------------------------------- steps
versions() {
  echo "device: $DEV_NAME"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,clocks.max.mem --format=csv 2>&1
    nvidia-smi 2>&1 | sed -n 3p
  else
    echo "nvidia-smi: not found"
  fi
  "$PY" - <<'PY'
import platform, sys
import torch
print(f"python {platform.python_version()}  torch {torch.__version__}  torch.version.cuda {torch.version.cuda}"
      f"  cudnn {torch.backends.cudnn.version()}")
print(f"cuda available {torch.cuda.is_available()}", end="")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"  {p.name}  sm_{p.major}{p.minor}  {p.total_memory / 2**30:.1f} GiB  {p.multi_processor_count} SMs", end="")
print()
for mod in ("triton", "numpy", "pytest", "ninja", "matplotlib", "torchvision", "liger_kernel"):
    try:
        m = __import__(mod)
        print(f"{mod} {getattr(m, '__version__', '?')}")
    except Exception as exc:
        print(f"{mod}: not importable ({type(exc).__name__})")
PY
  if [ -n "$NVCC" ]; then echo "nvcc: $NVCC"; "$NVCC" --version | tail -2; else echo "nvcc: not found (the CUDA extension cannot build)"; fi
  echo "cmake: $(cmake --version 2>/dev/null | head -1 || echo not found)"
}
say "versions"
versions 2>&1 | tee "$LOGS/versions.log"
STEPS+=("versions|ok|0")
publish

build() {
  local pre=${GPU_CHECK_PREBUILT:-}
  if [ -n "$pre" ] && [ -f "$pre/_C.abi3.so.xz" ] && [ "$(cat "$pre/csrc.sha" 2>/dev/null)" = "$CSRC_SHA" ]; then
    xz -dc "$pre/_C.abi3.so.xz" > fusedloss/_C.abi3.so || return 1
    export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
    echo "prebuilt: $pre/_C.abi3.so.xz (csrc $CSRC_SHA, built by an earlier gpu_check on this kind of machine); PYTHONPATH=$PYTHONPATH"
  # --no-deps: the machine may be offline, and torch/triton are whatever this python already has.
  elif PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install -v --no-build-isolation --no-deps -e .; then
    :
  elif echo "retry: pip install failed with MAX_JOBS=$MAX_JOBS; again with 4 jobs (ninja keeps what was built)" \
       && MAX_JOBS=4 PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install -v --no-build-isolation --no-deps -e .; then
    :
  else
    echo "pip install -e . failed; trying an in-place build (python setup.py build_ext --inplace)"
    "$PY" setup.py build_ext --inplace -j "$MAX_JOBS" || return 1
    export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
    echo "built in place; PYTHONPATH=$PYTHONPATH"
  fi
  "$PY" - <<'PY'
import fusedloss
for name, reasons in fusedloss.available_backends("cuda").items():
    print(f"backend {name:9s} on cuda: {'available' if not reasons else '; '.join(reasons)}")
for name, reasons in fusedloss.available_backends("cpu").items():
    print(f"backend {name:9s} on cpu: {'available' if not reasons else '; '.join(reasons)}")
PY
}
# timeout needs a command, so build() runs in a child bash; it prints PYTHONPATH for the in-place
# fallback, which is read back from the log so that the later steps import the built package.
export -f build
export PY MAX_JOBS ROOT
build_reserve=250; [ "$PART" = all ] || build_reserve=150
step build 300 "$build_reserve" "$LOGS/build.log" notee -- bash -c 'build; rc=$?; echo "PYTHONPATH_AFTER=${PYTHONPATH:-}"; exit $rc'
pp=$(grep '^PYTHONPATH_AFTER=' "$LOGS/build.log" | tail -1 | cut -d= -f2-)
[ -n "$pp" ] && export PYTHONPATH=$pp

# The built extension goes to $OUT/build (see GPU_CHECK_PREBUILT), compressed: a file over 16 MiB
# does not come back.
if [ -n "${OUT:-}" ] && ls fusedloss/_C*.so >/dev/null 2>&1; then
  mkdir -p "$OUT/build"
  xz -T0 -6 -c "$(ls fusedloss/_C*.so | head -1)" > "$OUT/build/_C.abi3.so.xz" && echo "$CSRC_SHA" > "$OUT/build/csrc.sha"
fi

# pytest-xdist, when it imports, spreads the suite over GPU_CHECK_TEST_WORKERS processes that share
# the GPU (default: 3/4 of the cores, at most 12).
test_workers=()
if "$PY" -c "import xdist" 2>/dev/null; then
  nw=$(( $(nproc) * 3 / 4 )); (( nw > 12 )) && nw=12; (( nw < 1 )) && nw=1
  test_workers=(-n "${GPU_CHECK_TEST_WORKERS:-$nw}")
fi
if [ "$PART" != bench ]; then
  tests_cap=300; tests_reserve=200
  [ "$PART" = tests ] && { tests_cap=$BUDGET; tests_reserve=10; }
  step tests "$tests_cap" "$tests_reserve" "$LOGS/tests.log" tee -- env FUSEDLOSS_TEST_CUDA_ONLY=1 \
    "$PY" -m pytest tests -m "not aot" -q -rs -p no:cacheprovider "${test_workers[@]}"
fi

# Benchmarks share what is left (minus 45 s for the CUDA build check). Each gets --time-budget at
# 3/4 of its share, after which it starts no new (dtype, size) group and prints what it has.
# The glob runs them in name order: bench_focal, bench_metric, bench_multilabel, bench_pairwise,
# bench_pointwise, bench_session_softmax, bench_softmax, bench_sv_softmax, bench_ziln.
benches=(benchmarks/bench_*.py)
[ "$PART" = tests ] && benches=()
bench_reserve=45; [ "$PART" = bench ] && bench_reserve=5
n_bench=${#benches[@]}
i_bench=0
for b in "${benches[@]}"; do
  [ -f "$b" ] || continue
  share=$(( (DEADLINE - $(date +%s) - bench_reserve) / (n_bench - i_bench) ))
  i_bench=$(( i_bench + 1 ))
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
  step "$(basename "$b" .py)" "$share" 0 "$LOGS/$(basename "$b" .py).log" tee -- \
    "$PY" "$b" --device cuda --time-budget $(( share * 3 / 4 )) $BENCH_ARGS
done

if [ "$PART" != bench ]; then
  step aot 120 0 "$LOGS/aot.log" optional -- env FUSEDLOSS_AOT_WORKERS=$(nproc) \
    "$PY" -m pytest tests -m aot -q -rs -p no:cacheprovider
fi
if [ "$PART" != bench ] && [ -f scripts/check_cuda_build.sh ]; then
  step check_cuda_build 120 0 "$LOGS/cuda_build.log" optional -- env PYTHON="$PY" bash scripts/check_cuda_build.sh build/cmake
fi

publish
say "summary"
for f in "$LOGS"/bench_*.log; do [ -f "$f" ] && sed -n '/^Targets/,/^$/p' "$f"; done
for t in tests aot; do [ -f "$LOGS/$t.log" ] && echo "pytest $t: $(grep -E '(passed|failed|error|skipped|no tests ran)' "$LOGS/$t.log" | tail -1)"; done
echo "results: $MD"
[ -n "${OUT:-}" ] && echo "copied to $OUT: $(ls "$OUT" | tr '\n' ' ')"
for s in "${STEPS[@]}"; do echo "  $s"; done
exit $FAILED
