#!/usr/bin/env bash
# Session 26 call 10: the README's per-head-dim table with both families and SDPA's backends
# (benchmarks/bench_fwd.py, one pass) from the release wheel of main (v31), the seed shapes
# (1,8,{256,512,1024}) included, then the GQA rows.
set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
export PYTHONPATH=$site
C=$(git rev-parse --short HEAD 2>/dev/null || echo 1098e1c)
timeout 260 python3 benchmarks/bench_fwd.py --dtype fp16,bf16 --head-dim 64,128 --commit 1098e1c \
  --json $OUT/c10_sweep.json > $OUT/c10_sweep.txt 2>&1; echo "sweep rc=$? ($((SECONDS-t0)) s)"
timeout 110 python3 benchmarks/bench_fwd.py --dtype fp16,bf16 --head-dim 64,128 --gqa 32/8 --commit 1098e1c \
  --json $OUT/c10_gqa.json > $OUT/c10_gqa.txt 2>&1; echo "gqa rc=$? ($((SECONDS-t0)) s)"
