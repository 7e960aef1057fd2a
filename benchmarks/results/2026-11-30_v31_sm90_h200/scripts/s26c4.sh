#!/usr/bin/env bash
# Session 26 call 4: the task probe (dev build of branch sm90-fwd-task-probe).
set -u
mkdir -p /tmp/P && tar xzf .devrun/probe.tgz -C /tmp/P
cp -rn src /tmp/P/ ; export PYTHONPATH=/tmp/P/src
S=benchmarks/results/2026-11-30_v31_sm90_h200/scripts/task_probe.py
timeout 60 python3 $S sm90_d64_w3_p 4,16,2048 > $OUT/c4_probe_w3p_2048.txt 2>&1; echo rc=$?
timeout 60 python3 $S sm90_d64_w3_p 6,16,2112 > $OUT/c4_probe_w3p_2112.txt 2>&1; echo rc=$?
timeout 60 python3 $S sm90_d128_p 4,16,2048 > $OUT/c4_probe_d128p_2048.txt 2>&1; echo rc=$?
timeout 60 python3 $S sm90_d64_w3_p 4,16,2048 8192 > $OUT/c4_probe_w3p_2048_8k.txt 2>&1; echo rc=$?
cat $OUT/c4_probe_w3p_2048.txt
