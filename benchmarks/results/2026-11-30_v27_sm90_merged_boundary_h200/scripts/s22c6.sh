#!/usr/bin/env bash
# Session 22 call 6: release wheel of main (v27 merged): self-check, forward/API tests, growth cases, sanitizers, A/B table.
set -u
L=$OUT/c6; mkdir -p $L; t0=$SECONDS
W=$(ls .devrun/flashcore-*.whl | head -1)
export PYTHONUNBUFFERED=1
FLASHCORE_GPU_CHECK_STEPS=main timeout 60 bash ci/gpu_check.sh $W $L/gc > $L/gc_main.txt 2>&1; echo "main rc=$? $((SECONDS-t0))s" >> $L/rc.txt
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target $site $W
export PYTHONPATH=$site
timeout 100 python3 -m pytest -q -rs tests/test_fwd.py tests/test_api.py tests/test_sm90.py tests/test_masks.py tests/test_tile_order.py > $L/pytest_fwd_api.txt 2>&1; echo "pytest rc=$? $((SECONDS-t0))s" >> $L/rc.txt
timeout 50 python3 benchmarks/results/2026-11-30_v26_sm90_spec_softmax_h200/scripts/spec_check.py > $L/spec_check.txt 2>&1; echo "spec_check rc=$? $((SECONDS-t0))s" >> $L/rc.txt
p=""
for tool in memcheck synccheck; do
  for cfg in sm90_d128_p sm90_d64_w3_p sm90_d64_p sm90_d128 sm90_d64_w3; do
    ( PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 90 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd $cfg > $L/${tool}_$cfg.txt 2>&1; echo "$tool $cfg rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
  done
done
wait $p
tar czf $OUT/logs_c6.tgz -C $OUT c6
timeout 50 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json $L/ab128.json > $L/ab128.txt 2>&1; echo "ab128 rc=$? $((SECONDS-t0))s" >> $L/rc.txt
timeout 50 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab64.json > $L/ab64.txt 2>&1; echo "ab64 rc=$? $((SECONDS-t0))s" >> $L/rc.txt
tar czf $OUT/logs_c6.tgz -C $OUT c6
cat $L/rc.txt; tail -4 $L/gc_main.txt; tail -2 $L/pytest_fwd_api.txt; grep -E "^FAILED" $L/pytest_fwd_api.txt | head; tail -1 $L/spec_check.txt; grep -h "ERROR SUMMARY" $L/*check_*.txt | sort | uniq -c
grep TFLOP $L/ab128.txt $L/ab64.txt | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//; s#.*/##'
echo "total $((SECONDS-t0))s"
