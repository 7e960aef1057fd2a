set -u
t0=$SECONDS
mkdir -p $OUT/r
mkdir -p /tmp/m0 && cp -r src /tmp/m0/ && tar xzf .devrun/m.tgz -C /tmp/m0
PYTHONPATH=/tmp/m0/src timeout 120 python3 -m pytest -q -rs tests/test_fwd.py -k "sm90 or graph" > $OUT/r/fwd_sm90_fixed.txt 2>&1; echo "fwd rc=$? ($((SECONDS-t0)) s)"; tail -8 $OUT/r/fwd_sm90_fixed.txt
mkdir -p /tmp/sp && tar xzf .devrun/spfull.tgz -C /tmp/sp
PYTHONPATH=/tmp/sp/src timeout 150 python3 - > "$OUT/r/parts.txt" 2>&1 <<'PY'
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
echo "parts rc=$? ($((SECONDS-t0)) s)"; cat $OUT/r/parts.txt
mkdir -p /tmp/wm && cp -r src /tmp/wm/ && tar xzf .devrun/wm.tgz -C /tmp/wm
for r in 1 2 3; do for b in m0 wm; do
  PYTHONPATH=/tmp/$b/src timeout 100 python3 benchmarks/ab_configs.py --configs sm90_d64_w3,sm90_d64_w3_p --dtype fp16 --rounds 1 --shapes "4,16,2048;8,16,4096;2,16,16384" > $OUT/r/ab_${b}_$r.txt 2>&1
  echo "$b $r rc=$? ($((SECONDS-t0)) s)"
done; done
tar czf $OUT/r.tgz -C $OUT r
