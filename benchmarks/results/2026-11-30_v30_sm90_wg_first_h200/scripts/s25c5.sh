# Session 25, call 5: branch sm90-fwd-dead-rows (without a mask too, a warpgroup whose
# rows are all past seqlen_q skips its key steps: the last 192-row tile of 2048 rows)
# against main's kernels (wgf2: the dev build of 6bfc835), unmasked and causal.
set -u
t0=$SECONDS
D=$OUT/c5; mkdir -p $D
for b in wgf2 dr; do mkdir -p /tmp/$b && cp -r src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b; done
PYTHONPATH=/tmp/dr/src timeout 150 python3 -m pytest -q -x -rs tests/test_fwd.py -k "sm90 or graph" > $D/fwd_dr.txt 2>&1
echo "fwd rc=$? ($((SECONDS-t0)) s)"; tail -1 $D/fwd_dr.txt
ab() {  # ab BUILD TAG CONFIGS ROUND
  PYTHONPATH=/tmp/$1/src timeout 100 python3 benchmarks/ab_configs.py --configs "$3" --dtype fp16 \
    --rounds 2 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" > "$D/ab_$1_$2_$4.txt" 2>&1
  echo "$1 $2 round $4 rc=$? ($((SECONDS-t0)) s)"
}
for r in 1 2; do
  for b in wgf2 dr; do ab $b 64 sm90_d64_w3_p,sm90_d64_p,sm90_d64_w3 $r; ab $b 128 sm90_d128_p,sm90_d128 $r; done
done
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
PYTHONPATH=/tmp/dr/src timeout 120 compute-sanitizer --tool synccheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > $D/synccheck.txt 2>&1
echo "synccheck rc=$? ($((SECONDS-t0)) s)"; tail -2 $D/synccheck.txt
tar czf $OUT/c5.tgz -C $OUT c5
