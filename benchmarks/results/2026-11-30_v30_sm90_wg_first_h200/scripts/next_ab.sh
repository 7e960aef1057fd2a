# Prepared in session 25 (not run): branch sm90-fwd-half-qk (a kHalf first step's Q K^T
# as one full-width head-dim step, then N=64 steps over the seen half) against main.
# Dev builds: .devrun/m30.tgz (main 6df6319's kernels) and .devrun/hq.tgz, each made with
# FLASHCORE_CUDA_ARCHS=90a FLASHCORE_PTX_ARCH= setup.py build_ext --inplace.
# SASS (fp16, here): no new spills but sm90_d128_p masked 6 -> 15; masked key loops
# +14..+19 instructions (w3 827 -> 841, d128_p 993 -> 1012), unmasked d128_p/d64_p
# totals +8..+16 (their loops unchanged). Expect causal +0-1% at best; -1..-3% if the
# loop growth costs what v29's warp-mask branch did.
set -u
t0=$SECONDS
D=$OUT/hq; mkdir -p $D
for b in m30 hq; do mkdir -p /tmp/$b && cp -r src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b; done
PYTHONPATH=/tmp/hq/src timeout 150 python3 -m pytest -q -x tests/test_fwd.py -k "sm90 or graph" > $D/fwd_hq.txt 2>&1
echo "fwd rc=$? ($((SECONDS-t0)) s)"; tail -1 $D/fwd_hq.txt
for r in 1 2; do
  for b in m30 hq; do
    PYTHONPATH=/tmp/$b/src timeout 100 python3 benchmarks/ab_configs.py --configs sm90_d64_w3_p,sm90_d128_p \
      --dtype fp16 --rounds 2 --shapes "4,16,2048;8,16,4096;1,32/8,8192" > $D/ab_${b}_$r.txt 2>&1
    echo "$b round $r rc=$? ($((SECONDS-t0)) s)"
  done
done
grep -h TFLOP $D/ab_*.txt
