#!/usr/bin/env bash
# Session 21 call 5: the softmax under the P V (branch sm90-fwd-under) vs main; probe timeline.
set -u
R=$PWD; L=$OUT/c5; mkdir -p $L
t0=$SECONDS
tar xzf .devrun/mainb.tgz -C /tmp
for b in under underprobe premax; do
  mkdir -p /tmp/$b && cp -r /tmp/mainb/src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b
done
( PYTHONPATH=/tmp/under/src timeout 120 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_under.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$!"
wait $p
PYTHONPATH=/tmp/underprobe/src timeout 60 python3 .devrun/probe2.py > $L/probe_under.txt 2>&1
for rnd in 1 2; do
  for b in mainb under; do
    PYTHONPATH=/tmp/$b/src timeout 45 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab128_${b}_$rnd.json > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 45 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3 --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab64_${b}_$rnd.json > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c5.tgz -C $OUT c5
cat $L/rc.txt; for f in $L/fwd_*.txt; do echo "== $f"; grep -v "^\s*$" $f | tail -2 | cut -c1-200; done
sed -n '/d128_p/,/wg0 it5 top/p' $L/probe_under.txt | tail -45
for f in $L/ab128_*_1.txt $L/ab128_*_2.txt $L/ab64_*_1.txt $L/ab64_*_2.txt; do echo "== $(basename $f)"; grep TFLOP $f | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//'; done
echo "total $((SECONDS-t0))s"
