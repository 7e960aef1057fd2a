#!/usr/bin/env bash
# Session 22 call 4: uniform-datapath builds: u (persistent unmerged) and um (persistent merged) vs main (m22).
set -u
L=$OUT/c4; mkdir -p $L; t0=$SECONDS
for b in m22 u um; do mkdir -p /tmp/$b && cp -r src /tmp/$b/; done
tar xzf .devrun/main22.tgz -C /tmp/m22; tar xzf .devrun/u.tgz -C /tmp/u; tar xzf .devrun/um.tgz -C /tmp/um
export PYTHONUNBUFFERED=1
for b in u um; do
PYTHONPATH=/tmp/$b/src timeout 100 python3 -m pytest -q -x tests/test_fwd.py -k sm90 > $L/fwd_$b.txt 2>&1; echo "fwd $b rc=$? $((SECONDS-t0))s" >> $L/rc.txt
done
for rnd in 1 2; do
  for b in m22 u um; do
    PYTHONPATH=/tmp/$b/src timeout 60 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 60 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c4.tgz -C $OUT c4
cat $L/rc.txt; for b in u um; do tail -1 $L/fwd_$b.txt; done
for b in m22 u um; do echo "== $b"; cat $L/ab128_${b}_*.txt $L/ab64_${b}_*.txt | grep TFLOP | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//; s/,128 / /; s/,64 / /'; done
echo "total $((SECONDS-t0))s"
