"""A/B of kernel configs of one build, in one process, on the same inputs:
every config forced through flashcore._debug, SDPA's cuDNN backend beside them,
timed in interleaved rounds (each variant once per round, the order rotated
every round) and summarized by the median over rounds.

    python benchmarks/ab_configs.py --configs sm90_d128,d128_m128 \\
        [--dtype fp16,bf16] [--shapes "8,16,4096;2,16,16384"] [--rounds 5] [--json ab.json]

Why interleaved: on the H200 a single pass timed the variant measured first on
fresh inputs up to 14% faster than the identical config measured last (clocks
drift under sustained load; benchmarks/NOTES.md, v9), so one pass per variant
cannot separate configs a few percent apart. Each timing is a CUDA-graph replay
of `--calls` back-to-back calls, median of `--reps` replays. Every config must
serve the shape's head dim (the configs' tile width), for non-causal and causal.
Shapes may be B,HQ/HKV,S for grouped-query attention.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys


def parse_shapes(text: str) -> list[tuple[int, int, int, int]]:
    """ "B,H,S;..." (H may be HQ/HKV) -> [(batch, heads_q, heads_kv, seqlen)]."""
    shapes = []
    for part in text.split(";"):
        fields = part.split(",")
        if len(fields) != 3:
            raise ValueError(f"--shapes: expected B,H,S (H may be HQ/HKV), got {part!r}")
        b, h, s = fields
        hq, _, hkv = h.partition("/")
        shapes.append((int(b), int(hq), int(hkv or hq), int(s)))
    return shapes


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", required=True, help="config names, comma-separated")
    p.add_argument("--dtype", default="fp16", help="fp16, bf16 or both, comma-separated")
    p.add_argument("--shapes", default="4,16,2048;8,16,4096;2,16,16384")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-cudnn", action="store_true", help="leave SDPA's cuDNN out")
    p.add_argument("--json", help="write the rows to this file")
    args = p.parse_args(argv)
    args.configs = [c for c in args.configs.split(",") if c]
    args.dtypes = [d for d in args.dtype.split(",") if d]
    args.shape_list = parse_shapes(args.shapes)
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    return args


def rotated(keys: list[str], r: int) -> list[str]:
    """The timing order of round r: the keys rotated by r."""
    k = r % len(keys)
    return keys[k:] + keys[:k]


def variants(q, k, v, causal: bool, configs: list[str], cudnn: bool) -> dict:
    """{name: a call of that config (forced), and "cudnn": SDPA's cuDNN backend}."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from flashcore import _debug, fused_attention

    gqa = k.shape[1] != q.shape[1]

    def forced(name):
        def call():
            with _debug.forced_config(name):
                return fused_attention(q, k, v, causal=causal, enable_gqa=gqa)

        return call

    fns = {name: forced(name) for name in configs}
    if cudnn:

        def sdpa():
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

        fns["cudnn"] = sdpa
    return fns


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import torch

    from flashcore import _bench, _debug

    by_name = {c["name"]: c for c in _debug.configs()}
    unknown = [c for c in args.configs if c not in by_name]
    if unknown:
        raise SystemExit(f"--configs: unknown {unknown}; compiled: {sorted(by_name)}")
    widths = {by_name[c]["head_dim"] for c in args.configs}
    if len(widths) != 1:
        raise SystemExit(f"--configs: one tile head dim at a time, got {sorted(widths)}")
    d = widths.pop()
    rows = []
    for dtype in args.dtypes:
        for b, hq, hkv, s in args.shape_list:
            q, k, v = _bench.make_inputs(b, hq, s, s, d, dtype=_bench.DTYPES[dtype], heads_kv=hkv)
            for causal in (False, True):
                fns = variants(q, k, v, causal, args.configs, not args.no_cudnn)
                keys = list(fns)
                times: dict[str, list[float]] = {key: [] for key in keys}
                with torch.no_grad():
                    for r in range(args.rounds):
                        for key in rotated(keys, r):
                            times[key].append(_bench.graph_time_us(fns[key], args.calls, args.reps))
                fl = _bench.flops(b, hq, s, s, d, causal, None, "top_left")
                row = {"dtype": dtype, "shape": [b, hq, hkv, s, d], "causal": causal}
                for key in keys:
                    med = statistics.median(times[key])
                    row[key] = {
                        "us": med,
                        "tflops": fl / med / 1e6,
                        "spread": max(times[key]) / min(times[key]),
                    }
                rows.append(row)
                text = "  ".join(f"{key} {row[key]['tflops']:6.1f}" for key in keys)
                print(f"{dtype} {b},{hq}/{hkv},{s},{d} causal={causal!s:5} TFLOP/s: {text}",
                      flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": argv, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
