#!/usr/bin/env bash
# Session 26 call 11: the release wheel of main (v31) again at the narrowest cells,
# (4,16,2048) at head dims 128 and 64, 9 interleaved rounds, graphs of 3 calls (the
# table's) and of 20 (bench_fwd's).
set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
export PYTHONPATH=$site
for calls in 3 20; do
  timeout 60 python3 benchmarks/ab_configs.py --configs sm90_d128_p --dtype fp16,bf16 --rounds 9 --calls $calls --shapes "4,16,2048" > $OUT/c11_ab128_calls$calls.txt 2>&1
  timeout 60 python3 benchmarks/ab_configs.py --configs sm90_d64_w3_p --dtype fp16,bf16 --rounds 9 --calls $calls --shapes "4,16,2048" > $OUT/c11_ab64_calls$calls.txt 2>&1
  echo "calls $calls ($((SECONDS-t0)) s)"
done
cat $OUT/c11_*.txt
