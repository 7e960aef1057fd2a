#!/usr/bin/env bash
# session 20 call 1: v19 two Q buffers (dev build of the main tree: tests,
# sanitizers, A/B); branch sm90-bwd-gqa-split (tests, A/B)
set -u
R=$PWD; L=$OUT/c1; mkdir -p $L
pack() { tar czf $OUT/logs_c1.tgz -C $OUT c1; }
t0=$SECONDS
tar xzf .devrun/split.tgz -C /tmp; S=/tmp/split
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/gpu.txt
python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())" >> $L/gpu.txt
# phase A: correctness in parallel
( PYTHONPATH=$R/src timeout 220 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/q2_fwd_sm90.txt 2>&1; echo "q2_fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$!"
for tool in memcheck racecheck synccheck; do
  ( PYTHONPATH=$R/src PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 220 compute-sanitizer --tool $tool --error-exitcode 1 python3 ci/sanitize_cases.py --fwd _q2 > $L/q2_$tool.txt 2>&1; echo "q2_$tool rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done
( cd $S && PYTHONPATH=$S/src timeout 220 python3 -m pytest -q -rs tests/test_bwd.py -k "sm90 or hopper or gqa_split" > $L/split_bwd.txt 2>&1; echo "split_bwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
( cd $S && PYTHONPATH=$S/src timeout 220 python3 -m pytest -q -rs tests/test_autograd_api.py tests/test_bwd_configs.py > $L/split_api.txt 2>&1; echo "split_api rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
( cd $S && PYTHONPATH=$S/src PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 220 compute-sanitizer --tool racecheck --error-exitcode 1 python3 ci/sanitize_cases.py --bwd "sm90_bwd" > $L/split_racecheck.txt 2>&1; echo "split_racecheck rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
wait $p; pack
# phase B: the forward A/B, alone
( PYTHONPATH=$R/src timeout 110 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128_p_q2 --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/q2_d128.json > $L/q2_d128.txt 2>&1; echo "q2_ab128 rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
pack
( PYTHONPATH=$R/src timeout 140 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_p_q2,sm90_d64_w3,sm90_d64_w3_p_q2 --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/q2_d64.json > $L/q2_d64.txt 2>&1; echo "q2_ab64 rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
pack
# phase C: the GQA split A/B (branch), alone
( cd $S && PYTHONPATH=$S/src timeout $((545-SECONDS+t0)) python3 benchmarks/ab_bwd_configs.py --configs auto,sm90_bwd_d128,sm90_bwd_d128/g2,sm90_bwd_d128/g4 --head-dim 128 --dtype bf16 --shapes "8,8/2,512;4,16/4,1024;1,32/8,8192" --rounds 3 --json $L/split_ab.json > $L/split_ab.txt 2>&1; echo "split_ab rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
pack
cat $L/rc.txt
for f in q2_fwd_sm90 q2_memcheck q2_racecheck q2_synccheck split_bwd split_api split_racecheck; do echo "== $f"; grep -v "^\s*$" $L/$f.txt | tail -4 | cut -c1-300; done
echo "== d128"; tail -30 $L/q2_d128.txt; echo "== d64"; tail -30 $L/q2_d64.txt; echo "== split"; tail -20 $L/split_ab.txt
echo "total $((SECONDS-t0))s"
