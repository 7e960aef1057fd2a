set -u
t0=$SECONDS
mkdir -p $OUT/c8
for b in m qe; do mkdir -p /tmp/$b && cp -r src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b; done
PYTHONPATH=/tmp/qe/src timeout 120 python3 -m pytest -q -x -rs tests/test_fwd.py -k "sm90 or graph" > $OUT/c8/fwd_qe.txt 2>&1; echo "fwd rc=$? ($((SECONDS-t0)) s)"; tail -2 $OUT/c8/fwd_qe.txt
ab() {  # ab BUILD D CONFIGS ROUND
  PYTHONPATH=/tmp/$1/src timeout 100 python3 benchmarks/ab_configs.py --configs "$3" --dtype fp16 \
    --rounds 1 --shapes "4,16,2048;8,16,4096" > "$OUT/c8/ab_$1_$2_$4.txt" 2>&1
  echo "$1 $2 round $4 rc=$? ($((SECONDS-t0)) s)"
}
for r in 1 2; do
  for b in m qe; do ab $b 64 sm90_d64_w3_p,sm90_d64_p,sm90_d64_w3 $r; ab $b 128 sm90_d128_p,sm90_d128 $r; done
done
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
PYTHONPATH=/tmp/qe/src timeout 150 compute-sanitizer --tool synccheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > $OUT/c8/synccheck.txt 2>&1; echo "synccheck rc=$? ($((SECONDS-t0)) s)"; tail -3 $OUT/c8/synccheck.txt
PYTHONPATH=/tmp/qe/src timeout 150 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 1 python3 ci/sanitize_cases.py --fwd _p > $OUT/c8/racecheck.txt 2>&1; echo "racecheck rc=$? ($((SECONDS-t0)) s)"; tail -3 $OUT/c8/racecheck.txt
tar czf $OUT/c8.tgz -C $OUT c8
