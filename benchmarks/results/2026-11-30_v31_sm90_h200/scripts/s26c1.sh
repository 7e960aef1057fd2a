#!/usr/bin/env bash
# Session 26 call 1: the timeline of a call (kernels, memsets, gaps) in a graph, ours vs cuDNN.
set -u
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
export PYTHONPATH=$site
timeout 200 python3 benchmarks/results/2026-11-30_v31_sm90_h200/scripts/timeline.py > $OUT/c1_timeline.txt 2>&1
echo rc=$?
