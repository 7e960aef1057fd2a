#!/usr/bin/env bash
# Device-side check of a built wheel, in one go:
#   [FLASHCORE_TEST_WHEELS=DIR] ci/gpu_check.sh WHEEL LOGDIR
# installs WHEEL (--no-deps, into a private target dir; with FLASHCORE_TEST_WHEELS,
# transformers from that wheel dir too, for the integration tests), prints build info and
# the self-check table (python -m flashcore), runs the whole pytest suite (GPU
# tests included), compute-sanitizer memcheck and racecheck on small cases, and
# the benchmark; writes every log and a summary.md into LOGDIR. Exit status is
# non-zero if any step failed. Run from the repository root.
# FLASHCORE_GPU_CHECK_STEPS=main,pytest,memcheck,racecheck,synccheck,benchmark (the
# default) runs a subset, e.g. to split the check over device calls; pytest_bwd and
# pytest_rest (not in the default) are pytest's two halves, pytest_rest_fwd and
# pytest_rest_pre pytest_rest's two (tests/test_fwd.py on, and the files before it), racecheck_fwd and
# racecheck_bwd racecheck's (ci/sanitize_cases.py --fwd / --bwd). Each
# step's result line (and pytest's FAILED/ERROR lines) goes to stdout as soon as the
# step ends, so a run cut short still tells what it saw.
set -u
wheel=${1:?usage: ci/gpu_check.sh WHEEL LOGDIR}
logs=${2:?usage: ci/gpu_check.sh WHEEL LOGDIR}
mkdir -p "$logs"
site=$(mktemp -d)
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel" || exit 2
# Optional: transformers for tests/test_integrations.py, from wheels fetched
# beforehand (ci/test_wheels.sh) for a machine without network access.
# Every wheel there goes in with --no-deps: ci/test_wheels.sh leaves out the large
# ones the device image already has (numpy), which pip --target would otherwise
# insist on reinstalling.
if [ -n "${FLASHCORE_TEST_WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" \
    "$FLASHCORE_TEST_WHEELS"/*.whl || exit 2
  export FLASHCORE_EXPECT_TRANSFORMERS=1
  # tests/test_integrations.py appends the model table's rows here.
  export FLASHCORE_MODEL_TABLE="$logs/model_logits.jsonl"
  rm -f "$FLASHCORE_MODEL_TABLE"
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
SAN=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}

status=0
steps=",${FLASHCORE_GPU_CHECK_STEPS:-main,pytest,memcheck,racecheck,synccheck,benchmark},"
: >"$logs/steps.txt"
step() {  # step NAME KEY LOGFILE CMD...
  local name=$1 key=$2 log=$3; shift 3
  case "$steps" in *",$key,"*) ;; *) return 0 ;; esac
  local t0=$SECONDS
  "$@" >"$logs/$log" 2>&1
  local rc=$?
  echo "$name: rc=$rc ($((SECONDS - t0)) s)" | tee -a "$logs/steps.txt"
  grep -E "^(FAILED|ERROR) |passed|failed" "$logs/$log" | tail -n 40 | sed 's/^/    /' | cut -c1-400
  [ $rc -eq 0 ] || status=1
}

step "python -m flashcore" main main.txt python3 -m flashcore
step "pytest" pytest pytest.txt python3 -m pytest -q -rs tests
# The suite's two halves, for device calls too short for all of it (about 580 s
# on an H200 in session 17): the backward's tests, and the rest.
step "pytest (backward)" pytest_bwd pytest_bwd.txt python3 -m pytest -q -rs tests/test_bwd.py
step "pytest (all but the backward)" pytest_rest pytest_rest.txt python3 -m pytest -q -rs tests \
  --ignore=tests/test_bwd.py --durations=25
# pytest_rest in two (not in the default): it ran past 560 s on an H200 in session 23
# (reaching 87%). The test files but the backward's, split at tests/test_fwd.py.
rest_files() {  # rest_files pre|fwd
  local f
  for f in tests/test_*.py; do
    [ "$f" = tests/test_bwd.py ] && continue
    if [[ "$f" < tests/test_fwd.py ]]; then [ "$1" = pre ] && echo "$f"; else [ "$1" = fwd ] && echo "$f"; fi
  done
}
# shellcheck disable=SC2046  # word splitting of the file list is intended
step "pytest (the forward's file and later ones)" pytest_rest_fwd pytest_rest_fwd.txt \
  python3 -m pytest -q -rs --durations=25 $(rest_files fwd)
# shellcheck disable=SC2046
step "pytest (the files before the forward's, but the backward's)" pytest_rest_pre \
  pytest_rest_pre.txt python3 -m pytest -q -rs --durations=25 $(rest_files pre)
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
step "memcheck" memcheck memcheck.txt "$SAN" --tool memcheck --error-exitcode 1 \
  python3 ci/sanitize_cases.py
step "racecheck" racecheck racecheck.txt "$SAN" --tool racecheck --racecheck-report all \
  --error-exitcode 1 python3 ci/sanitize_cases.py
# racecheck's two halves (not in the default), for device calls too short for all of
# it (138 cases took over 530 s beside the pytest steps in session 19).
step "racecheck (forward)" racecheck_fwd racecheck_fwd.txt "$SAN" --tool racecheck \
  --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd
step "racecheck (backward)" racecheck_bwd racecheck_bwd.txt "$SAN" --tool racecheck \
  --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --bwd
# The Hopper family's mbarrier ring and named barriers.
step "synccheck" synccheck synccheck.txt "$SAN" --tool synccheck --error-exitcode 1 \
  python3 ci/sanitize_cases.py
unset PYTORCH_NO_CUDA_MEMORY_CACHING
step "benchmark" benchmark bench.txt python3 benchmarks/bench_fwd.py --json "$logs/bench.json" \
  ${FLASHCORE_COMMIT:+--commit "$FLASHCORE_COMMIT"}

{
  echo "# flashcore GPU check"
  echo
  echo "wheel: $(basename "$wheel")"
  echo "wheel sha256: $(sha256sum "$wheel" | cut -d' ' -f1)"
  python3 -c "import json, sys; sys.path.insert(0, '$site'); import flashcore; print('build info:', json.dumps(flashcore.build_info()))"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sed 's/^/gpu, driver: /'
  python3 -c "import torch, sys; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'python', sys.version.split()[0])"
  echo
  echo "## steps"
  sed 's/^/- /' "$logs/steps.txt"
  echo
  echo "## pytest"
  for log in pytest pytest_bwd pytest_rest pytest_rest_fwd pytest_rest_pre; do
    [ -f "$logs/$log.txt" ] || continue
    grep -E "^(FAILED|ERROR) " "$logs/$log.txt" | cut -c1-400
    tail -n 3 "$logs/$log.txt"
  done
  echo
  if [ -s "$logs/model_logits.jsonl" ]; then
    echo "## model logits (max |logit - float32 model's|)"
    python3 -c "
import json, sys
print('    family   dtype     reference  flashcore  reference impl')
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f\"    {r['family']:<8} {r['dtype']:<9} {r['max_logit_err_reference']:.3e}  {r['max_logit_err_flashcore']:.3e}  {r['reference']}\")
" "$logs/model_logits.jsonl"
    echo
  fi
  echo "## compute-sanitizer"
  for tool in memcheck racecheck racecheck_fwd racecheck_bwd synccheck; do
    [ -f "$logs/$tool.txt" ] || continue
    echo "  $tool:"
    grep -h "ERROR SUMMARY\|RACECHECK SUMMARY\|passed, " "$logs/$tool.txt" | sed 's/^/    /'
  done
  echo
  if [ -f "$logs/main.txt" ]; then
    echo "## python -m flashcore"
    sed 's/^/    /' "$logs/main.txt"
    echo
  fi
  if [ -f "$logs/bench.txt" ]; then
    echo "## benchmark"
    sed 's/^/    /' "$logs/bench.txt"
  fi
} >"$logs/summary.md" 2>&1
rm -f "$logs/steps.txt"
cat "$logs/summary.md"
exit $status
