#!/usr/bin/env bash
# Prepared in session 23 (not run): the A/B of the three branches prepared for
# issue 11's remaining head-dim-64 gaps, against a dev build of main, in one call.
# Build each here first (sm_90a only) and tar its _C.abi3.so and _build_config.py:
#   main                  -> .devrun/m.tgz
#   sm90-fwd-warp-mask    -> .devrun/wm.tgz   (per-warp mask decision, three warpgroups)
#   sm90-fwd-exp-poly-w2  -> .devrun/pw2.tgz  (exp2 on the FMA pipe, two warpgroups)
#   sm90-fwd-split-parts  -> .devrun/sp.tgz   (the tail split's parts override)
# then: bash benchmarks/results/2026-11-30_v28_sm90_epilogue_h200/scripts/next_ab.sh
set -u
t0=$SECONDS
mkdir -p "$OUT/ab"
for b in m wm pw2 sp; do mkdir -p /tmp/$b && cp -r src /tmp/$b/ && tar xzf .devrun/$b.tgz -C /tmp/$b; done
# Correctness first: the branches' forward tests (masks, growth cases) on the GPU.
for b in wm pw2 sp; do
  PYTHONPATH=/tmp/$b/src timeout 100 python3 -m pytest -q -x tests/test_fwd.py -k "sm90" > "$OUT/ab/fwd_$b.txt" 2>&1
  echo "$b fwd rc=$? ($((SECONDS-t0)) s)"; tail -1 "$OUT/ab/fwd_$b.txt"
done
ab() {  # ab NAME BUILD CONFIGS SHAPES ROUND
  PYTHONPATH=/tmp/$2/src timeout 100 python3 benchmarks/ab_configs.py --configs "$3" --dtype fp16 \
    --rounds 1 --shapes "$4" > "$OUT/ab/ab_$1_$5.txt" 2>&1
  echo "$1 round $5 rc=$? ($((SECONDS-t0)) s)"
}
for r in 1 2; do
  ab m_w3 m sm90_d64_w3,sm90_d64_w3_p "4,16,2048;8,16,4096;2,8,8192" $r
  ab wm_w3 wm sm90_d64_w3,sm90_d64_w3_p "4,16,2048;8,16,4096;2,8,8192" $r
  ab m_p m sm90_d64_p "4,16,2048;8,16,4096" $r
  ab pw2_p pw2 sm90_d64_p "4,16,2048;8,16,4096" $r
done
# The split's parts (1: none) for sm90_d64_w3_p non-causal, interleaved, one process.
PYTHONPATH=/tmp/sp/src timeout 120 python3 - > "$OUT/ab/parts.txt" 2>&1 <<'PY'
import statistics
from flashcore import _debug, fused_attention
from flashcore._bench import flops, graph_time_us, make_inputs
for b, h, s in ((4, 16, 2048), (8, 16, 4096), (1, 4, 2048), (2, 8, 8192)):
    q, k, v = make_inputs(b, h, s, s, d=64)
    times = {p: [] for p in (1, 2, 3, 4)}
    with _debug.forced_config("sm90_d64_w3_p"):
        for _ in range(3):
            for parts in times:
                with _debug.sm90_tail_parts(parts):
                    times[parts].append(graph_time_us(lambda: fused_attention(q, k, v)))
    f = flops(b, h, s, s, 64, causal=False)
    row = "  ".join(f"parts {p}: {f / statistics.median(t) / 1e6:6.1f}" for p, t in times.items())
    print(f"{b},{h},{s},64 TFLOP/s  {row}", flush=True)
PY
echo "parts rc=$? ($((SECONDS-t0)) s)"; cat "$OUT/ab/parts.txt"
tar czf "$OUT/ab.tgz" -C "$OUT" ab
