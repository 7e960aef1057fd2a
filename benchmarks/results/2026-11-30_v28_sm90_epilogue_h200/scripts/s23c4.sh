#!/usr/bin/env bash
# Session 23 call 4: the tail split build (branch sm90-fwd-tail-split, dev sm_90a):
# GPU tests, growth cases, sanitizers on the split cases, then A/B against main's
# release wheel (a866302-era kernels + 4b52fd5) at head dim 64.
set -u
t0=$SECONDS
mkdir -p "$OUT/c4"
main=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$main" .devrun/flashcore-*.whl
mkdir -p /tmp/split && cp -r src /tmp/split/ && tar xzf .devrun/split.tgz -C /tmp/split
S=/tmp/split/src
PYTHONPATH=$S timeout 150 python3 -m pytest -q -x tests/test_fwd.py > "$OUT/c4/fwd.txt" 2>&1
echo "test_fwd rc=$? ($((SECONDS-t0)) s)"; tail -3 "$OUT/c4/fwd.txt"
PYTHONPATH=$S timeout 60 python3 .devrun/spec_check.py > "$OUT/c4/spec.txt" 2>&1
echo "spec rc=$? ($((SECONDS-t0)) s)"; tail -1 "$OUT/c4/spec.txt"
ab() {  # ab NAME PYTHONPATH CONFIGS SHAPES ROUND
  PYTHONPATH=$2 timeout 100 python3 benchmarks/ab_configs.py --configs "$3" --dtype fp16 \
    --rounds 1 --shapes "$4" > "$OUT/c4/ab_$1_$5.txt" 2>&1
  echo "$1 round $5 rc=$? ($((SECONDS-t0)) s)"
}
S64="4,16,2048;8,16,4096;2,8,8192;2,16,16384;1,4,2048"
C64=sm90_d64_w3,sm90_d64_w3_p,sm90_d64_p
for r in 1 2; do
  ab m64 "$main" $C64 "$S64" $r
  ab s64 $S $C64 "$S64" $r
done
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
for tool in memcheck synccheck racecheck; do
  extra=""; [ $tool = racecheck ] && extra="--racecheck-report all"
  PYTHONPATH=$S timeout 150 compute-sanitizer --tool $tool $extra --error-exitcode 1 \
    python3 ci/sanitize_cases.py --fwd sm90_d64_w3_p > "$OUT/c4/${tool}.txt" 2>&1
  echo "$tool rc=$? ($((SECONDS-t0)) s)"; tail -2 "$OUT/c4/${tool}.txt"
done
tar czf "$OUT/c4.tgz" -C "$OUT" c4
