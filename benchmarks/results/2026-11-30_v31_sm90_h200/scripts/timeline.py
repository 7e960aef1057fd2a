"""Session 26 probe: where a call's graph time goes beyond its kernel. Captures a
graph of CALLS back-to-back calls of each variant, replays it under torch.profiler
and prints, per call, the GPU activities (kernels, memsets) with their durations
and the gaps between them; also the graph time per call. Plus a control: a graph of
cudaMemsetAsync + a tiny kernel vs the tiny kernel alone."""

import ctypes
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

from flashcore import _bench, _debug, fused_attention

CALLS = 5


def graph_of(fn, calls):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    return g


def replay_us(g, calls, reps=20):
    ts = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e3 / calls)
    return statistics.median(ts)


def timeline(g, label):
    g.replay()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            g.replay()
        torch.cuda.synchronize()
    evs = [e for e in prof.events() if e.device_type.name == "CUDA"]
    evs.sort(key=lambda e: e.time_range.start)
    # last replay's activities
    n = len(evs) // 3
    last = evs[-n:]
    prev_end = None
    kern, gaps = [], []
    for e in last:
        st, en = e.time_range.start, e.time_range.end
        gap = None if prev_end is None else st - prev_end
        kern.append((e.name[:60], en - st, gap))
        if gap is not None:
            gaps.append(gap)
        prev_end = en
    print(f"  [{label}] activities per replay: {n}")
    for name, dur, gap in kern[: 2 * (n // CALLS) + 1]:
        print(f"    {dur:8.2f} us  gap-before {'' if gap is None else f'{gap:6.2f}'}  {name}")
    span = (last[-1].time_range.end - last[0].time_range.start) / CALLS
    print(
        f"    span per call {span:.2f} us; median gap {statistics.median(gaps) if gaps else 0:.2f} us"
    )


def main():
    dev = torch.device("cuda")
    cudart = ctypes.CDLL("libcudart.so.13") if len(sys.argv) < 2 else ctypes.CDLL(sys.argv[1])
    buf = torch.empty(1024, dtype=torch.int32, device=dev)
    x = torch.ones(1, device=dev)

    def tiny():
        x.add_(1)

    def memset_tiny():
        stream = torch.cuda.current_stream().cuda_stream
        cudart.cudaMemsetAsync(
            ctypes.c_void_p(buf.data_ptr()), 0, ctypes.c_size_t(560), ctypes.c_void_p(stream)
        )
        x.add_(1)

    for name, fn in (("tiny", tiny), ("memset+tiny", memset_tiny)):
        g = graph_of(fn, 20)
        print(f"{name}: {replay_us(g, 20):.2f} us per call (graph of 20)")
        timeline(g, name)

    for d, shapes in ((64, [(4, 16, 2048)]), (128, [(4, 16, 2048)])):
        for b, h, s in shapes:
            for dtype in ("fp16",):
                q, k, v = _bench.make_inputs(b, h, s, s, d, dtype=_bench.DTYPES[dtype])
                for causal in (False, True):
                    fl = _bench.flops(b, h, s, s, d, causal, None, "top_left")
                    pick = _debug.chosen_config(q, k, v, causal=causal)

                    def ours(q=q, k=k, v=v, causal=causal):
                        return fused_attention(q, k, v, causal=causal)

                    def cudnn(q=q, k=k, v=v, causal=causal):
                        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                    with torch.no_grad():
                        for nm, fn in ((pick, ours), ("cudnn", cudnn)):
                            g = graph_of(fn, CALLS)
                            us = replay_us(g, CALLS)
                            print(
                                f"{dtype} {b},{h},{s},{d} causal={causal} {nm}: {us:.2f} us per call "
                                f"{fl / us / 1e6:.1f} TFLOP/s"
                            )
                            timeline(g, nm)


if __name__ == "__main__":
    main()
