#!/usr/bin/env bash
# Session 26 call 6: branch sm90-fwd-q-slot (qslot2: the tile hand-over through the Q
# buffers' barriers) against main (m31): Hopper forward tests, synccheck, racecheck on two
# persistent configs, then 2 x 2 alternating A/B rounds.
set -u
t0=$SECONDS
for b in m31 qslot2; do
  mkdir -p /tmp/$b && tar xzf .devrun/$b.tgz -C /tmp/$b && cp -r --update=none src /tmp/$b/
done
export PYTHONPATH=/tmp/qslot2/src
timeout 120 python3 -m pytest -q -x tests/test_fwd.py -k "sm90 or graph" > $OUT/c6_fwd_qslot2.txt 2>&1; echo "pytest rc=$? ($((SECONDS-t0)) s)"; tail -2 $OUT/c6_fwd_qslot2.txt
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
timeout 90 compute-sanitizer --tool synccheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > $OUT/c6_synccheck.txt 2>&1; echo "synccheck rc=$? ($((SECONDS-t0)) s)"; tail -1 $OUT/c6_synccheck.txt
timeout 100 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d64_w3_p > $OUT/c6_racecheck.txt 2>&1; echo "racecheck rc=$? ($((SECONDS-t0)) s)"; tail -2 $OUT/c6_racecheck.txt
unset PYTORCH_NO_CUDA_MEMORY_CACHING
SH="4,16,2048;8,16,4096;1,32/8,8192"
for r in 1 2; do
  for b in m31 qslot2; do
    PYTHONPATH=/tmp/$b/src timeout 100 python3 benchmarks/ab_configs.py --configs sm90_d64_w3_p,sm90_d64_p --dtype fp16 --rounds 2 --shapes "$SH" > $OUT/c6_ab_${b}_64_$r.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 100 python3 benchmarks/ab_configs.py --configs sm90_d128_p --dtype fp16 --rounds 2 --shapes "$SH" > $OUT/c6_ab_${b}_128_$r.txt 2>&1
    echo "$b $r ($((SECONDS-t0)) s)"
  done
done
cd $OUT && tar czf c6.tgz c6_*.txt && rm c6_ab_*.txt
