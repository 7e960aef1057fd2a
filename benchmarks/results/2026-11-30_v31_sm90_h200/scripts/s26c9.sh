#!/usr/bin/env bash
# Session 26 call 9: ncu of the release wheel's picks (v31) against cuDNN at (8,16,4096,128)
# and (4,16,2048,64), non-causal, fp16.
set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
export PYTHONPATH=$site
SEC="--section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section LaunchStats --section Occupancy --section InstructionStats"
for S in "8,16,4096,128" "4,16,2048,64"; do
  n=$(echo $S | tr ',' '_')
  timeout 150 ncu --clock-control none -k "regex:fwd_kernel|sdpa.*fprop" $SEC python3 benchmarks/ncu_cases.py --shapes "$S" --cudnn > $OUT/c9_ncu_$n.txt 2>&1
  echo "ncu $S rc=$? ($((SECONDS-t0)) s)"
done
grep -E "fwd_kernel|fprop|Duration|Elapsed Cycles|Issue Slots Busy|Executed Ipc E|Registers Per|Executed Instructions  " $OUT/c9_ncu_*.txt | cut -c1-160 | head -40
