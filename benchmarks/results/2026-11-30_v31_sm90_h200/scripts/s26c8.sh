#!/usr/bin/env bash
# Session 26 call 8: the release wheel of main (v31: the tile hand-over through the Q
# buffers' barriers): self-check, the final table (5 interleaved rounds twice), the
# forward's tests, memcheck on the Hopper forward's sanitizer cases, racecheck on
# sm90_d128_p's (sm90_d64_w3_p's ran clean on the dev build in call 7).
set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
D=$OUT/c8; mkdir -p "$D"
export PYTHONPATH=$site
timeout 60 python3 -m flashcore > "$D/main.txt" 2>&1; echo "main rc=$? ($((SECONDS-t0)) s)"; tail -1 "$D/main.txt"
for r in a b; do
  for d in 128 64; do
    if [ $d = 128 ]; then C=sm90_d128_p,sm90_d128; else C=sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p; fi
    timeout 90 python3 benchmarks/ab_configs.py --configs $C --dtype fp16,bf16 --rounds 5 \
      --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json "$D/ab${d}_$r.json" > "$D/ab${d}_$r.txt" 2>&1
    echo "ab$d $r rc=$? ($((SECONDS-t0)) s)"
  done
done
tar czf "$OUT/c8a.tgz" -C "$OUT" c8
timeout 150 python3 -m pytest -q -rs tests/test_fwd.py tests/test_masks.py > "$D/pytest_fwd.txt" 2>&1
echo "pytest fwd rc=$? ($((SECONDS-t0)) s)"; grep -E "^(FAILED|ERROR)|passed|failed" "$D/pytest_fwd.txt" | tail -3
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > "$D/memcheck.txt" 2>&1
echo "memcheck rc=$? ($((SECONDS-t0)) s)"; tail -2 "$D/memcheck.txt"
timeout 150 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d128_p > "$D/racecheck.txt" 2>&1
echo "racecheck rc=$? ($((SECONDS-t0)) s)"; tail -1 "$D/racecheck.txt"; grep -c " ok$" "$D/racecheck.txt"
tar czf "$OUT/c8.tgz" -C "$OUT" c8
