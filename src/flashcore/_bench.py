"""Timing helpers shared by `python -m flashcore` and benchmarks/bench_fwd.py.

Kernel time: CUDA-graph replay of many back-to-back calls (launch gaps gone),
median over repeats. Interleaved kernel time: the same with a small non-flashcore
kernel between consecutive calls, that kernel's own time subtracted. Eager
latency: CUDA events around one Python-level call on an idle GPU (host overhead
included), median and p90 over repeats.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import _debug, _reference
from ._reference import ALIGNMENTS
from .ops import fused_attention

SDPA_BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# The seed's head dim: the shapes of `python -m flashcore` and ncu_cases.py.
DEFAULT_HEAD_DIM = 64
# Elements of the tensor the interleaving torch.add writes: one tiny elementwise
# kernel (about a 2 us graph node), launched without programmatic dependent launch.
INTERLEAVE_NUMEL = 1024


def visible_key_range(
    rows: torch.Tensor,
    sq: int,
    sk: int,
    causal: bool,
    window: Sequence[int] | None = None,
    alignment: str = "top_left",
) -> tuple[torch.Tensor, torch.Tensor]:
    """[lo, hi) of the keys each query row in `rows` sees (hi <= lo: none).

    flash-attn's window_size meaning: with off = 0 (top_left) or sk - sq
    (bottom_right), row i sees keys i+off-left .. i+off+right (-1: unbounded on
    that side); causal caps the right end at i+off; both together intersect."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    diag = rows + (0 if alignment == "top_left" else sk - sq)
    lo = torch.zeros_like(rows)
    hi = torch.full_like(rows, sk)
    if window is not None:
        left, right = window
        if min(left, right) < -1:
            raise ValueError(f"window entries must be >= -1 (-1: unbounded), got {window}")
        if left >= 0:
            lo = (diag - left).clamp(min=0)
        if right >= 0:
            hi = (diag + right + 1).clamp(min=0, max=sk)
    if causal:
        hi = torch.minimum(hi, (diag + 1).clamp(min=0, max=sk))
    return lo, hi


def visible_pairs(
    sq: int,
    sk: int,
    causal: bool,
    window: Sequence[int] | None = None,
    alignment: str = "top_left",
) -> int:
    """Number of (query, key) pairs the mask leaves visible: a per-row sum."""
    lo, hi = visible_key_range(torch.arange(sq), sq, sk, causal, window, alignment)
    return int((hi - lo).clamp(min=0).sum())


def flops(
    b: int,
    h: int,
    sq: int,
    sk: int,
    d: int,
    causal: bool,
    window: Sequence[int] | None = None,
    alignment: str = "top_left",
) -> float:
    """Matmul FLOPs of attention forward (2 GEMMs, 2 flops per MAC), counting only
    the (query, key) pairs that causal masking and the window leave visible
    (`visible_key_range`); h is the number of query heads."""
    return 4.0 * b * h * visible_pairs(sq, sk, causal, window, alignment) * d


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]


def _capture(fns: Sequence[Callable[[], object]], calls: int) -> torch.cuda.CUDAGraph:
    """One CUDA graph of `calls` rounds of fns in order, after warm-up on a side stream."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            for fn in fns:
                fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            for fn in fns:
                fn()
    graph.replay()
    torch.cuda.synchronize()
    return graph


def _replay_us(graph: torch.cuda.CUDAGraph, calls: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1000.0 / calls


def graph_time_us(fn: Callable[[], object], calls: int = 20, reps: int = 30) -> float:
    """Median per-call time of `calls` back-to-back launches captured in one graph."""
    graph = _capture([fn], calls)
    times = [_replay_us(graph, calls) for _ in range(reps)]
    del graph
    return statistics.median(times)


def interleaved_time_us(
    fn: Callable[[], object], op: Callable[[], object], calls: int = 20, reps: int = 30
) -> tuple[float, float]:
    """(time of fn, time of op) per call when fn runs with `op` between calls.

    Graph A holds `calls` pairs [op, fn], graph B `calls` ops alone; each repeat
    replays B then A, and fn's time is the median over repeats of A - B per call.
    Back-to-back calls of a kernel that triggers its programmatic dependents early
    overlap each other's launch and tail; an op that is not PDL-aware in between
    removes that overlap, as a model's surrounding kernels do."""
    pair = _capture([op, fn], calls)
    alone = _capture([op], calls)
    diffs, ops = [], []
    for _ in range(reps):
        t_op = _replay_us(alone, calls)
        diffs.append(_replay_us(pair, calls) - t_op)
        ops.append(t_op)
    del pair, alone
    return statistics.median(diffs), statistics.median(ops)


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


def make_inputs(
    b: int,
    h: int,
    sq: int,
    sk: int,
    d: int = DEFAULT_HEAD_DIM,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float16,
    heads_kv: int | None = None,
):
    """Random normal q (b, h, sq, d), k and v (b, heads_kv or h, sk, d) in `dtype`
    on the current CUDA device, from a generator seeded with `seed`."""
    hkv = h if heads_kv is None else heads_kv
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(b, h, sq, d, device="cuda", generator=g).to(dtype)
    k = torch.randn(b, hkv, sk, d, device="cuda", generator=g).to(dtype)
    v = torch.randn(b, hkv, sk, d, device="cuda", generator=g).to(dtype)
    return q, k, v


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


# Headers of SDPA's "why not" warnings; the reasons follow each as separate warnings.
_SDPA_WARNING_HEADERS = {
    "flash": "flash attention kernel not used because",
    "efficient": "memory efficient kernel not used because",
    "cudnn": "cudnn attention kernel not used because",
}


def _sdpa_reason(backend: str, messages: list[str]) -> str:
    """The reasons SDPA's warnings give for `backend`, else all of them."""
    texts = [m.split(" (Triggered internally at")[0].strip() for m in messages]
    header = _SDPA_WARNING_HEADERS.get(backend)
    mine, inside = [], False
    for t in texts:
        if "not used because" in t.lower():
            inside = header is not None and t.lower().startswith(header)
        elif inside:
            mine.append(t)
    return "; ".join(dict.fromkeys(mine or texts))[:300]


def sdpa_refusal(backend: str, q, k, v, **sdpa_kwargs) -> str | None:
    """None if the pinned SDPA backend runs this call, else why not (the reasons
    in its warnings, or the error)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with sdpa_kernel([SDPA_BACKENDS[backend]]):
                F.scaled_dot_product_attention(q, k, v, **sdpa_kwargs)
            torch.cuda.synchronize()
        except RuntimeError as e:
            return _sdpa_reason(backend, [str(w.message) for w in caught]) or _first_line(str(e))
    return None


def measure_shape(
    b: int,
    h: int,
    sq: int,
    sk: int,
    causal: bool = False,
    eager_reps: int = 200,
    backends: tuple[str, ...] = tuple(SDPA_BACKENDS),
    *,
    d: int = DEFAULT_HEAD_DIM,
    dtype: torch.dtype = torch.float16,
    heads_kv: int | None = None,
    window: Sequence[int] | None = None,
    alignment: str = "top_left",
    interleave: bool = False,
    graph_calls: int = 20,
    graph_reps: int = 30,
    seed: int = 0,
    catch_errors: bool = False,
) -> dict:
    """Times flashcore and every SDPA backend on the same inputs in this process.

    h: query heads; heads_kv (default h) < h is grouped-query attention (SDPA with
    enable_gqa=True). A window, or bottom-right causal with sq != sk, goes to SDPA
    as an explicit boolean attn_mask built once here, outside the timing.
    interleave=True adds `interleaved_time_us` numbers with a torch.add between calls.
    catch_errors=True records a flashcore call that raises as row["flashcore"] =
    None and row["flashcore_error"] instead of raising."""
    hkv = h if heads_kv is None else heads_kv
    window = None if window is None else [int(x) for x in window]
    dtype_name = {t: n for n, t in DTYPES.items()}.get(dtype, str(dtype))
    q, k, v = make_inputs(b, h, sq, sk, d, seed, dtype=dtype, heads_kv=hkv)
    fl = flops(b, h, sq, sk, d, causal, window, alignment)
    row: dict = {
        "shape": [b, h, sq, sk, d],
        "batch": b,
        "heads_q": h,
        "heads_kv": hkv,
        "seqlen_q": sq,
        "seqlen_k": sk,
        "head_dim": d,
        "dtype": dtype_name,
        "causal": causal,
        "window": window,
        "alignment": alignment,
        "flops": fl,
        "graph_calls": graph_calls,
        "graph_reps": graph_reps,
    }

    ours_kwargs: dict = {"causal": causal}
    sdpa_kwargs: dict = {"is_causal": causal}
    if hkv != h:
        ours_kwargs["enable_gqa"] = True
        sdpa_kwargs["enable_gqa"] = True
    if window is not None:
        ours_kwargs["window"] = tuple(window)
    if alignment != "top_left":
        ours_kwargs["alignment"] = alignment
    if window is not None or (causal and alignment != "top_left" and sq != sk):
        sdpa_kwargs["attn_mask"] = _reference.visible_mask(
            sq, sk, causal, window, alignment, q.device
        )
        sdpa_kwargs["is_causal"] = False
    row["sdpa_call"] = ", ".join(
        "attn_mask (bool, Sq x Sk)" if key == "attn_mask" else f"{key}={val}"
        for key, val in sdpa_kwargs.items()
    )

    op = None
    if interleave:
        a = torch.randn(INTERLEAVE_NUMEL, device=q.device).to(dtype)
        c = torch.empty_like(a)

        def op():
            return torch.add(a, a, out=c)

        row["interleave_op"] = f"torch.add on ({INTERLEAVE_NUMEL},) {row['dtype']}"

    def timed(fn) -> dict:
        t = graph_time_us(fn, graph_calls, graph_reps)
        entry = {"kernel_us": t, "tflops": fl / t / 1e6}
        if op is not None:
            t_i, t_op = interleaved_time_us(fn, op, graph_calls, graph_reps)
            entry.update(kernel_us_interleaved=t_i, tflops_interleaved=fl / t_i / 1e6)
            entry["interleave_op_us"] = t_op
        if eager_reps:
            p50, p90 = eager_latency_us(fn, eager_reps)
            entry.update(eager_p50_us=p50, eager_p90_us=p90)
        return entry

    def ours():
        return fused_attention(q, k, v, **ours_kwargs)

    try:
        ours()
        torch.cuda.synchronize()
        mine = timed(ours)
    except (RuntimeError, TypeError, ValueError) as e:
        if not catch_errors:
            raise
        mine = None
        row["flashcore_error"] = f"{type(e).__name__}: {_first_line(str(e))}"
    row["flashcore"] = mine
    if mine is not None:
        row["config"] = _debug.chosen_config(q, k, v, **ours_kwargs)
        by_name = {c["name"]: c for c in _debug.configs()}
        if by_name[row["config"]]["sm90"]:
            # The Hopper family served this row: time the mma.sync config the
            # heuristic would take without it too, on the same inputs.
            props = _debug.device_desc(q.device)
            other = _debug.heuristic(b, h, sq, sk, d, **props, tma_ok=False)
            with _debug.forced_config(other):
                t = graph_time_us(ours, graph_calls, graph_reps)
            row["mma_sync"] = {"config": other, "kernel_us": t, "tflops": fl / t / 1e6}

    def theirs():
        return F.scaled_dot_product_attention(q, k, v, **sdpa_kwargs)

    for name in backends:
        why = sdpa_refusal(name, q, k, v, **sdpa_kwargs)
        if why is not None:
            row[name] = None
            row.setdefault("sdpa_unsupported", {})[name] = why
            continue
        # The backend is pinned outside the timed region: the context manager's
        # own cost is not SDPA's per-call latency.
        with sdpa_kernel([SDPA_BACKENDS[name]]):
            entry = timed(theirs)
        if mine is not None:
            for ratio, key in (
                ("ratio", "kernel_us"),
                ("ratio_interleaved", "kernel_us_interleaved"),
                ("eager_ratio", "eager_p50_us"),
            ):
                if key in entry:
                    entry[ratio] = mine[key] / entry[key]
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
