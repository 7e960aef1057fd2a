#!/usr/bin/env bash
# Session 21 call 7: three consumer warpgroups at D128 with 64-key tiles (branch sm90-fwd-d128-w3).
set -u
R=$PWD; L=$OUT/c7; mkdir -p $L
t0=$SECONDS
tar xzf .devrun/w3d128.tgz
( PYTHONPATH=$R/src timeout 150 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$!"
for tool in memcheck synccheck; do
  ( PYTHONPATH=$R/src PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 150 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d128_w3 > $L/${tool}.txt 2>&1; echo "$tool rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done
wait $p
for rnd in 1 2; do
  PYTHONPATH=$R/src timeout 80 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128_w3,sm90_d128_w3_p,sm90_d128_w3_s3 --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" > $L/ab128_$rnd.txt 2>&1
  echo "ab $rnd $((SECONDS-t0))s" >> $L/rc.txt
done
tar czf $OUT/logs_c7.tgz -C $OUT c7
cat $L/rc.txt; for f in $L/fwd.txt $L/*check.txt; do echo "== $f"; grep -v "^\s*$" $f | tail -3 | cut -c1-300; done
grep -i "fail\|error" $L/fwd.txt | head -10
for f in $L/ab128_*.txt; do echo "== $(basename $f)"; grep TFLOP $f | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//'; done
echo "total $((SECONDS-t0))s"
