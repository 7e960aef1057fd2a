#!/usr/bin/env bash
# session 20 call 6: v21, the P V descriptors advanced instead of rebuilt (dev build)
set -u
R=$PWD; L=$OUT/c6; mkdir -p $L
t0=$SECONDS
tar xzf .devrun/desc.tgz -C $R
export PYTHONPATH=$R/src
timeout 60 python3 -m pytest -q -rs tests/test_fwd.py -k sm90 > $L/fwd_sm90.txt 2>&1; echo "fwd rc=$? $((SECONDS-t0))s" >> $L/rc.txt
timeout 50 python3 benchmarks/ab_configs.py --configs sm90_d128_p,sm90_d128 --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384;1,32/8,8192" --json $L/ab128.json > $L/ab128.txt 2>&1; echo "ab128 rc=$? $((SECONDS-t0))s" >> $L/rc.txt
timeout 50 python3 benchmarks/ab_configs.py --configs sm90_d64_p,sm90_d64_w3,sm90_d64_w3_p --dtype fp16,bf16 --rounds 3 --shapes "4,16,2048;8,16,4096;2,16,16384" --json $L/ab64.json > $L/ab64.txt 2>&1; echo "ab64 rc=$? $((SECONDS-t0))s" >> $L/rc.txt
cat $L/rc.txt; grep -v "^\s*$" $L/fwd_sm90.txt | tail -1
grep TFLOP $L/ab128.txt | sed 's/TFLOP.s://; s/sm90_//g'; grep TFLOP $L/ab64.txt | sed 's/TFLOP.s://; s/sm90_//g'
echo "total $((SECONDS-t0))s"
