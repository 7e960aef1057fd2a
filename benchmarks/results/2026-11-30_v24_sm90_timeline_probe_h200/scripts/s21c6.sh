#!/usr/bin/env bash
# Session 21 call 6: timing-only fake SS P V (A from Q's smem) under-variant vs main; probe.
set -u
R=$PWD; L=$OUT/c6; mkdir -p $L
t0=$SECONDS
tar xzf .devrun/mainb.tgz -C /tmp
for b in ssfake ssfakeprobe; do
  mkdir -p /tmp/$b && cp -r /tmp/mainb/src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b
done
PYTHONPATH=/tmp/ssfakeprobe/src timeout 60 python3 .devrun/probe2.py > $L/probe_ssfake.txt 2>&1
for rnd in 1 2; do
  for b in mainb ssfake; do
    PYTHONPATH=/tmp/$b/src timeout 45 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" > $L/ab128_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c6.tgz -C $OUT c6
cat $L/rc.txt
sed -n '/d128_p/,/wg0 it5 top/p' $L/probe_ssfake.txt | tail -40
for f in $L/ab128_*_1.txt $L/ab128_*_2.txt; do echo "== $(basename $f)"; grep TFLOP $f | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//'; done
echo "total $((SECONDS-t0))s"
