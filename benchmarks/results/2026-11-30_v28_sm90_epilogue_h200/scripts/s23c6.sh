#!/usr/bin/env bash
# Session 23 call 6: the release wheel of main b6470c6 (v28): the final table (every
# target shape, fp16 and bf16, each config forced, cuDNN in the same process), the
# backward's tests, memcheck and synccheck on every sanitizer case, the end of the
# suite that call 5's 560 s did not reach, and ncu at (8,16,4096,128).
set -u
t0=$SECONDS
wheel=$(ls .devrun/flashcore-*.whl | head -1)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
mkdir -p "$OUT/c6"
for d in 128 64; do
  if [ $d = 128 ]; then C=sm90_d128_p,sm90_d128; else C=sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p; fi
  PYTHONPATH=$site timeout 75 python3 benchmarks/ab_configs.py --configs $C --dtype fp16,bf16 --rounds 2 \
    --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json "$OUT/c6/ab$d.json" > "$OUT/c6/ab$d.txt" 2>&1
  echo "ab$d rc=$? ($((SECONDS-t0)) s)"
done
tar czf "$OUT/c6a.tgz" -C "$OUT" c6
FLASHCORE_GPU_CHECK_STEPS=pytest_bwd,memcheck,synccheck timeout 150 bash ci/gpu_check.sh "$wheel" "$OUT/gc6" > /dev/null 2>&1
echo "gc6 rc=$? ($((SECONDS-t0)) s)"; cat "$OUT/gc6/steps.txt"
tar czf "$OUT/c6b.tgz" -C "$OUT" gc6
PYTHONPATH=$site timeout 110 python3 -m pytest -q -rs tests/test_integrations.py tests/test_masks.py \
  tests/test_reference.py tests/test_sm90.py tests/test_tile_order.py tests/test_train_gpt.py > "$OUT/c6/pytest_end.txt" 2>&1
echo "pytest_end rc=$? ($((SECONDS-t0)) s)"; tail -3 "$OUT/c6/pytest_end.txt"
M=smsp__average_warps_issue_stalled_
PYTHONPATH=$site timeout 60 ncu --clock-control none -k "regex:fwd_kernel|sdpa.*fprop" --section SpeedOfLight \
  --section WarpStateStats \
  --metrics ${M}wait_per_issue_active.ratio,${M}long_scoreboard_per_issue_active.ratio,${M}short_scoreboard_per_issue_active.ratio,${M}barrier_per_issue_active.ratio,${M}math_pipe_throttle_per_issue_active.ratio,${M}dispatch_stall_per_issue_active.ratio,${M}mio_throttle_per_issue_active.ratio,${M}not_selected_per_issue_active.ratio,${M}selected_per_issue_active.ratio,${M}no_instruction_per_issue_active.ratio,${M}membar_per_issue_active.ratio,${M}sleeping_per_issue_active.ratio,${M}branch_resolving_per_issue_active.ratio,${M}lg_throttle_per_issue_active.ratio,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__inst_issued.avg.pct_of_peak_sustained_active \
  python3 benchmarks/ncu_cases.py --shapes "8,16,4096,128" --cudnn > "$OUT/c6/ncu.txt" 2>&1
echo "ncu rc=$? ($((SECONDS-t0)) s)"
tar czf "$OUT/c6c.tgz" -C "$OUT" c6
