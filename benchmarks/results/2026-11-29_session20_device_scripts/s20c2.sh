#!/usr/bin/env bash
# session 20 call 2: v20 softmax under P V (the next K wait ends the block):
# tests, sanitizers, A/B old vs new build, configs vs cuDNN
set -u
R=$PWD; L=$OUT/c2; mkdir -p $L
pack() { tar czf $OUT/logs_c2.tgz -C $OUT c2; }
t0=$SECONDS
tar xzf .devrun/newso.tgz -C $R; tar xzf .devrun/oldb.tgz -C /tmp
export PYTHONPATH=$R/src
# phase A: correctness in parallel
( timeout 200 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_sm90.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$!"
( timeout 200 python3 -m pytest -q -rs tests/test_api.py tests/test_tile_order.py > $L/api.txt 2>&1; echo "api rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
for tool in memcheck synccheck; do
  ( PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 200 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd sm90 > $L/$tool.txt 2>&1; echo "$tool rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done
for f in sm90_d128_p sm90_d64_w3_p; do
  ( PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 200 compute-sanitizer --tool racecheck --error-exitcode 1 python3 ci/sanitize_cases.py --fwd $f > $L/racecheck_$f.txt 2>&1; echo "racecheck_$f rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done
wait $p; pack
# phase B: configs vs cuDNN (new build), alone
( timeout 60 python3 benchmarks/ab_configs.py --configs sm90_d128,sm90_d128_p,sm90_d128_p_q2 --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json $L/ab128.json > $L/ab128.txt 2>&1; echo "ab128 rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
pack
( timeout 80 python3 benchmarks/ab_configs.py --configs sm90_d64,sm90_d64_p,sm90_d64_p_q2,sm90_d64_w3,sm90_d64_w3_p,sm90_d64_w3_p_q2 --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab64.json > $L/ab64.txt 2>&1; echo "ab64 rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
pack
# phase C: old vs new build (heuristic picks), alone
for d in 128 64; do
( timeout 70 python3 benchmarks/ab_builds.py --build old=/tmp/oldb/src --build new=$R/src --head-dim $d --shapes "1,8,1024;4,16,2048;8,16,4096;2,16,16384" --rounds 2 --json $L/builds$d.json > $L/builds$d.txt 2>&1; echo "builds$d rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
done
pack
cat $L/rc.txt
for f in fwd_sm90 api memcheck synccheck racecheck_sm90_d128_p racecheck_sm90_d64_w3_p; do echo "== $f"; grep -v "^\s*$" $L/$f.txt | tail -3 | cut -c1-250; done
echo "== ab128"; grep TFLOP $L/ab128.txt; echo "== ab64"; grep TFLOP $L/ab64.txt; echo "== builds"; tail -14 $L/builds128.txt; tail -14 $L/builds64.txt
echo "total $((SECONDS-t0))s"
