#!/usr/bin/env bash
# Session 21 call 8: v25, P through shared memory (SS P V): under (smemp) and serial (smemps) vs main.
set -u
R=$PWD; L=$OUT/c8; mkdir -p $L
t0=$SECONDS
tar xzf .devrun/mainb.tgz -C /tmp
for b in smemp smemps; do
  mkdir -p /tmp/$b && cp -r /tmp/mainb/src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b
done
for b in smemp smemps; do
  PYTHONPATH=/tmp/$b/src timeout 120 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_$b.txt 2>&1; echo "fwd_$b rc=$? $((SECONDS-t0))s" >> $L/rc.txt
done
for tool in memcheck synccheck racecheck; do
  for cfg in sm90_d128_p sm90_d64_w3; do
    ( PYTHONPATH=/tmp/smemp/src PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 200 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd $cfg > $L/${tool}_$cfg.txt 2>&1; echo "$tool $cfg rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="${p:-} $!"
  done
done
wait $p
for rnd in 1 2; do
  for b in mainb smemp smemps; do
    PYTHONPATH=/tmp/$b/src timeout 45 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 45 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3 --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c8.tgz -C $OUT c8
cat $L/rc.txt; for f in $L/fwd_*.txt $L/*check*.txt; do echo "== $(basename $f)"; grep -v "^\s*$" $f | tail -2 | cut -c1-200; done
for f in $L/ab128_*_1.txt $L/ab128_*_2.txt $L/ab64_*_1.txt $L/ab64_*_2.txt; do echo "== $(basename $f)"; grep TFLOP $f | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//'; done
echo "total $((SECONDS-t0))s"
