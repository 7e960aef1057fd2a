"""Sustained graph replay per config: kernel time and the SM clock / power NVML
reports while it runs (sampled from the host between enqueued replays)."""

import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from flashcore import _debug, fused_attention
from flashcore._bench import _capture, flops, make_inputs

shapes = [tuple(int(x) for x in s.split(",")) for s in sys.argv[1].split(";")]
cfgs = sys.argv[2].split(",")
for b, h, s in shapes:
    q, k, v = make_inputs(b, h, s, s, d=64)
    f = flops(b, h, s, s, 64, causal=False)
    fns = {}
    for c in cfgs:

        def fn(c=c, q=q, k=k, v=v):
            with _debug.forced_config(c):
                return fused_attention(q, k, v)

        fns[c] = fn

    def cud(q=q, k=k, v=v):
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            return F.scaled_dot_product_attention(q, k, v)

    fns["cudnn"] = cud
    calls = max(5, int(40000 / (f / 500e6)))  # ~40 ms of work per replay
    graphs = {n: _capture([fn], calls) for n, fn in fns.items()}
    for rnd in range(2):
        for n, g in graphs.items():
            clocks, powers, times = [], [], []
            t_end = time.time() + 1.5
            while time.time() < t_end:
                st, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                st.record()
                g.replay()
                en.record()
                time.sleep(0.01)
                clocks.append(torch.cuda.clock_rate())
                powers.append(torch.cuda.power_draw() / 1000)
                en.synchronize()
                times.append(st.elapsed_time(en) * 1000 / calls)
            us = statistics.median(times[2:])
            print(
                f"{b},{h},{s} {n:14s} {us:8.1f} us {f / us / 1e6:6.1f} TF  clock {statistics.median(clocks[2:]):6.0f} MHz  power {statistics.median(powers[2:]):5.0f} W  n={len(times)}",
                flush=True,
            )
