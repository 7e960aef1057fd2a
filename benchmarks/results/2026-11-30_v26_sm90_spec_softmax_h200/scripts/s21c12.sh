#!/usr/bin/env bash
# Session 21 call 12: release wheel of main (v26 merged): forward tests, growth cases, sanitizers, A/B table.
set -u
L=$OUT/c12; mkdir -p $L; t0=$SECONDS
W=.devrun/flashcore-0.1.0-cp310-abi3-manylinux_2_34_x86_64.whl
FLASHCORE_GPU_CHECK_STEPS=main bash ci/gpu_check.sh $W $L/gc > $L/gc_main.txt 2>&1; echo "main rc=$? $((SECONDS-t0))s" >> $L/rc.txt
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target $site $W
export PYTHONPATH=$site
timeout 200 python3 -m pytest -q -rs tests/test_fwd.py > $L/pytest_fwd.txt 2>&1; echo "pytest_fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt
timeout 60 python3 .devrun/spec_check.py > $L/spec_check.txt 2>&1; echo "spec_check rc=$? $((SECONDS-t0))s" >> $L/rc.txt
for tool in memcheck synccheck; do
  for cfg in sm90_d128_p sm90_d64_w3 sm90_d64_p sm90_d128; do
    ( PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 100 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd $cfg > $L/${tool}_$cfg.txt 2>&1; echo "$tool $cfg rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="${p:-} $!"
  done
done
wait $p
timeout 60 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json $L/ab128.json > $L/ab128.txt 2>&1; echo "ab128 rc=$? $((SECONDS-t0))s" >> $L/rc.txt
timeout 50 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab64.json > $L/ab64.txt 2>&1; echo "ab64 rc=$? $((SECONDS-t0))s" >> $L/rc.txt
tar czf $OUT/logs_c12.tgz -C $OUT c12
cat $L/rc.txt; tail -3 $L/gc_main.txt; tail -2 $L/pytest_fwd.txt; grep -E "^FAILED" $L/pytest_fwd.txt | head; tail -1 $L/spec_check.txt; grep -h "ERROR SUMMARY" $L/*check_*.txt | sort | uniq -c
grep TFLOP $L/ab128.txt $L/ab64.txt | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//; s#.*/##'
echo "total $((SECONDS-t0))s"
