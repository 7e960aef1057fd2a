#!/usr/bin/env bash
# session 20 call 3: softmax under P V with a third K/V stage; _nov = v19 behaviour
set -u
R=$PWD; L=$OUT/c3; mkdir -p $L
pack() { tar czf $OUT/logs_c3.tgz -C $OUT c3; }
t0=$SECONDS
tar xzf .devrun/newso3.tgz -C $R
export PYTHONPATH=$R/src
( timeout 100 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_sm90.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$!"
for tool in memcheck synccheck; do
  ( PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 100 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd _s3 > $L/$tool.txt 2>&1; echo "$tool rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done
wait $p; pack
( timeout 80 python3 benchmarks/ab_configs.py --configs sm90_d128_p_nov,sm90_d128_p,sm90_d128_s3_p,sm90_d128_s3,sm90_d128_p_q2 --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json $L/ab128.json > $L/ab128.txt 2>&1; echo "ab128 rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
pack
( timeout 80 python3 benchmarks/ab_configs.py --configs sm90_d64_p_nov,sm90_d64_p,sm90_d64_s3_p,sm90_d64_w3_nov,sm90_d64_w3,sm90_d64_w3_s3,sm90_d64_w3_s3_p --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab64.json > $L/ab64.txt 2>&1; echo "ab64 rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
pack
cat $L/rc.txt
for f in fwd_sm90 memcheck synccheck; do echo "== $f"; grep -v "^\s*$" $L/$f.txt | tail -2 | cut -c1-250; done
echo "== ab128"; grep TFLOP $L/ab128.txt | sed 's/TFLOP.s://; s/sm90_//g'; echo "== ab64"; grep TFLOP $L/ab64.txt | sed 's/TFLOP.s://; s/sm90_//g'
echo "total $((SECONDS-t0))s"
