# Session 25, call 1: branch sm90-fwd-wg-first (the first key step per warpgroup
# under a mask) against main's kernels (qe: the dev build of a3bee45), plus the
# head-dim-128 switch at 4096 rows that NOTES v29 left open (unmasked kernels:
# the same SASS in both builds).
set -u
t0=$SECONDS
D=$OUT/c1; mkdir -p $D
for b in qe wgf; do mkdir -p /tmp/$b && cp -r src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b; done
PYTHONPATH=/tmp/wgf/src timeout 150 python3 -m pytest -q -x -rs tests/test_fwd.py -k "sm90 or graph" > $D/fwd_wgf.txt 2>&1
echo "fwd rc=$? ($((SECONDS-t0)) s)"; tail -2 $D/fwd_wgf.txt
ab() {  # ab BUILD TAG CONFIGS ROUND
  PYTHONPATH=/tmp/$1/src timeout 100 python3 benchmarks/ab_configs.py --configs "$3" --dtype fp16 \
    --rounds 1 --shapes "4,16,2048;8,16,4096;1,32/8,8192" > "$D/ab_$1_$2_$4.txt" 2>&1
  echo "$1 $2 round $4 rc=$? ($((SECONDS-t0)) s)"
}
for r in 1 2; do
  for b in qe wgf; do ab $b 64 sm90_d64_w3_p,sm90_d64_p,sm90_d64_w3 $r; ab $b 128 sm90_d128_p,sm90_d128 $r; done
done
grep -h "causal=True" $D/ab_*_64_*.txt | sort | head -40
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
PYTHONPATH=/tmp/wgf/src timeout 120 compute-sanitizer --tool synccheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > $D/synccheck.txt 2>&1
echo "synccheck rc=$? ($((SECONDS-t0)) s)"; tail -2 $D/synccheck.txt
unset PYTORCH_NO_CUDA_MEMORY_CACHING
PYTHONPATH=/tmp/qe/src timeout 150 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 \
  --dtype fp16,bf16 --rounds 3 --shapes "8,16,3072;8,16,4096;2,16,8192;2,16,16384" > $D/h128.txt 2>&1
echo "h128 rc=$? ($((SECONDS-t0)) s)"; grep "causal=False" $D/h128.txt
tar czf $OUT/c1.tgz -C $OUT c1
