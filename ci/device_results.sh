#!/usr/bin/env bash
# The numbers a release records, on a CUDA machine, in one go (after
# ci/gpu_check.sh has checked the same wheel):
#   ci/device_results.sh WHEEL TEST_WHEELS_DIR LOGDIR [COMMIT]
# installs WHEEL and transformers (from TEST_WHEELS_DIR, see ci/test_wheels.sh)
# into private target dirs, then writes into LOGDIR:
#   model.{txt,json}    benchmarks/bench_model.py (Llama-style, 8 layers, bf16)
#   sweep.{txt,json}    benchmarks/bench_fwd.py, fp16/bf16 x head dims 64/128
#   gqa.{txt,json}      the same for the GQA rows (1, 32/8, 8192)
#   ncu_d128.txt        Nsight Compute on the (8,16,4096,128) fp16 call
#   bwd.{txt,json}      benchmarks/bench_bwd.py, fp16/bf16 x head dims 64/128
#   bwd_gqa.{txt,json}  the same for the GQA rows (1, 32/8, 8192)
#   train_*.{txt,json,png}  benchmarks/train_gpt.py: 8 heads of 64, and head dim 128
#                       with GQA 8/2; flashcore against SDPA and SDPA's forced
#                       backends, math included (their spread calibrates the
#                       tolerance); each alone on the GPU, so tokens/s count
# and packs them into LOGDIR.tgz (remote runners may return few files).
# Run from the repository root. Each step has a time limit; a step that fails or
# runs out is reported and the others still run.
set -u
wheel=${1:?usage: ci/device_results.sh WHEEL TEST_WHEELS_DIR LOGDIR [COMMIT]}
twheels=${2:?usage: ci/device_results.sh WHEEL TEST_WHEELS_DIR LOGDIR [COMMIT]}
logs=${3:?usage: ci/device_results.sh WHEEL TEST_WHEELS_DIR LOGDIR [COMMIT]}
commit=${4:-}
mkdir -p "$logs"
site=$(mktemp -d)
tf=$(mktemp -d)
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-compile --target "$site" "$wheel" || exit 2
# --no-deps: ci/test_wheels.sh leaves out what the device image has (numpy).
python3 -m pip install -q --no-index --no-deps --no-compile --target "$tf" "$twheels"/*.whl \
  || exit 2
t0=$SECONDS
# FLASHCORE_RESULTS_STEPS=model,sweep,gqa,ncu,bwd,bwd_gqa,train_d64,train_d128_gqa (default: all)
# runs a subset: all of them take longer than one 10-minute device call.
steps=",${FLASHCORE_RESULTS_STEPS:-model,sweep,gqa,ncu,bwd,bwd_gqa,train_d64,train_d128_gqa},"
step() {  # step NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  case "$steps" in *",$name,"*) ;; *) return 0 ;; esac
  timeout "$limit" "$@"
  echo "$name: rc=$? ($((SECONDS - t0)) s)" | tee -a "$logs/steps.txt"
}
step model 120 env PYTHONPATH="$site:$tf" python3 benchmarks/bench_model.py --repeats 3 \
  --json "$logs/model.json" >"$logs/model.txt" 2>&1
step sweep 300 env PYTHONPATH="$site" python3 benchmarks/bench_fwd.py --dtype fp16,bf16 \
  --head-dim 64,128 --json "$logs/sweep.json" ${commit:+--commit "$commit"} >"$logs/sweep.txt" 2>&1
step gqa 120 env PYTHONPATH="$site" python3 benchmarks/bench_fwd.py --dtype fp16,bf16 \
  --head-dim 64,128 --gqa 32/8 --json "$logs/gqa.json" ${commit:+--commit "$commit"} \
  >"$logs/gqa.txt" 2>&1
step ncu 120 env PYTHONPATH="$site" ncu --clock-control none -k regex:fwd_kernel -c 1 \
  --launch-skip 4 --section SpeedOfLight --section ComputeWorkloadAnalysis \
  --section InstructionStats --section WarpStateStats --section LaunchStats --section Occupancy \
  python3 benchmarks/ncu_cases.py >"$logs/ncu_d128.txt" 2>&1
step bwd 150 env PYTHONPATH="$site" python3 benchmarks/bench_bwd.py --dtype fp16,bf16 \
  --head-dim 64,128 --json "$logs/bwd.json" ${commit:+--commit "$commit"} >"$logs/bwd.txt" 2>&1
# --gqa without --shapes times the GQA rows only: a run of its own.
step bwd_gqa 90 env PYTHONPATH="$site" python3 benchmarks/bench_bwd.py --dtype fp16,bf16 \
  --head-dim 64,128 --gqa 32/8 --json "$logs/bwd_gqa.json" ${commit:+--commit "$commit"} \
  >"$logs/bwd_gqa.txt" 2>&1
step train_d64 120 env PYTHONPATH="$site" python3 benchmarks/train_gpt.py \
  --json "$logs/train_d64.json" \
  --plot "$logs/train_d64.png" >"$logs/train_d64.txt" 2>&1
step train_d128_gqa 120 env PYTHONPATH="$site" python3 benchmarks/train_gpt.py --kv-heads 2 \
  --head-dim 128 --json "$logs/train_d128_gqa.json" \
  --plot "$logs/train_d128_gqa.png" >"$logs/train_d128_gqa.txt" 2>&1
tar czf "$logs.tgz" -C "$(dirname "$logs")" "$(basename "$logs")"
cat "$logs/steps.txt"
