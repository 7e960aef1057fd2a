#!/usr/bin/env bash
# Prepared for session 22 (not run): the full GPU check of main's release wheel that
# session 21's device time did not cover, split over device calls by
# FLASHCORE_GPU_CHECK_STEPS (README "GPU checks": pytest's backward half ~1 min, the rest
# most of ten; racecheck ~9). Carry the wheel as .devrun/flashcore-*.whl and run one
# part per call:
#   bash benchmarks/results/2026-11-30_v26_sm90_spec_softmax_h200/scripts/next_gpu_check.sh A
# A: main, pytest_bwd, memcheck, synccheck   B: pytest_rest   C: racecheck_fwd   D: racecheck_bwd, benchmark
set -u
part=${1:?part A, B, C or D}
case $part in
  A) steps=main,pytest_bwd,memcheck,synccheck ;;
  B) steps=pytest_rest ;;
  C) steps=racecheck_fwd ;;
  D) steps=racecheck_bwd,benchmark ;;
  *) echo "part A, B, C or D"; exit 2 ;;
esac
wheel=$(ls .devrun/flashcore-*.whl | head -1)
FLASHCORE_GPU_CHECK_STEPS=$steps timeout 580 bash ci/gpu_check.sh "$wheel" "$OUT/gc_$part"
rc=$?
tar czf "$OUT/gc_$part.tgz" -C "$OUT" "gc_$part"
exit $rc
