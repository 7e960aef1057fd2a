#!/usr/bin/env bash
# Session 22 call 3: v27 merged tile boundary (branch sm90-fwd-merge) vs main: tests, growth cases, sanitizer, A/B.
set -u
L=$OUT/c3; mkdir -p $L; t0=$SECONDS
for b in m22 mg; do mkdir -p /tmp/$b && cp -r src /tmp/$b/; done
tar xzf .devrun/main22.tgz -C /tmp/m22
tar xzf .devrun/merge.tgz -C /tmp/mg
export PYTHONUNBUFFERED=1
PYTHONPATH=/tmp/mg/src timeout 150 python3 -m pytest -q -rs -x tests/test_fwd.py -k sm90 > $L/fwd_mg.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt
PYTHONPATH=/tmp/mg/src timeout 120 python3 benchmarks/results/2026-11-30_v26_sm90_spec_softmax_h200/scripts/spec_check.py > $L/spec_check.txt 2>&1; echo "check rc=$? $((SECONDS-t0))s" >> $L/rc.txt
p=""
for tool in memcheck synccheck; do for cfg in sm90_d128_p sm90_d64_w3_p; do
  ( PYTHONPATH=/tmp/mg/src PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 120 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd $cfg > $L/${tool}_$cfg.txt 2>&1; echo "$tool $cfg rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done; done
wait $p
for rnd in 1 2; do
  for b in m22 mg; do
    PYTHONPATH=/tmp/$b/src timeout 60 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 60 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c3.tgz -C $OUT c3
PYTHONPATH=/tmp/mg/src PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 140 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d64_p > $L/racecheck_sm90_d64_p.txt 2>&1; echo "racecheck sm90_d64_p rc=$? $((SECONDS-t0))s" >> $L/rc.txt
tar czf $OUT/logs_c3.tgz -C $OUT c3
cat $L/rc.txt; for f in $L/fwd_mg.txt $L/*check*.txt; do echo "== $(basename $f)"; grep -v "^\s*$" $f | tail -2 | cut -c1-200; done
grep -c PASS $L/spec_check.txt; grep FAIL $L/spec_check.txt | head
for b in m22 mg; do echo "== $b"; cat $L/ab128_${b}_*.txt $L/ab64_${b}_*.txt | grep TFLOP | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//'; done
echo "total $((SECONDS-t0))s"
