#!/usr/bin/env bash
# Session 25 call 3: the release wheel of main (v30): self-check, the final table (every
# target shape, fp16 and bf16, each config forced, cuDNN in the same process), the
# forward's tests, the backward's, memcheck on the Hopper forward's sanitizer cases and
# racecheck on the masked persistent ones (sm90_d64_w3_p, sm90_d128_p).
set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
D=$OUT/c3; mkdir -p "$D"
export PYTHONPATH=$site
timeout 60 python3 -m flashcore > "$D/main.txt" 2>&1; echo "main rc=$? ($((SECONDS-t0)) s)"; tail -1 "$D/main.txt"
for d in 128 64; do
  if [ $d = 128 ]; then C=sm90_d128_p,sm90_d128; else C=sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p; fi
  timeout 90 python3 benchmarks/ab_configs.py --configs $C --dtype fp16,bf16 --rounds 2 \
    --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json "$D/ab$d.json" > "$D/ab$d.txt" 2>&1
  echo "ab$d rc=$? ($((SECONDS-t0)) s)"
done
tar czf "$OUT/c3a.tgz" -C "$OUT" c3
timeout 120 python3 -m pytest -q -rs tests/test_fwd.py tests/test_masks.py > "$D/pytest_fwd.txt" 2>&1
echo "pytest fwd rc=$? ($((SECONDS-t0)) s)"; grep -E "^(FAILED|ERROR)|passed|failed" "$D/pytest_fwd.txt" | tail -3
timeout 120 python3 -m pytest -q -x tests/test_bwd.py > "$D/pytest_bwd.txt" 2>&1
echo "pytest bwd rc=$? ($((SECONDS-t0)) s)"; grep -E "^(FAILED|ERROR)|passed|failed" "$D/pytest_bwd.txt" | tail -3
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > "$D/memcheck.txt" 2>&1
echo "memcheck rc=$? ($((SECONDS-t0)) s)"; tail -2 "$D/memcheck.txt"
for c in sm90_d128_p sm90_d64_w3_p; do
  timeout 75 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd $c > "$D/racecheck_$c.txt" 2>&1
  echo "racecheck $c rc=$? ($((SECONDS-t0)) s)"; tail -2 "$D/racecheck_$c.txt"
done
tar czf "$OUT/c3.tgz" -C "$OUT" c3
