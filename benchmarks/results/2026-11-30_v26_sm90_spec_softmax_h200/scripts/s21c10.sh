#!/usr/bin/env bash
# Session 21 call 10: softmax-component sensitivity by timing fakes (wrong results): 1 nosum 2 nomax 3 noscale 4 halfexp.
set -u
L=$OUT/c10; mkdir -p $L; t0=$SECONDS
tar xzf .devrun/mainb.tgz -C /tmp
for b in fake1 fake2 fake3 fake4; do
  mkdir -p /tmp/$b && cp -r /tmp/mainb/src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b
done
for rnd in 1 2; do
  for b in mainb fake1 fake2 fake3 fake4; do
    PYTHONPATH=/tmp/$b/src timeout 40 python3 benchmarks/ab_configs.py --configs sm90_d128_p --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096" > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 40 python3 benchmarks/ab_configs.py --configs sm90_d64_p --dtype fp16 --rounds 2 --shapes "8,16,4096" > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c10.tgz -C $OUT c10
for b in mainb fake1 fake2 fake3 fake4; do echo "== $b"; cat $L/ab128_${b}_*.txt $L/ab64_${b}_*.txt | grep TFLOP | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//' | grep False; done
echo "total $((SECONDS-t0))s"
