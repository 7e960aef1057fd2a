#!/usr/bin/env bash
# First device run of the Hopper (sm_90a) backward configs (sm90_bwd_d64,
# sm90_bwd_d128; docs/design/backward.md section 7), on an H100/H200, from the
# repository root of a checkout of this branch:
#   ci/sm90_bwd_smoke.sh [LOGDIR]            (default LOGDIR: sm90_bwd_logs)
# Steps (FLASHCORE_SMOKE_STEPS, comma-separated; default all, in this order):
#   build      a dev build in place (sm_90a only) unless src/flashcore/_C*.so and
#              src/flashcore/_build_config.py exist; FLASHCORE_SMOKE_REBUILD=1
#              forces it
#   sass       the CPU checks of the catalog and of the sm_90a SASS (HGMMA,
#              UTMALDG, no local memory) and the contract tests
#   stage1     tests/test_sm90.py: the wgmma/TMA primitives on one tile against
#              torch, including T = V^T K with both operands MN-major (the dQ
#              GEMM's operand form, which no shipped kernel used before): if the
#              backward's dq is wrong and this fails, the descriptor is why
#   pytest     every GPU test that forces an sm90 backward config (tests/test_bwd.py
#              -k sm90: the covering grid, the edges, poisoned outputs and
#              workspace, ramps, strided views, errors, and the forced-config
#              cases every backward config runs)
#   regress    the mma.sync backward's forced-config tests (the shared test
#              helpers and catalog changed around them)
#   memcheck, racecheck, synccheck
#              compute-sanitizer on ci/sanitize_cases.py's five small cases per
#              sm90 backward config (PYTORCH_NO_CUDA_MEMORY_CACHING=1)
#   bench      benchmarks/ab_bwd_configs.py: bwd_d128 vs sm90_bwd_d128 at head dim
#              128 and bwd_d64 vs sm90_bwd_d64 at 64, SDPA's flash backend beside
#              them (FLASHCORE_SMOKE_SHAPES, default "4,16,2048;8,16,4096")
# Each step has a time limit (a hang in a barrier shows up as rc=124) and its
# own log in LOGDIR; each step's result line goes to stdout as it ends, and
# LOGDIR/steps.txt collects them. Exit status 1 if any step failed.
# All of it takes ~10-15 minutes; to stay under a 10-minute device call, split
# it, e.g. FLASHCORE_SMOKE_STEPS=build,sass,stage1,pytest then
# FLASHCORE_SMOKE_STEPS=regress,memcheck,racecheck,synccheck,bench.
set -u
logs=${1:-sm90_bwd_logs}
mkdir -p "$logs"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
SAN=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
steps=",${FLASHCORE_SMOKE_STEPS:-build,sass,stage1,pytest,regress,memcheck,racecheck,synccheck,bench},"
shapes=${FLASHCORE_SMOKE_SHAPES:-4,16,2048;8,16,4096}
status=0
: >"$logs/steps.txt"
step() {  # step KEY SECONDS LOGFILE CMD...
  local key=$1 limit=$2 log=$3; shift 3
  case "$steps" in *",$key,"*) ;; *) return 0 ;; esac
  local t0=$SECONDS
  timeout "$limit" "$@" >"$logs/$log" 2>&1
  local rc=$?
  echo "$key: rc=$rc ($((SECONDS - t0)) s)" | tee -a "$logs/steps.txt"
  grep -E "^(FAILED|ERROR) |passed|failed|WRONG|ERROR SUMMARY|TFLOP/s" "$logs/$log" | tail -n 40 |
    sed 's/^/    /' | cut -c1-400
  [ $rc -eq 0 ] || status=1
}

build() {
  # A carried-over build needs its record too (flashcore.build_info reads it).
  if [ "${FLASHCORE_SMOKE_REBUILD:-0}" != 1 ] && ls src/flashcore/_C*.so >/dev/null 2>&1 &&
    [ -f src/flashcore/_build_config.py ]; then
    echo "using the existing build: $(ls src/flashcore/_C*.so)"
    return 0
  fi
  CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} FLASHCORE_CUDA_ARCHS=90a FLASHCORE_PTX_ARCH= \
    FLASHCORE_PTXAS_V=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" setup.py -q build_ext --inplace
}

bench() {
  "$PY" benchmarks/ab_bwd_configs.py --configs bwd_d128,sm90_bwd_d128 --head-dim 128 \
    --dtype bf16,fp16 --shapes "$shapes" --rounds 3 --json "$logs/ab_d128.json" &&
    "$PY" benchmarks/ab_bwd_configs.py --configs bwd_d64,sm90_bwd_d64 --head-dim 64 \
      --dtype bf16,fp16 --shapes "$shapes" --rounds 3 --json "$logs/ab_d64.json"
}

{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
  git log --oneline -1 2>/dev/null
} >"$logs/env.txt" 2>&1
cat "$logs/env.txt"

export PY logs shapes
export -f build bench
step build 900 build.txt bash -c build
step sass 300 sass.txt "$PY" -m pytest -q -rs tests/test_bwd_configs.py tests/test_autograd_api.py \
  -k "sm90 or hopper or catalog or built"
step stage1 300 stage1.txt "$PY" -m pytest -q -rs tests/test_sm90.py
step pytest 900 pytest.txt "$PY" -m pytest -q -rs tests/test_bwd.py -k sm90
step regress 900 regress.txt "$PY" -m pytest -q -rs tests/test_bwd.py \
  -k "(every_bwd_config or deterministic_dq_does_not_depend) and not sm90"
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
step memcheck 600 memcheck.txt "$SAN" --tool memcheck --error-exitcode 1 \
  "$PY" ci/sanitize_cases.py sm90_bwd
step racecheck 600 racecheck.txt "$SAN" --tool racecheck --racecheck-report all \
  --error-exitcode 1 "$PY" ci/sanitize_cases.py sm90_bwd
step synccheck 600 synccheck.txt "$SAN" --tool synccheck --error-exitcode 1 \
  "$PY" ci/sanitize_cases.py sm90_bwd
unset PYTORCH_NO_CUDA_MEMORY_CACHING
step bench 900 bench.txt bash -c bench

echo "steps:"
cat "$logs/steps.txt"
exit $status
