#!/usr/bin/env bash
# Prepared for session 23 (not run): the parts of the GPU check of main's release wheel
# that session 22's device time did not cover after v27, and the ncu issue 11 asks for.
# Carry the wheel as .devrun/flashcore-*.whl and run one part per call:
#   bash benchmarks/results/2026-11-30_v27_sm90_merged_boundary_h200/scripts/next_gpu_check.sh A
# A: main, pytest_bwd, memcheck, synccheck (~100 s)   B: pytest_rest (~520 s)
# C: racecheck_fwd (~300 s?)   D: racecheck_bwd (~200 s?)
# E: ncu at (8,16,4096,128) fp16 non-causal and (4,16,2048,64) fp16 non-causal, the
#    heuristic's pick beside SDPA's cuDNN forward on the same inputs (~60 s)
set -u
part=${1:?part A, B, C, D or E}
wheel=$(ls .devrun/flashcore-*.whl | head -1)
case $part in
  A) steps=main,pytest_bwd,memcheck,synccheck ;;
  B) steps=pytest_rest ;;
  C) steps=racecheck_fwd ;;
  D) steps=racecheck_bwd ;;
  E)
    mkdir -p "$OUT/gc_E"
    site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
    for shape in "8,16,4096,128" "4,16,2048,64"; do
      PYTHONPATH=$site timeout 280 ncu --clock-control none -k "regex:fwd_kernel|sdpa.*fprop" \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats \
        --section LaunchStats --section Occupancy --section InstructionStats \
        python3 benchmarks/ncu_cases.py --shapes "$shape" --cudnn > "$OUT/gc_E/ncu_${shape//,/_}.txt" 2>&1
      echo "ncu $shape rc=$?"
    done
    tar czf "$OUT/gc_E.tgz" -C "$OUT" gc_E
    exit 0 ;;
  *) echo "part A, B, C, D or E"; exit 2 ;;
esac
FLASHCORE_GPU_CHECK_STEPS=$steps timeout 580 bash ci/gpu_check.sh "$wheel" "$OUT/gc_$part"
rc=$?
tar czf "$OUT/gc_$part.tgz" -C "$OUT" "gc_$part"
exit $rc
