#!/usr/bin/env bash
# Session 23 call 1: GPU check part A of main's release wheel, the persistent-twin
# test, a wave-quantization probe at head dim 64, and ncu (issue 11).
set -u
R=benchmarks/results/2026-11-30_v27_sm90_merged_boundary_h200/scripts/next_gpu_check.sh
t0=$SECONDS
bash $R A; echo "A rc=$? ($((SECONDS-t0)) s)"
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
export PYTHONPATH=$site
mkdir -p "$OUT/c1"
timeout 150 python3 -m pytest -q tests/test_fwd.py -k persistent_twin > "$OUT/c1/twin.txt" 2>&1
echo "twin rc=$? ($((SECONDS-t0)) s)"; tail -3 "$OUT/c1/twin.txt"
timeout 150 python3 benchmarks/ab_configs.py --configs sm90_d64_w3,sm90_d64_w3_p,sm90_d64_p \
  --dtype fp16 --rounds 2 --shapes "4,15,2048;4,16,2048;8,16,4096" > "$OUT/c1/quant.txt" 2>&1
echo "quant rc=$? ($((SECONDS-t0)) s)"; cat "$OUT/c1/quant.txt" | tail -8
nc() {  # nc NAME SHAPE [args]
  local name=$1 shape=$2; shift 2
  timeout 150 ncu --clock-control none -k "regex:fwd_kernel|sdpa.*fprop" \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats \
    --section LaunchStats --section Occupancy --section InstructionStats \
    python3 benchmarks/ncu_cases.py --shapes "$shape" --cudnn "$@" > "$OUT/c1/ncu_$name.txt" 2>&1
  echo "ncu $name rc=$? ($((SECONDS-t0)) s)"
}
nc d128_4k_nc "8,16,4096,128"
nc d64_2k_nc "4,16,2048,64"
nc d64_4k_c_p "8,16,4096,64" --causal --config sm90_d64_p
nc d64_4k_c_w3 "8,16,4096,64" --causal --config sm90_d64_w3_p
tar czf "$OUT/c1.tgz" -C "$OUT" c1
