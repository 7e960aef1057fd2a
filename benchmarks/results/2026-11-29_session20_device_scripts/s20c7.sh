#!/usr/bin/env bash
# session 20 call 7: v22, scores scaled before the max (dev build) against main's kernels (9a32faf dev build)
set -u
R=$PWD; L=$OUT/c7; mkdir -p $L
t0=$SECONDS
tar xzf .devrun/prescale.tgz -C $R; tar xzf .devrun/oldb.tgz -C /tmp
PYTHONPATH=$R/src timeout 50 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_sm90.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt
for rnd in 1 2; do
  for b in old new; do
    if [ $b = old ]; then P=/tmp/oldb/src; else P=$R/src; fi
    PYTHONPATH=$P timeout 40 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab128_${b}_$rnd.json > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=$P timeout 40 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3 --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab64_${b}_$rnd.json > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c7.tgz -C $OUT c7
cat $L/rc.txt; grep -v "^\s*$" $L/fwd_sm90.txt | tail -1
for f in $L/ab128_*_*.txt $L/ab64_*_*.txt; do echo "== $(basename $f)"; grep TFLOP $f | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//'; done
echo "total $((SECONDS-t0))s"
