# Session 25, call 2: wgf2 (a hidden first key step issues one head-dim step of
# its Q K^T) against wgf (call 1's branch), the D64 masked two- vs
# three-warpgroup switch below 4096 rows, and bf16; synccheck and racecheck.
set -u
t0=$SECONDS
D=$OUT/c2; mkdir -p $D
for b in wgf wgf2; do mkdir -p /tmp/$b && cp -r src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b; done
PYTHONPATH=/tmp/wgf2/src timeout 150 python3 -m pytest -q -x -rs tests/test_fwd.py -k "sm90 or graph" > $D/fwd_wgf2.txt 2>&1
echo "fwd rc=$? ($((SECONDS-t0)) s)"; tail -1 $D/fwd_wgf2.txt
ab() {  # ab BUILD TAG CONFIGS ROUND DTYPE
  PYTHONPATH=/tmp/$1/src timeout 100 python3 benchmarks/ab_configs.py --configs "$3" --dtype $5 \
    --rounds 1 --shapes "4,16,2048;8,16,4096;1,32/8,8192" > "$D/ab_$1_$2_$5_$4.txt" 2>&1
  echo "$1 $2 $5 round $4 rc=$? ($((SECONDS-t0)) s)"
}
for r in 1 2; do
  for b in wgf wgf2; do ab $b 64 sm90_d64_w3_p,sm90_d64_p,sm90_d64_w3 $r fp16; ab $b 128 sm90_d128_p,sm90_d128 $r fp16; done
done
for b in wgf2 wgf; do ab $b 64 sm90_d64_w3_p,sm90_d64_p,sm90_d64_w3 1 bf16; ab $b 128 sm90_d128_p,sm90_d128 1 bf16; done
PYTHONPATH=/tmp/wgf2/src timeout 150 python3 benchmarks/ab_configs.py --configs sm90_d64_w3_p,sm90_d64_p \
  --dtype fp16,bf16 --rounds 3 --shapes "8,16,1024;4,16,1536;4,16,2048;8,16,2048;4,16,3072" > $D/w3switch.txt 2>&1
echo "w3switch rc=$? ($((SECONDS-t0)) s)"; grep "causal=True" $D/w3switch.txt
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
PYTHONPATH=/tmp/wgf2/src timeout 120 compute-sanitizer --tool synccheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > $D/synccheck.txt 2>&1
echo "synccheck rc=$? ($((SECONDS-t0)) s)"; tail -2 $D/synccheck.txt
PYTHONPATH=/tmp/wgf2/src timeout 150 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90_d64_w3_p > $D/racecheck.txt 2>&1
echo "racecheck rc=$? ($((SECONDS-t0)) s)"; tail -2 $D/racecheck.txt
tar czf $OUT/c2.tgz -C $OUT c2
