#!/usr/bin/env bash
# session 20 call 4: the release wheel of main (v19 heuristic): backward tests,
# sanitizers on the Hopper backward (split included), the GPT step's A/B, training
set -u
R=$PWD; L=$OUT/c4; mkdir -p $L
pack() { tar czf $OUT/logs_c4.tgz -C $OUT c4; }
t0=$SECONDS
whl=$(ls $R/.devrun/rel21/*.whl)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$whl"
export FLASHCORE_COMMIT=$(cat $R/.devrun/rel21/commit)
( FLASHCORE_GPU_CHECK_STEPS=main,pytest_bwd timeout 300 bash ci/gpu_check.sh "$whl" $L/bwd > $L/bwd.out 2>&1; echo "bwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$!"
( PYTHONPATH=$site timeout 300 python3 -m pytest -q -rs tests/test_autograd_api.py tests/test_bwd_configs.py tests/test_api.py > $L/api.txt 2>&1; echo "api rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
( PYTHONPATH=$site timeout 300 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_sm90.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
for tool in memcheck racecheck synccheck; do
  ( PYTHONPATH=$site PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 300 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --bwd sm90_bwd > $L/$tool.txt 2>&1; echo "$tool rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done
( while sleep 60; do pack; done ) & packer=$!
wait $p; kill $packer 2>/dev/null; pack
( PYTHONPATH=$site timeout 60 python3 benchmarks/ab_bwd_configs.py --configs auto,sm90_bwd_d128 --head-dim 128 --dtype bf16 --shapes "8,8/2,512;4,16/4,1024" --rounds 3 --json $L/gpt_step_ab.json > $L/gpt_step_ab.txt 2>&1; echo "ab rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
pack
( PYTHONPATH=$site timeout $((560-SECONDS+t0)) python3 benchmarks/train_gpt.py --kv-heads 2 --head-dim 128 --json $L/train_d128_gqa.json --plot $L/train_d128_gqa.png > $L/train_d128_gqa.txt 2>&1; echo "train rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
pack
cat $L/rc.txt
echo "== bwd"; grep -v "^    \.\.\." $L/bwd.out | tail -8 | cut -c1-250
for f in api fwd_sm90 memcheck racecheck synccheck; do echo "== $f"; grep -v "^\s*$" $L/$f.txt | tail -3 | cut -c1-250; done
echo "== ab"; tail -6 $L/gpt_step_ab.txt; echo "== train"; tail -15 $L/train_d128_gqa.txt
echo "total $((SECONDS-t0))s"
