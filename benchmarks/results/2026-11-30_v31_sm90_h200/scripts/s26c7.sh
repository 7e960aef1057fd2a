#!/usr/bin/env bash
# Session 26 call 7: branch sm90-fwd-q-slot (qslot3: lane 0 reads q_task; no per-block slots in
# the scheduler buffer) against main (m31): Hopper forward tests, synccheck, racecheck on
# sm90_d64_w3_p, then 2 x 2 alternating A/B rounds at head dim 64, fp16 and bf16.
set -u
t0=$SECONDS
for b in m31 qslot3; do
  mkdir -p /tmp/$b && tar xzf .devrun/$b.tgz -C /tmp/$b && cp -r --update=none src /tmp/$b/
done
export PYTHONPATH=/tmp/qslot3/src
timeout 120 python3 -m pytest -q tests/test_fwd.py -k "sm90 or graph" > $OUT/c7_fwd_qslot3.txt 2>&1; echo "pytest rc=$? ($((SECONDS-t0)) s)"; tail -1 $OUT/c7_fwd_qslot3.txt
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
timeout 90 compute-sanitizer --tool synccheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > $OUT/c7_synccheck.txt 2>&1; echo "synccheck rc=$? ($((SECONDS-t0)) s)"; tail -1 $OUT/c7_synccheck.txt
timeout 170 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d64_w3_p > $OUT/c7_racecheck.txt 2>&1; echo "racecheck rc=$? ($((SECONDS-t0)) s)"; grep -c " ok$" $OUT/c7_racecheck.txt; grep -c "hazard" $OUT/c7_racecheck.txt; tail -1 $OUT/c7_racecheck.txt
unset PYTORCH_NO_CUDA_MEMORY_CACHING
SH="4,16,2048;8,16,4096"
for r in 1 2; do
  for b in m31 qslot3; do
    PYTHONPATH=/tmp/$b/src timeout 100 python3 benchmarks/ab_configs.py --configs sm90_d64_w3_p,sm90_d64_p --dtype fp16,bf16 --rounds 2 --shapes "$SH" > $OUT/c7_ab_${b}_64_$r.txt 2>&1
    echo "$b $r ($((SECONDS-t0)) s)"
  done
done
cd $OUT && tar czf c7.tgz c7_*.txt && rm c7_ab_*.txt
