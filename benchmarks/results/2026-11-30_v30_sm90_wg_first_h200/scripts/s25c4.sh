#!/usr/bin/env bash
# Session 25 call 4: the release wheel of main (v30) again: the table with more rounds
# (call 3's 2 rounds ran on a slower machine state: cuDNN -3..-6%, ours -5..-10% against
# calls 1-2), twice, D128 and D64 alternating; then racecheck on the masked persistent
# configs with the time call 3 cut short.
set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
D=$OUT/c4; mkdir -p "$D"
export PYTHONPATH=$site
for r in a b; do
  for d in 128 64; do
    if [ $d = 128 ]; then C=sm90_d128_p,sm90_d128; else C=sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p; fi
    timeout 120 python3 benchmarks/ab_configs.py --configs $C --dtype fp16,bf16 --rounds 5 \
      --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json "$D/ab${d}_$r.json" > "$D/ab${d}_$r.txt" 2>&1
    echo "ab$d $r rc=$? ($((SECONDS-t0)) s)"
  done
done
tar czf "$OUT/c4a.tgz" -C "$OUT" c4
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
for c in sm90_d128_p sm90_d64_w3_p; do
  timeout 150 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd $c > "$D/racecheck_$c.txt" 2>&1
  echo "racecheck $c rc=$? ($((SECONDS-t0)) s)"; tail -2 "$D/racecheck_$c.txt"
done
tar czf "$OUT/c4.tgz" -C "$OUT" c4
