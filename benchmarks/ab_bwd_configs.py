"""A/B of backward kernel configs of one build, in one process, on the same inputs:
each config forced through flashcore._debug.forced_bwd_config, SDPA's flash
backend (FA2) beside them, timed in interleaved rounds (every variant once per
round, the order rotated each round), medians over rounds.

    python benchmarks/ab_bwd_configs.py --configs bwd_d64,bwd_d64_s \\
        [--dtype fp16,bf16] [--shapes "4,16,2048;8,16,4096"] [--rounds 5] [--json ab.json]

The config name auto stands for the heuristic's pick (no forcing), so the default
path can be timed beside a forced config. NAME/gN forces config NAME with the GQA
group split N (flashcore._debug.forced_bwd_gqa_split), e.g. sm90_bwd_d128/g2 at
--shapes "8,8/2,512" --head-dim 128.

The backward's time is (fwd+bwd) - fwd by CUDA-graph replay (bench_bwd.py's
method); TFLOP/s = 2.5 x the forward's FLOPs of the visible pairs / that time.
Every config must serve the shapes' head dim (its tile width or narrower: pass
--head-dim), non-causal and causal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab_configs import parse_shapes, rotated  # the forward A/B's helpers

BWD_FLOP_FACTOR = 2.5


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--configs",
        required=True,
        help="backward config names, comma-separated; auto: the heuristic's pick",
    )
    p.add_argument("--dtype", default="fp16", help="fp16, bf16 or both, comma-separated")
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--shapes", default="4,16,2048;8,16,4096;2,16,16384")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-flash", action="store_true", help="leave SDPA's flash backend out")
    p.add_argument("--json", help="write the rows to this file")
    args = p.parse_args(argv)
    args.configs = [c for c in args.configs.split(",") if c]
    args.dtypes = [d for d in args.dtype.split(",") if d]
    args.shape_list = parse_shapes(args.shapes)
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    if not args.configs:
        p.error("--configs: give at least one backward config")
    return args


def time_case(args: argparse.Namespace, dtype_name: str, shape, causal: bool) -> dict:
    """One (dtype, shape, causal) case: every variant's backward time, interleaved
    rounds, medians."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from flashcore import _debug, fused_attention
    from flashcore._bench import DTYPES, flops, graph_time_us, make_inputs

    b, hq, hkv, s = shape
    dtype = DTYPES[dtype_name]
    q, k, v = (
        t.requires_grad_(True)
        for t in make_inputs(b, hq, s, s, args.head_dim, dtype=dtype, heads_kv=hkv)
    )
    dout = torch.randn(b, hq, s, args.head_dim, device="cuda").to(dtype)
    gqa = hkv != hq
    fl = flops(b, hq, s, s, args.head_dim, causal, None)

    def bwd_us(attn) -> float:
        def fwd():
            return attn()

        def fwd_bwd():
            return torch.autograd.grad(attn(), (q, k, v), dout)

        fwd_bwd()  # errors surface here, outside the graphs
        torch.cuda.synchronize()
        both = graph_time_us(fwd_bwd, args.calls, args.reps)
        return both - graph_time_us(fwd, args.calls, args.reps)

    def forced(name: str):
        if name == "auto":  # the heuristic's pick (config and GQA split)
            return lambda: fused_attention(q, k, v, causal=causal, enable_gqa=gqa)

        config, _, split = name.partition("/g")

        def attn():
            # read by the forward, used by its backward
            with _debug.forced_bwd_config(config), contextlib.ExitStack() as stack:
                if split:
                    stack.enter_context(_debug.forced_bwd_gqa_split(int(split)))
                return fused_attention(q, k, v, causal=causal, enable_gqa=gqa)

        return attn

    def flash():
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

    variants = {name: forced(name) for name in args.configs}
    if not args.no_flash:
        variants["flash"] = flash
    times: dict[str, list[float]] = {key: [] for key in variants}
    for r in range(args.rounds):
        for key in rotated(list(variants), r):
            times[key].append(bwd_us(variants[key]))
    med = {key: statistics.median(ts) for key, ts in times.items()}
    return {
        "dtype": dtype_name,
        "shape": [b, hq, hkv, s, args.head_dim],
        "causal": causal,
        "bwd_us": med,
        "tflops": {key: BWD_FLOP_FACTOR * fl / (us * 1e6) for key, us in med.items()},
        "rounds": times,
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rows = []
    for dtype_name in args.dtypes:
        for shape in args.shape_list:
            for causal in (False, True):
                row = time_case(args, dtype_name, shape, causal)
                rows.append(row)
                b, hq, hkv, s, d = row["shape"]
                cells = "  ".join(f"{key} {t:6.1f}" for key, t in row["tflops"].items())
                print(
                    f"{dtype_name} {b},{hq}/{hkv},{s},{d} causal={causal!s:5} bwd TFLOP/s: {cells}",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": argv, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
