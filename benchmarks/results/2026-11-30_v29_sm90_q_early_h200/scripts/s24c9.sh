#!/usr/bin/env bash
# Session 24 call 9: the release wheel of main (v29): self-check, the final table (every
# target shape, fp16 and bf16, each config forced, cuDNN in the same process), the
# forward's and the Hopper tests, memcheck on the Hopper forward's sanitizer cases and
# racecheck on sm90_d64_w3_p's.
set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
mkdir -p "$OUT/c9"
export PYTHONPATH=$site
timeout 60 python3 -m flashcore > "$OUT/c9/main.txt" 2>&1; echo "main rc=$? ($((SECONDS-t0)) s)"; tail -2 "$OUT/c9/main.txt"
for d in 128 64; do
  if [ $d = 128 ]; then C=sm90_d128_p,sm90_d128; else C=sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p; fi
  timeout 80 python3 benchmarks/ab_configs.py --configs $C --dtype fp16,bf16 --rounds 2 \
    --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json "$OUT/c9/ab$d.json" > "$OUT/c9/ab$d.txt" 2>&1
  echo "ab$d rc=$? ($((SECONDS-t0)) s)"
done
tar czf "$OUT/c9a.tgz" -C "$OUT" c9
timeout 130 python3 -m pytest -q -rs tests/test_fwd.py tests/test_sm90.py tests/test_masks.py > "$OUT/c9/pytest.txt" 2>&1
echo "pytest rc=$? ($((SECONDS-t0)) s)"; grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/c9/pytest.txt" | tail -5
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > "$OUT/c9/memcheck.txt" 2>&1
echo "memcheck rc=$? ($((SECONDS-t0)) s)"; tail -2 "$OUT/c9/memcheck.txt"
timeout 110 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d64_w3_p > "$OUT/c9/racecheck.txt" 2>&1
echo "racecheck rc=$? ($((SECONDS-t0)) s)"; tail -2 "$OUT/c9/racecheck.txt"
tar czf "$OUT/c9.tgz" -C "$OUT" c9
