"""Timing helpers shared by `python -m flashcore` and benchmarks/bench_fwd.py.

Kernel time: CUDA-graph replay of many back-to-back calls (launch gaps gone),
median over repeats. Eager latency: CUDA events around one Python-level call on
an idle GPU (host overhead included), median and p90 over repeats.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from .ops import fused_attention

SDPA_BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}


def flops(b: int, h: int, sq: int, sk: int, d: int, causal: bool) -> float:
    """Matmul FLOPs of attention forward (2 GEMMs, 2 flops per MAC), counting only
    the (query, key) pairs that causal masking leaves visible (top-left aligned)."""
    if causal:
        full = min(sq, sk)
        pairs = full * (full + 1) // 2 + max(0, sq - sk) * sk
    else:
        pairs = sq * sk
    return 4.0 * b * h * pairs * d


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]


def graph_time_us(fn: Callable[[], object], calls: int = 20, reps: int = 30) -> float:
    """Median per-call time of `calls` back-to-back launches captured in one graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0 / calls)
    del graph
    return statistics.median(times)


def eager_latency_us(fn: Callable[[], object], reps: int = 200) -> tuple[float, float]:
    """(p50, p90) of events around one eager call, GPU idle before each."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)
    return statistics.median(times), percentile(times, 90)


def make_inputs(b: int, h: int, sq: int, sk: int, d: int = 64, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(b, h, sq, d, device="cuda", generator=g).half()
    k = torch.randn(b, h, sk, d, device="cuda", generator=g).half()
    v = torch.randn(b, h, sk, d, device="cuda", generator=g).half()
    return q, k, v


def sdpa_supports(backend: str, q, k, v, causal: bool) -> bool:
    try:
        with sdpa_kernel([SDPA_BACKENDS[backend]]):
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        torch.cuda.synchronize()
    except RuntimeError:
        return False
    return True


def measure_shape(
    b: int,
    h: int,
    sq: int,
    sk: int,
    causal: bool,
    eager_reps: int = 200,
    backends: tuple[str, ...] = tuple(SDPA_BACKENDS),
) -> dict:
    """Times flashcore and every SDPA backend on the same inputs in this process."""
    q, k, v = make_inputs(b, h, sq, sk)
    fl = flops(b, h, sq, sk, q.shape[-1], causal)
    row: dict = {"shape": [b, h, sq, sk, q.shape[-1]], "causal": causal, "flops": fl}

    def ours():
        return fused_attention(q, k, v, causal=causal)

    t = graph_time_us(ours)
    row["flashcore"] = {"kernel_us": t, "tflops": fl / t / 1e6}
    if eager_reps:
        p50, p90 = eager_latency_us(ours, eager_reps)
        row["flashcore"].update(eager_p50_us=p50, eager_p90_us=p90)

    def theirs():
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    for name in backends:
        if not sdpa_supports(name, q, k, v, causal):
            row[name] = None
            continue
        # The backend is pinned outside the timed region: the context manager's
        # own cost is not SDPA's per-call latency.
        with sdpa_kernel([SDPA_BACKENDS[name]]):
            t_b = graph_time_us(theirs)
            entry = {"kernel_us": t_b, "tflops": fl / t_b / 1e6, "ratio": t / t_b}
            if eager_reps:
                p50, p90 = eager_latency_us(theirs, eager_reps)
                entry.update(
                    eager_p50_us=p50,
                    eager_p90_us=p90,
                    eager_ratio=row["flashcore"]["eager_p50_us"] / p50,
                )
        row[name] = entry
    return row


def env_info() -> dict:
    import subprocess

    props = torch.cuda.get_device_properties(0)
    try:
        driver = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            .stdout.strip()
            .splitlines()[0]
        )
    except (OSError, IndexError, subprocess.SubprocessError):
        driver = "unknown"
    return {
        "gpu": props.name,
        "sm_count": props.multi_processor_count,
        "compute_capability": f"{props.major}.{props.minor}",
        "driver": driver,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
