"""Per-call graph time vs batch at fixed (16, S, 64): the intercept is the fixed
cost per call (launch gaps, memset, ramp and tail); the slope the per-batch work."""

import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from flashcore import _debug, fused_attention
from flashcore._bench import graph_time_us, make_inputs

S = int(sys.argv[1])
causal = sys.argv[2] == "c"
cfgs = sys.argv[3].split(",")
d = int(sys.argv[4]) if len(sys.argv) > 4 else 64
res = {}
for b in (1, 2, 4, 8):
    q, k, v = make_inputs(b, 16, S, S, d=d)
    fns = {}
    for c in cfgs:

        def f(c=c, q=q, k=k, v=v):
            with _debug.forced_config(c):
                return fused_attention(q, k, v, causal=causal)

        fns[c] = f

    def cud(q=q, k=k, v=v):
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    fns["cudnn"] = cud
    buf = torch.empty(4096, dtype=torch.int32, device="cuda")
    fns["memset16k"] = lambda buf=buf: buf.zero_()
    t = {n: [] for n in fns}
    for _ in range(3):
        for n, f in fns.items():
            t[n].append(graph_time_us(f))
    res[b] = {n: statistics.median(x) for n, x in t.items()}
    print(b, "  ".join(f"{n} {x:7.1f}" for n, x in res[b].items()), flush=True)
for n in res[1]:
    xs = [1, 2, 4, 8]
    ys = [res[b][n] for b in xs]
    mx = sum(xs) / 4
    my = sum(ys) / 4
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    print(f"{n}: per batch {slope:7.1f} us, intercept {my - slope * mx:6.1f} us")
