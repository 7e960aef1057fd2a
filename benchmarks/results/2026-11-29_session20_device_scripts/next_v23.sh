#!/usr/bin/env bash
# Prepared for the next session (not run): v23 (branch sm90-fwd-lazy-rescale) and the
# lean loop (branch sm90-fwd-lean) against main's kernels, three dev builds in one call.
# Inputs (carry them): .devrun/mainb.tgz (git archive of main's src + its dev-built
# _C.abi3.so/_build_config.py, as a tree mainb/src), .devrun/lazy.tgz and .devrun/lean.tgz
# (src/flashcore/_C.abi3.so + _build_config.py of a dev build of each branch:
# FLASHCORE_CUDA_ARCHS=90a FLASHCORE_PTX_ARCH= python setup.py build_ext --inplace).
set -u
R=$PWD; L=$OUT/n23; mkdir -p $L
t0=$SECONDS
tar xzf .devrun/mainb.tgz -C /tmp
for b in lazy lean; do
  mkdir -p /tmp/$b && cp -r /tmp/mainb/src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b
done
# The branches change only sm90/fwd_kernel.cuh, softmax.cuh and wgmma.cuh: main's Python
# and tests serve all three builds.
for b in lazy lean; do
  ( PYTHONPATH=/tmp/$b/src timeout 90 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_$b.txt 2>&1; echo "fwd_$b rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="${p:-} $!"
done
for tool in memcheck synccheck; do
  ( PYTHONPATH=/tmp/lean/src PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 120 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d128_p > $L/${tool}_lean.txt 2>&1; echo "$tool rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done
wait $p
for rnd in 1 2; do
  for b in mainb lazy lean; do
    PYTHONPATH=/tmp/$b/src timeout 40 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab128_${b}_$rnd.json > $L/ab128_${b}_$rnd.txt 2>&1
    PYTHONPATH=/tmp/$b/src timeout 40 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3 --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab64_${b}_$rnd.json > $L/ab64_${b}_$rnd.txt 2>&1
    echo "$b $rnd $((SECONDS-t0))s" >> $L/rc.txt
  done
done
tar czf $OUT/logs_n23.tgz -C $OUT n23
cat $L/rc.txt; for f in $L/fwd_*.txt $L/*check_lean.txt; do echo "== $f"; grep -v "^\s*$" $f | tail -2 | cut -c1-200; done
for f in $L/ab128_*_1.txt $L/ab128_*_2.txt $L/ab64_*_1.txt $L/ab64_*_2.txt; do echo "== $(basename $f)"; grep TFLOP $f | sed 's/TFLOP.s://; s/sm90_//g; s/causal=//'; done
echo "total $((SECONDS-t0))s"
