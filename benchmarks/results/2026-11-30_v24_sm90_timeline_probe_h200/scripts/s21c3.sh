#!/usr/bin/env bash
# Session 21 call 3: v24 (branch sm90-fwd-premax: row maxima reduced while the P V runs)
# against main's kernels; tests + sanitizer subset on premax; the timeline probe on premax.
set -u
R=$PWD; L=$OUT/c3; mkdir -p $L
t0=$SECONDS
tar xzf .devrun/mainb.tgz -C /tmp
for b in premax premaxprobe; do
  mkdir -p /tmp/$b && cp -r /tmp/mainb/src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b
done
( PYTHONPATH=/tmp/premax/src timeout 120 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_premax.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$!"
for tool in memcheck synccheck; do
  ( PYTHONPATH=/tmp/premax/src PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 150 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d128_p > $L/${tool}.txt 2>&1; echo "$tool rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done
wait $p
PYTHONPATH=/tmp/premaxprobe/src timeout 60 python3 .devrun/probe.py > $L/probe_premax.txt 2>&1
for rnd in 1 2; do
  for b in mainb premax; do
    PYTHONPATH=/tmp/$b/src timeout 45 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab128_${b}_$rnd.json > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 45 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3 --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab64_${b}_$rnd.json > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c3.tgz -C $OUT c3
cat $L/rc.txt; for f in $L/fwd_*.txt $L/*check.txt; do echo "== $f"; grep -v "^\s*$" $f | tail -2 | cut -c1-200; done
grep -A3 "d128_p (4,16,2048,128) causal=False" $L/probe_premax.txt; grep "it 5\|it 6" $L/probe_premax.txt | head -12
for f in $L/ab128_*_1.txt $L/ab128_*_2.txt $L/ab64_*_1.txt $L/ab64_*_2.txt; do echo "== $(basename $f)"; grep TFLOP $f | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//'; done
echo "total $((SECONDS-t0))s"
