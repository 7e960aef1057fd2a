"""Where w3_p's graph-timed gap to w3 at 16K non-causal comes from: graph time
(20 calls and 1 call), eager events, and kernel durations from the profiler."""

import statistics
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from flashcore import _debug, fused_attention
from flashcore._bench import _capture, eager_latency_us, flops, graph_time_us, make_inputs

shapes = [tuple(int(x) for x in s.split(",")) for s in sys.argv[1].split(";")]
cfgs = sys.argv[2].split(",")
for b, h, s in shapes:
    q, k, v = make_inputs(b, h, s, s, d=64)
    f = flops(b, h, s, s, 64, causal=False)
    for rnd in range(2):
        for c in cfgs:

            def fn(c=c, q=q, k=k, v=v):
                with _debug.forced_config(c):
                    return fused_attention(q, k, v)

            g20 = graph_time_us(fn, calls=20, reps=10)
            g1 = graph_time_us(fn, calls=1, reps=30)
            e50, _ = eager_latency_us(fn, reps=30)
            graph = _capture([fn], 5)
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(3):
                    graph.replay()
                torch.cuda.synchronize()
            durs = [e.device_time for e in prof.events() if "fwd_kernel" in e.name]
            kd = statistics.median(durs) if durs else float("nan")
            other = sorted(
                {
                    e.name[:40]
                    for e in prof.events()
                    if "fwd_kernel" not in e.name and e.device_time > 0
                }
            )
            print(
                f"{b},{h},{s} {c:14s} graph20 {g20:8.1f} ({f / g20 / 1e6:5.1f} TF)  graph1 {g1:8.1f}  eager {e50:8.1f}  kernel(prof) {kd:8.1f} ({f / kd / 1e6:5.1f} TF) n={len(durs)} other={other}",
                flush=True,
            )
