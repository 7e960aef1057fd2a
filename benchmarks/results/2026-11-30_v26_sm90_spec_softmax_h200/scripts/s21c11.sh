#!/usr/bin/env bash
# Session 21 call 11: v26 speculative softmax (branch sm90-fwd-spec) vs main: tests, growth cases, sanitizer, A/B.
set -u
L=$OUT/c11; mkdir -p $L; t0=$SECONDS
tar xzf .devrun/mainb.tgz -C /tmp
mkdir -p /tmp/spec && cp -r /tmp/mainb/src /tmp/spec/ && tar xzf .devrun/spec.tgz -C /tmp/spec
PYTHONPATH=/tmp/spec/src timeout 120 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_spec.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt
PYTHONPATH=/tmp/spec/src timeout 120 python3 .devrun/spec_check.py > $L/spec_check.txt 2>&1; echo "check rc=$? $((SECONDS-t0))s" >> $L/rc.txt
for tool in memcheck synccheck; do
  ( PYTHONPATH=/tmp/spec/src PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 100 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d128_p > $L/${tool}.txt 2>&1; echo "$tool rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="${p:-} $!"
done
wait $p
for rnd in 1 2; do
  for b in mainb spec; do
    PYTHONPATH=/tmp/$b/src timeout 45 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 45 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3 --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_c11.tgz -C $OUT c11
cat $L/rc.txt; for f in $L/fwd_spec.txt $L/*check.txt; do echo "== $(basename $f)"; grep -v "^\s*$" $f | tail -2 | cut -c1-200; done
grep -c PASS $L/spec_check.txt; grep FAIL $L/spec_check.txt | head; tail -1 $L/spec_check.txt
for b in mainb spec; do echo "== $b"; cat $L/ab128_${b}_*.txt $L/ab64_${b}_*.txt | grep TFLOP | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//'; done
echo "total $((SECONDS-t0))s"
