#!/usr/bin/env bash
# Session 26 call 5: the probe2 build (next_tile cost), then A/B of main (m31) against the
# zero-kernel branch (zero) and the shared-memory slot branch (slot), 2 rounds alternating.
set -u
t0=$SECONDS
for b in probe2 m31 zero slot; do
  mkdir -p /tmp/$b && tar xzf .devrun/$b.tgz -C /tmp/$b && cp -r --update=none src /tmp/$b/
done
S=benchmarks/results/2026-11-30_v31_sm90_h200/scripts/task_probe.py
PYTHONPATH=/tmp/probe2/src timeout 60 python3 $S sm90_d64_w3_p 4,16,2048 > $OUT/c5_probe_w3p_2048.txt 2>&1; echo probe rc=$?
PYTHONPATH=/tmp/probe2/src timeout 60 python3 $S sm90_d128_p 4,16,2048 > $OUT/c5_probe_d128p_2048.txt 2>&1; echo probe rc=$?
grep "next_tile" $OUT/c5_probe_*.txt
SH="4,16,2048;8,16,4096;1,32/8,8192"
for r in 1 2; do
  for b in m31 zero slot; do
    PYTHONPATH=/tmp/$b/src timeout 100 python3 benchmarks/ab_configs.py --configs sm90_d64_w3_p,sm90_d64_p --dtype fp16 --rounds 2 --shapes "$SH" > $OUT/c5_ab_${b}_64_$r.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 100 python3 benchmarks/ab_configs.py --configs sm90_d128_p --dtype fp16 --rounds 2 --shapes "$SH" > $OUT/c5_ab_${b}_128_$r.txt 2>&1
    echo "$b $r ($((SECONDS-t0)) s)"
  done
done
tar czf $OUT/c5.tgz -C $OUT $(cd $OUT && ls c5_*.txt)
