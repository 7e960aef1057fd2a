"""Backward benchmark: flashcore's backward next to SDPA's flash and cuDNN backends
(and optionally efficient), same process, same inputs.

    python benchmarks/bench_bwd.py [--dtype fp16,bf16] [--head-dim 64,128] [--quick]
        [--shapes "B,H,S;..."] [--gqa HQ/HKV] [--window LEFT] [--gqa-split G]
        [--deterministic]
        [--backends flash,cudnn[,efficient]] [--json out.json] [--commit ID]
    python benchmarks/bench_bwd.py --from-json out.json    # no GPU needed

Rows: every dtype x head dim x shape, causal off and on. Shapes: --shapes (H may
be HQ/HKV), else issue 10's (4,16,2048), (8,16,4096), (2,16,16384) (--quick:
(1,8,1024) and (4,16,2048)); --gqa adds (1, HQ/HKV, 8192); --window adds causal
sliding-window rows, window (LEFT, 0), over --shapes or (1, 16, 16384). Without
--shapes, --gqa and --window replace the default shapes (as in bench_fwd.py): the
default table and the GQA rows are two runs.
A small GQA training shape, e.g. the GPT step's: --shapes "8,8/2,512" --head-dim 128.

--gqa-split G forces flashcore's GQA group split (flashcore._debug.forced_bwd_gqa_split)
on the GQA rows (G must divide each HQ/HKV); without it the heuristic picks. The
G that ran is recorded per row ("gqa_split") and shown after the row when > 1.

--deterministic also times flashcore's deterministic backward (deterministic=True)
on each row: entry "flashcore_det", its TFLOP/s and its time over the default
mode's ("cost") shown after the row.

Timing, per backend on the same q, k, v and output gradient: two CUDA graphs,
one replaying the training forward alone (inputs that require grad, so
flashcore runs fwd_train and SDPA its training forward), one the forward plus
torch.autograd.grad; each the median over replays of back-to-back calls. The
backward's time is their difference, (fwd+bwd) - fwd. TFLOP/s = 2.5 x the
forward's matmul FLOPs of the visible (query, key) pairs (flashcore._bench.flops:
causal about halves them) / backward time: the backward's 5 GEMMs against the
forward's 2. Rows are written like bench_fwd.py's, with op "bwd".
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fwd  # the forward bench's argument helpers (the scripts are not a package)

LARGE = [(4, 16, 2048), (8, 16, 4096), (2, 16, 16384)]
QUICK = [(1, 8, 1024), (4, 16, 2048)]
BACKENDS = ("flash", "cudnn", "efficient")
DEFAULT_BACKENDS = "flash,cudnn"
# Backward matmul FLOPs per forward FLOP: 5 GEMMs (S, dP, dV, dK, dQ) against 2.
BWD_FLOP_FACTOR = 2.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses and validates the command line; args.rows holds the planned rows
    (dicts of batch, heads_q, heads_kv, seqlen, causal, window), args.dtypes,
    args.head_dims and args.backend_list the lists."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dtype", action="append", metavar="{fp16,bf16}", help="default bf16")
    parser.add_argument(
        "--head-dim", action="append", metavar="D", help="multiples of 8 in 8..256 (default 128)"
    )
    parser.add_argument("--shapes", metavar="B,H,S;...", help="shapes instead of the defaults")
    parser.add_argument(
        "--gqa",
        metavar="HQ/HKV",
        help="GQA rows (1, HQ/HKV, 8192): besides --shapes, else instead of the defaults",
    )
    parser.add_argument("--window", type=int, metavar="LEFT", help="add causal window rows")
    parser.add_argument(
        "--gqa-split", type=int, metavar="G", help="force flashcore's GQA group split (GQA rows)"
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="also time flashcore's deterministic backward (its cost over the default)",
    )
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    parser.add_argument(
        "--backends",
        default=DEFAULT_BACKENDS,
        help=f"SDPA backends to compare, from {','.join(BACKENDS)} (default {DEFAULT_BACKENDS})",
    )
    parser.add_argument("--reps", type=int, default=10, help="graph replays per timing (median)")
    parser.add_argument("--json", type=Path, help="write all numbers to this file")
    parser.add_argument("--commit", default=None, help="commit id to record (default: git)")
    parser.add_argument("--from-json", type=Path, metavar="FILE", help="print a saved --json file")
    args = parser.parse_args(argv)
    if args.from_json:
        return args
    try:
        args.dtypes = bench_fwd._items(args.dtype, "bf16")
        bad = [x for x in args.dtypes if x not in bench_fwd.DTYPE_NAMES]
        if bad:
            raise ValueError(f"--dtype must be in {bench_fwd.DTYPE_NAMES}, got {bad}")
        args.head_dims = [int(x) for x in bench_fwd._items(args.head_dim, "128")]
        bad = [d for d in args.head_dims if d % 8 or not 8 <= d <= 256]
        if bad:
            raise ValueError(f"--head-dim must be multiples of 8 in 8..256, got {bad}")
        args.backend_list = [x for x in bench_fwd._items([args.backends], "") if x]
        bad = [x for x in args.backend_list if x not in BACKENDS]
        if bad:
            raise ValueError(f"--backends must be in {BACKENDS}, got {bad}")
        if args.window is not None and args.window < 0:
            raise ValueError(f"--window LEFT must be >= 0, got {args.window}")
        if args.reps < 1:
            raise ValueError(f"--reps must be >= 1, got {args.reps}")
        args.rows = plan(args)
        if args.gqa_split is not None:
            if args.gqa_split < 1:
                raise ValueError(f"--gqa-split G must be >= 1, got {args.gqa_split}")
            groups = sorted({r["heads_q"] // r["heads_kv"] for r in args.rows})
            bad = [q for q in groups if q > 1 and q % args.gqa_split]
            if bad:
                raise ValueError(
                    f"--gqa-split G must divide every GQA row's HQ/HKV, got {args.gqa_split} "
                    f"for groups of {bad}"
                )
    except ValueError as e:
        parser.error(str(e))
    return args


def plan(args: argparse.Namespace) -> list[dict]:
    """The rows to measure per dtype and head dim, as bench_fwd.plan's."""
    given = bench_fwd.parse_shapes(args.shapes) if args.shapes else None
    if given is not None:
        base = given
    elif args.gqa or args.window is not None:
        base = []
    else:
        base = [(b, h, h, s) for b, h, s in (QUICK if args.quick else LARGE)]
    specs = [(shape, causal, None) for shape in base for causal in (False, True)]
    if args.gqa:
        hq, hkv = bench_fwd.parse_heads(args.gqa)
        specs += [((bench_fwd.GQA_BATCH, hq, hkv, bench_fwd.GQA_SEQLEN), c, None) for c in (0, 1)]
    if args.window is not None:
        b, h, s = bench_fwd.WINDOW_SHAPE
        for shape in given if given is not None else [(b, h, h, s)]:
            specs.append((shape, True, [args.window, 0]))
    return [
        {"batch": b, "heads_q": hq, "heads_kv": hkv, "seqlen": s, "causal": bool(c), "window": w}
        for (b, hq, hkv, s), c, w in specs
    ]


def bwd_tflops(fwd_flops: float, bwd_us: float) -> float:
    """TFLOP/s of a backward that took bwd_us for a forward of fwd_flops."""
    return BWD_FLOP_FACTOR * fwd_flops / bwd_us / 1e6


def entry(fwd_us: float, fwd_bwd_us: float, fwd_flops: float) -> dict:
    """One backend's numbers: both graph times, their difference, its TFLOP/s."""
    bwd_us = fwd_bwd_us - fwd_us
    return {
        "fwd_us": fwd_us,
        "fwd_bwd_us": fwd_bwd_us,
        "bwd_us": bwd_us,
        "tflops": bwd_tflops(fwd_flops, bwd_us) if bwd_us > 0 else float("nan"),
    }


def header(names: list[str]) -> str:
    return (
        f"{'dtype':>5} {'B,H,S,D':>18} {'causal':>6} {'window':>9} {'bwd us':>9} {'TFLOP/s':>8}"
        + "".join(f" {n:>9} {'ratio':>5}" for n in names)
        + "   (backend TFLOP/s; ratio = flashcore / backend bwd time)"
    )


def format_row(row: dict, names: list[str]) -> str:
    c = bench_fwd.row_config(row)
    head = (
        f"{c['dtype']:>5} {bench_fwd._shape_text(c):>18} {c['causal']!s:>6} "
        f"{bench_fwd._window_text(c):>9}"
    )
    ours = row.get("flashcore")
    if ours is None:
        return f"{head} flashcore error: {row.get('flashcore_error', '?')}"
    line = f"{head} {ours['bwd_us']:9.1f} {ours['tflops']:8.1f}"
    for n in names:
        e = row.get(n)
        line += f" {'n/a':>9} {'':>5}" if e is None else f" {e['tflops']:9.1f} {e['ratio']:5.2f}"
    if row.get("gqa_split", 1) > 1:
        line += f"   G={row['gqa_split']}"
    det = row.get("flashcore_det")
    if det is not None:
        line += f"   det {det['tflops']:.1f} TFLOP/s, {det['cost']:.2f}x time"
    elif "flashcore_det_error" in row:
        line += f"   det error: {row['flashcore_det_error']}"
    return line


def measure(
    spec: dict,
    d: int,
    dtype_name: str,
    backends: list[str],
    reps: int,
    gqa_split: int | None,
    deterministic: bool = False,
) -> dict:
    """Times flashcore's and each SDPA backend's backward on the same inputs
    (flashcore's GQA group split forced to gqa_split on GQA rows, if given; with
    deterministic, flashcore's deterministic mode too)."""
    import contextlib

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel

    from flashcore import _debug, _reference, fused_attention
    from flashcore._bench import DTYPES, SDPA_BACKENDS, flops, graph_time_us, make_inputs

    b, hq, hkv, s = spec["batch"], spec["heads_q"], spec["heads_kv"], spec["seqlen"]
    causal, window = spec["causal"], spec["window"]
    dtype = DTYPES[dtype_name]
    q, k, v = (
        t.requires_grad_(True) for t in make_inputs(b, hq, s, s, d, dtype=dtype, heads_kv=hkv)
    )
    dout = torch.randn(b, hq, s, d, device="cuda").to(dtype)
    fl = flops(b, hq, s, s, d, causal, window)
    row: dict = {
        "op": "bwd",
        "shape": [b, hq, s, s, d],
        "batch": b,
        "heads_q": hq,
        "heads_kv": hkv,
        "seqlen_q": s,
        "seqlen_k": s,
        "head_dim": d,
        "dtype": dtype_name,
        "causal": causal,
        "window": window,
        "alignment": "top_left",
        "flops": fl,
        "bwd_flops": BWD_FLOP_FACTOR * fl,
        "graph_reps": reps,
    }
    ours_kw: dict = {"causal": causal, "enable_gqa": hkv != hq}
    sdpa_kw: dict = {"is_causal": causal, "enable_gqa": hkv != hq}
    if window is not None:
        ours_kw["window"] = tuple(window)
        sdpa_kw["attn_mask"] = _reference.visible_mask(s, s, causal, window, device=q.device)
        sdpa_kw["is_causal"] = False

    def timed(attn) -> dict:
        def fwd():
            return attn()

        def fwd_bwd():
            return torch.autograd.grad(attn(), (q, k, v), dout)

        fwd_bwd()  # errors surface here, outside the graphs
        torch.cuda.synchronize()
        calls = 5
        return entry(graph_time_us(fwd, calls, reps), graph_time_us(fwd_bwd, calls, reps), fl)

    forced = gqa_split is not None and hkv != hq
    try:
        row["gqa_split"] = gqa_split if forced else _debug.chosen_bwd_gqa_split(q, k)
        # The backward config that runs (a Hopper one on H100 / H200 grids of a
        # wave or more, unless a split is forced).
        row["bwd_config"] = _debug.chosen_bwd_config(
            q, k, v=v, dout=dout, gqa_split=gqa_split if forced else -1
        )
        with _debug.forced_bwd_gqa_split(gqa_split) if forced else contextlib.nullcontext():
            row["flashcore"] = timed(lambda: fused_attention(q, k, v, **ours_kw))
    except (RuntimeError, TypeError, ValueError) as e:
        row["flashcore"] = None
        row["flashcore_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
    if deterministic and row["flashcore"] is not None:
        det_kw = dict(ours_kw, deterministic=True)
        try:
            with _debug.forced_bwd_gqa_split(gqa_split) if forced else contextlib.nullcontext():
                det = timed(lambda: fused_attention(q, k, v, **det_kw))
            det["cost"] = det["bwd_us"] / row["flashcore"]["bwd_us"]
            # Always an mma.sync config: its cost is over the default row's config.
            det["bwd_config"] = _debug.chosen_bwd_config(q, k, True, v=v, dout=dout)
            det["gqa_split"] = (
                gqa_split if forced else _debug.chosen_bwd_gqa_split(q, k, True, v=v, dout=dout)
            )
            row["flashcore_det"] = det
        except (RuntimeError, TypeError, ValueError) as e:
            msg = str(e).strip().splitlines()[0][:200]
            row["flashcore_det_error"] = f"{type(e).__name__}: {msg}"
    for name in backends:
        try:
            with sdpa_kernel([SDPA_BACKENDS[name]]):
                e = timed(lambda: F.scaled_dot_product_attention(q, k, v, **sdpa_kw))
        except RuntimeError as exc:
            row[name] = None
            row.setdefault("sdpa_unsupported", {})[name] = str(exc).strip().splitlines()[0][:200]
            continue
        if row["flashcore"] is not None:
            e["ratio"] = row["flashcore"]["bwd_us"] / e["bwd_us"]
        row[name] = e
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        rows = data["rows"]
        names = [n for n in BACKENDS if any(n in r for r in rows)]
        print(json.dumps(data["env"]))
        print(header(names))
        for row in rows:
            print(format_row(row, names))
        return 0

    import torch

    if not torch.cuda.is_available():
        print("bench_bwd: no CUDA GPU available", file=sys.stderr)
        return 1
    from flashcore import build_info
    from flashcore._bench import env_info

    env = env_info()
    env.update(
        commit=args.commit or bench_fwd.git_commit(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        flashcore=build_info()["version"],
        argv=sys.argv[1:] if argv is None else argv,
        method="bwd = CUDA-graph (fwd+bwd) - graph (fwd), medians; TFLOP/s = 2.5 x fwd FLOPs / bwd",
    )
    print(json.dumps(env))
    print(header(args.backend_list))
    rows = []
    for dtype_name in args.dtypes:
        for d in args.head_dims:
            for spec in args.rows:
                row = measure(
                    spec,
                    d,
                    dtype_name,
                    args.backend_list,
                    args.reps,
                    args.gqa_split,
                    args.deterministic,
                )
                rows.append(row)
                print(format_row(row, args.backend_list), flush=True)
                torch.cuda.empty_cache()
    for row in rows:
        for name, why in row.get("sdpa_unsupported", {}).items():
            print(f"n/a: SDPA {name} at {row['shape']} causal={row['causal']}: {why}")
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
        print(f"wrote {args.json}")
    failed = [r for r in rows if r["flashcore"] is None]
    if failed:
        print(f"bench_bwd: flashcore failed on {len(failed)} of {len(rows)} rows", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
