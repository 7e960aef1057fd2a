#!/usr/bin/env bash
# Session 22 call 5: persistent kernels with the uniform datapath, unmerged (u2, c2 fix) vs merged (um, call 4 build of df2ce5f), same source.
set -u
L=$OUT/c5; mkdir -p $L; t0=$SECONDS
for b in u2 um; do mkdir -p /tmp/$b && cp -r src /tmp/$b/; tar xzf .devrun/$b.tgz -C /tmp/$b; done
export PYTHONUNBUFFERED=1
PYTHONPATH=/tmp/u2/src timeout 60 python3 -m pytest -q -x tests/test_fwd.py -k sm90 > $L/fwd_u2.txt 2>&1; echo "fwd u2 rc=$? $((SECONDS-t0))s" >> $L/rc.txt
for rnd in 1 2; do
  for b in u2 um; do
    PYTHONPATH=/tmp/$b/src timeout 40 python3 benchmarks/ab_configs.py --configs sm90_d128_p --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 40 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3_p --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c5.tgz -C $OUT c5
cat $L/rc.txt; tail -1 $L/fwd_u2.txt
for b in u2 um; do echo "== $b"; cat $L/ab128_${b}_*.txt $L/ab64_${b}_*.txt | grep TFLOP | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//; s/,128 / /; s/,64 / /'; done
echo "total $((SECONDS-t0))s"
