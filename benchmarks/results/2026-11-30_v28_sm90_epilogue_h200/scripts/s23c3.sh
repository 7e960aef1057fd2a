#!/usr/bin/env bash
# Session 23 call 3: the epilogue's O store by TMA (epi1) or from registers (epi2)
# against main's release wheel: correctness, then A/B (fp16), then sanitizers on epi1.
set -u
t0=$SECONDS
mkdir -p "$OUT/c3"
main=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$main" .devrun/flashcore-*.whl
for b in epi1 epi2; do
  mkdir -p /tmp/$b && cp -r src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b
  PYTHONPATH=/tmp/$b/src timeout 100 python3 -m pytest -q tests/test_fwd.py -k "sm90" > "$OUT/c3/fwd_$b.txt" 2>&1
  echo "$b tests rc=$? ($((SECONDS-t0)) s)"; tail -2 "$OUT/c3/fwd_$b.txt"
  PYTHONPATH=/tmp/$b/src timeout 60 python3 .devrun/spec_check.py > "$OUT/c3/spec_$b.txt" 2>&1
  echo "$b spec rc=$? ($((SECONDS-t0)) s)"; tail -1 "$OUT/c3/spec_$b.txt"
done
ab() {  # ab NAME PYTHONPATH CONFIGS SHAPES ROUND
  PYTHONPATH=$2 timeout 100 python3 benchmarks/ab_configs.py --configs "$3" --dtype fp16 \
    --rounds 1 --shapes "$4" > "$OUT/c3/ab_$1_$5.txt" 2>&1
  echo "$1 round $5 rc=$? ($((SECONDS-t0)) s)"
}
S64="4,15,2048;4,16,2048;8,16,4096;2,16,16384"
S128="4,16,2048;8,16,4096;1,32/8,8192"
C64=sm90_d64_w3,sm90_d64_w3_p,sm90_d64_p
C128=sm90_d128,sm90_d128_p
for r in 1 2; do
  ab m64 "$main" $C64 "$S64" $r
  ab e1_64 /tmp/epi1/src $C64 "$S64" $r
  ab e2_64 /tmp/epi2/src $C64 "$S64" $r
  ab m128 "$main" $C128 "$S128" $r
  ab e1_128 /tmp/epi1/src $C128 "$S128" $r
  ab e2_128 /tmp/epi2/src $C128 "$S128" $r
done
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
for tool in memcheck synccheck; do
  PYTHONPATH=/tmp/epi1/src timeout 120 compute-sanitizer --tool $tool --error-exitcode 1 \
    python3 ci/sanitize_cases.py --fwd sm90 > "$OUT/c3/${tool}_epi1.txt" 2>&1
  echo "epi1 $tool rc=$? ($((SECONDS-t0)) s)"; tail -2 "$OUT/c3/${tool}_epi1.txt"
done
tar czf "$OUT/c3.tgz" -C "$OUT" c3
