#!/usr/bin/env bash
# Session 26 call 3: graph time against seqlen_k at fixed query tilings (per-tile fixed cost).
set -u
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
export PYTHONPATH=$site
S=benchmarks/results/2026-11-30_v31_sm90_h200/scripts/sk_sweep.py
timeout 150 python3 $S sm90_d64_w3,sm90_d64_w3_p 6,16,2112 1024,2048,3072,4096,8192 > $OUT/c3_sk_2112.txt 2>&1; echo rc=$?
timeout 150 python3 $S sm90_d64_w3,sm90_d64_w3_p,sm90_d64_p 4,16,2048 1024,2048,3072,4096,8192 > $OUT/c3_sk_2048.txt 2>&1; echo rc=$?
timeout 150 python3 $S sm90_d128,sm90_d128_p 4,16,2048 1024,2048,3072,4096,8192 128 > $OUT/c3_sk_2048_d128.txt 2>&1; echo rc=$?
cat $OUT/c3_*.txt
