t0=$SECONDS
mkdir -p /tmp/m0 && cp -r src /tmp/m0/ && tar xzf .devrun/m.tgz -C /tmp/m0
export PYTHONPATH=/tmp/m0/src
mkdir -p $OUT/c5
M=smsp__average_warps_issue_stalled_
for cfg in sm90_d64_w3 sm90_d64_w3_p; do
timeout 200 ncu --clock-control none -k "regex:fwd_kernel" --section SpeedOfLight --section MemoryWorkloadAnalysis \
  --section WarpStateStats --section InstructionStats --section LaunchStats \
  --metrics ${M}wait_per_issue_active.ratio,${M}long_scoreboard_per_issue_active.ratio,${M}barrier_per_issue_active.ratio,${M}dispatch_stall_per_issue_active.ratio,${M}math_pipe_throttle_per_issue_active.ratio,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,lts__t_sector_hit_rate.pct,dram__bytes_read.sum,sm__cycles_elapsed.avg.per_second,sm__cycles_active.avg,sm__cycles_active.max,sm__cycles_active.min,smsp__inst_executed.sum \
  python3 benchmarks/ncu_cases.py --shapes "2,16,16384,64" --config $cfg > $OUT/c5/ncu_$cfg.txt 2>&1
echo "$cfg rc=$? ($((SECONDS-t0)) s)"
done
tar czf $OUT/c5.tgz -C $OUT c5
