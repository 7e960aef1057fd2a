#!/usr/bin/env bash
# Prepared in session 24 (not run): the head-dim-128 heuristic question NOTES v29 left
# open. The heuristic takes sm90_d128 (one block per tile) without a mask from 4096
# rows; calls 8-9 had the persistent sm90_d128_p 2.5-9% faster at (8,16,4096) after
# v29 (v28's call 6: 2-3% slower). Four interleaved rounds, both dtypes, the rows
# around the switch, with a release wheel of main carried as .devrun/flashcore-*.whl.
set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
mkdir -p "$OUT/h128"
PYTHONPATH=$site timeout 300 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 \
  --dtype fp16,bf16 --rounds 4 --shapes "8,16,3072;8,16,4096;4,16,6144;2,16,8192;1,32/8,8192;2,16,16384" \
  --json "$OUT/h128/ab.json" > "$OUT/h128/ab.txt" 2>&1
echo "ab rc=$? ($((SECONDS-t0)) s)"; grep "causal=False" "$OUT/h128/ab.txt"
