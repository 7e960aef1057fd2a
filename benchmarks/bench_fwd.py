"""Forward benchmark: flashcore next to every SDPA backend, same process, same inputs.

    python benchmarks/bench_fwd.py [--dtype fp16,bf16] [--head-dim 64,128] [--quick]
        [--shapes "B,H,S;..."] [--gqa HQ/HKV] [--window LEFT]
        [--json out.json] [--plot out.png] [--commit ID]
    python benchmarks/bench_fwd.py --from-json out.json [--plot out.png]   # no GPU needed

Rows: every dtype x head dim x shape, causal off and on. Shapes: --shapes (H may
be HQ/HKV for grouped-query attention), else the sequence sweep with --plot,
else the README shapes (--quick: the small ones); --gqa adds (1, HQ/HKV, 8192);
--window adds causal sliding-window rows, window (LEFT, 0), over --shapes or
(1, 16, 16384). Without --shapes or --plot, --gqa and --window replace the README
shapes: the default table and the GQA rows are two runs.

Prints, per row: kernel time (CUDA-graph replay, median), eager per-call latency
(events around one call, p50) and its ratio to the best SDPA backend's, TFLOP/s
(matmul FLOPs of the visible (query, key) pairs only), and the ratio flashcore /
backend (below 1.0 means flashcore is faster). Small rows are also timed
interleaved: a torch.add between consecutive calls, its own time subtracted, so
that back-to-back overlap from programmatic dependent launch does not count.
Also the eager latency of a bare torch.add on a (1, 8, 512, D) tensor by the same
method: the floor any torch op pays on the machine at hand.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

SMALL = [(1, 8, 256), (1, 8, 512), (1, 8, 1024)]
LARGE = [(4, 16, 2048), (8, 16, 4096), (2, 16, 16384)]
# --plot's sequence sweep: B * S = 32768 tokens of 16 heads at every length.
PLOT_SEQLENS = (512, 1024, 2048, 4096, 8192, 16384)
PLOT_TOKENS, PLOT_HEADS = 32768, 16
GQA_BATCH, GQA_SEQLEN = 1, 8192
WINDOW_SHAPE = (1, 16, 16384)
BACKENDS = ("flash", "cudnn", "efficient", "math")  # SDPA's, in _bench.SDPA_BACKENDS order
DTYPE_NAMES = ("fp16", "bf16")  # _bench.DTYPES' keys
MATPLOTLIB_MISSING = (
    "bench_fwd: --plot needs matplotlib, which is not installed: "
    "pip install 'flashcore[bench]' (or pip install matplotlib)"
)


def is_large(b: int, h: int, s: int) -> bool:
    """Rows timed with fewer repeats, shown in TFLOP/s, without SDPA's math backend
    (it materializes S: GBs and seconds) and without the interleaved timing."""
    return b * h * s >= 4 * 16 * 2048


def git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                check=False,
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def _items(values: list[str] | None, default: str) -> list[str]:
    """Repeatable flag values, each possibly a comma list, flattened."""
    return [x.strip() for v in (values or [default]) for x in v.split(",") if x.strip()]


def parse_heads(text: str) -> tuple[int, int]:
    """ "16" -> (16, 16); "32/8" -> (32, 8)."""
    hq, _, hkv = text.partition("/")
    hq_i, hkv_i = int(hq), int(hkv or hq)
    if hq_i < 1 or hkv_i < 1 or hq_i % hkv_i:
        raise ValueError(f"heads must be HQ or HQ/HKV with HQ % HKV == 0, got {text!r}")
    return hq_i, hkv_i


def parse_shapes(text: str) -> list[tuple[int, int, int, int]]:
    """ "1,8,512;4,32/8,2048" -> [(B, HQ, HKV, S), ...]."""
    shapes = []
    for item in text.replace(" ", "").split(";"):
        if not item:
            continue
        parts = item.split(",")
        if len(parts) != 3:
            raise ValueError(f"each shape must be B,H,S (H may be HQ/HKV), got {item!r}")
        hq, hkv = parse_heads(parts[1])
        b, s = int(parts[0]), int(parts[2])
        if b < 1 or s < 1:
            raise ValueError(f"B and S must be >= 1, got {item!r}")
        shapes.append((b, hq, hkv, s))
    return shapes


def plan(args: argparse.Namespace) -> list[dict]:
    """The rows to measure, per dtype and head dim: dicts of batch, heads_q,
    heads_kv, seqlen, causal, window."""
    given = parse_shapes(args.shapes) if args.shapes else None
    if given is not None:
        base = given
    elif args.plot:
        lens = [s for s in PLOT_SEQLENS if not args.quick or s <= 2048]
        base = [(max(1, PLOT_TOKENS // s), PLOT_HEADS, PLOT_HEADS, s) for s in lens]
    elif args.gqa or args.window is not None:
        base = []
    else:
        base = [(b, h, h, s) for b, h, s in SMALL + ([] if args.quick else LARGE)]
    specs = [(shape, causal, None) for shape in base for causal in (False, True)]
    if args.gqa:
        hq, hkv = parse_heads(args.gqa)
        specs += [((GQA_BATCH, hq, hkv, GQA_SEQLEN), c, None) for c in (False, True)]
    if args.window is not None:
        b, h, s = WINDOW_SHAPE
        for shape in given if given is not None else [(b, h, h, s)]:
            specs.append((shape, True, [args.window, 0]))
    return [
        {"batch": b, "heads_q": hq, "heads_kv": hkv, "seqlen": s, "causal": c, "window": w}
        for (b, hq, hkv, s), c, w in specs
    ]


def row_config(row: dict) -> dict:
    """A result row's configuration; rows of older JSON files (fp16, no GQA, no
    window) included."""
    b, hq, sq, sk, d = row["shape"]
    return {
        "batch": b,
        "heads_q": hq,
        "heads_kv": row.get("heads_kv", hq),
        "seqlen_q": sq,
        "seqlen_k": sk,
        "head_dim": d,
        "dtype": row.get("dtype", "fp16"),
        "causal": row["causal"],
        "window": row.get("window"),
        "alignment": row.get("alignment", "top_left"),
    }


def _heads_text(c: dict) -> str:
    hq, hkv = c["heads_q"], c["heads_kv"]
    return f"{hq}" if hq == hkv else f"{hq}/{hkv}"


def _shape_text(c: dict) -> str:
    s = c["seqlen_k"] if c["seqlen_q"] == c["seqlen_k"] else f"{c['seqlen_q']}:{c['seqlen_k']}"
    return f"{c['batch']},{_heads_text(c)},{s},{c['head_dim']}"


def _window_text(c: dict) -> str:
    w = c["window"]
    return "-" if w is None else f"{w[0]},{w[1]}"


def backend_names(rows: list[dict]) -> list[str]:
    return [n for n in BACKENDS if any(n in row for row in rows)]


def notes(rows: list[dict]) -> list[str]:
    """What the table's columns mean, and how the special rows call SDPA."""
    out = [
        (
            "kernel us: CUDA-graph replay of back-to-back calls, median; eager: CUDA events "
            "around one call, p50, and /best = flashcore's / the fastest SDPA backend's"
        ),
        (
            "ratio = flashcore / backend kernel time (below 1.0: flashcore faster); backend "
            "columns show us on small rows, TFLOP/s on large rows (B*Hq*S >= 131072), "
            "where SDPA's math backend is skipped (n/a)"
        ),
        "TFLOP/s: 4 * D * B * Hq * (visible (query, key) pairs) / kernel time",
    ]
    if any("interleave_op" in r or r.get("interleave") for r in rows):
        out.append(
            "interleaved (small rows): a graph of [torch.add on 1024 elements, attention] "
            "x calls minus a graph of the torch.add alone, per call, median of paired "
            "replays: no overlap between back-to-back attention calls (PDL)"
        )
    if any(r.get("heads_kv", r.get("heads_q")) != r.get("heads_q") for r in rows):
        out.append("GQA rows (H = HQ/HKV): SDPA called with enable_gqa=True")
    if any(r.get("window") is not None for r in rows):
        out.append(
            "window rows: flashcore window=(LEFT, RIGHT) with causal=True; the reference is "
            "SDPA with an explicit boolean attn_mask (Sq x Sk, built once outside the "
            "timing; is_causal off), which computes every (query, key) pair; TFLOP/s counts "
            "visible pairs only, for every backend; a backend that refuses the mask: n/a"
        )
    return out


def header(names: list[str]) -> str:
    return (
        f"{'dtype':>5} {'B,H,S,D':>18} {'causal':>6} {'window':>9} {'ours us':>9} "
        f"{'TFLOP/s':>8} {'eager':>7} {'/best':>5}"
        + "".join(f" {n:>9} {'ratio':>5}" for n in names)
        + "   (backend TFLOP/s | us)"
    )


def format_row(row: dict, names: list[str]) -> list[str]:
    """The row's table line, and a second line with the interleaved times if any."""
    c = row_config(row)
    large = is_large(c["batch"], c["heads_q"], c["seqlen_q"])
    head = f"{c['dtype']:>5} {_shape_text(c):>18} {c['causal']!s:>6} {_window_text(c):>9}"
    ours = row.get("flashcore")
    if ours is None:
        return [f"{head} flashcore error: {row.get('flashcore_error', '?')}"]
    eager = f"{ours['eager_p50_us']:7.1f}" if "eager_p50_us" in ours else f"{'-':>7}"
    # eager latency relative to the fastest SDPA backend's, eager too
    theirs = [row[n]["eager_p50_us"] for n in names if row.get(n) and "eager_p50_us" in row[n]]
    if "eager_p50_us" in ours and theirs:
        eager += f" {ours['eager_p50_us'] / min(theirs):5.2f}"
    else:
        eager += f" {'-':>5}"
    line = f"{head} {ours['kernel_us']:9.1f} {ours['tflops']:8.1f} {eager}"
    for n in names:
        e = row.get(n)
        if e is None:
            line += f" {'n/a':>9} {'':>5}"
        else:
            val = e["tflops"] if large else e["kernel_us"]
            line += f" {val:9.1f} {e['ratio']:5.2f}"
    lines = [line]
    if "kernel_us_interleaved" in ours:
        line = (
            f"{'':>5} {'interleaved':>18} {'':>6} {'':>9} {ours['kernel_us_interleaved']:9.1f} "
            f"{ours['tflops_interleaved']:8.1f} {'':>7} {'':>5}"
        )
        for n in names:
            e = row.get(n)
            if e is None or "kernel_us_interleaved" not in e:
                line += f" {'n/a':>9} {'':>5}"
            else:
                val = e["tflops_interleaved"] if large else e["kernel_us_interleaved"]
                line += f" {val:9.1f} {e['ratio_interleaved']:5.2f}"
        lines.append(line + f"   (add alone {ours['interleave_op_us']:.1f} us, subtracted)")
    other = row.get("mma_sync")
    if other is not None:
        ratios = "".join(
            f", {row[n]['kernel_us'] / other['kernel_us']:.2f}x {n}" for n in names if row.get(n)
        )
        lines.append(
            f"{'':>5} {'mma.sync family':>18} {'':>6} {'':>9} {other['kernel_us']:9.1f} "
            f"{other['tflops']:8.1f}   ({other['config']}; served by {row['config']}{ratios} "
            "in throughput)"
        )
    return lines


def print_unsupported(rows: list[dict]) -> None:
    seen: dict[tuple[str, str], None] = {}
    for row in rows:
        for name, why in row.get("sdpa_unsupported", {}).items():
            seen[(name, why)] = None
    for name, why in seen:
        print(f"n/a: SDPA {name}: {why}")


def plot_rows(rows: list[dict], env: dict, path: Path) -> None:
    """TFLOP/s against sequence length: one subplot per masking mode (non-causal,
    causal, each window), one line per backend x (dtype, head dim, heads)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError as e:
        raise SystemExit(MATPLOTLIB_MISSING) from e

    colors = {"flashcore": "C3", "flash": "C0", "cudnn": "C2", "efficient": "C1", "math": "C7"}
    linestyles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "P", "X"]  # 7 and 4 coprime: 28 distinct pairs
    configs: dict[tuple, None] = {}  # (dtype, head dim, heads_q, heads_kv), first seen first
    panels: dict[str, dict] = {}
    for row in rows:
        c = row_config(row)
        if c["window"] is not None:
            mode = f"window ({c['window'][0]}, {c['window'][1]})"
            mode = f"causal, {mode}" if c["causal"] else mode
        else:
            mode = "causal" if c["causal"] else "non-causal"
        if c["alignment"] != "top_left":
            mode += f", {c['alignment']}"
        config = (c["dtype"], c["head_dim"], c["heads_q"], c["heads_kv"])
        configs.setdefault(config, None)
        panel = panels.setdefault(mode, {"lines": {}, "tokens": set(), "heads": set()})
        panel["tokens"].add(c["batch"] * c["seqlen_k"])
        panel["heads"].add(_heads_text(c))
        for backend in ("flashcore", *BACKENDS):
            e = row.get(backend)
            if e:
                line = panel["lines"].setdefault((backend, config), [])
                line.append((c["seqlen_k"], e["tflops"]))
    if not panels:
        raise SystemExit("bench_fwd: no rows to plot")
    order = ["non-causal", "causal"]
    modes = sorted(panels, key=lambda m: (order.index(m) if m in order else len(order), m))
    style_of = {
        cfg: (linestyles[i % len(linestyles)], markers[i % len(markers)])
        for i, cfg in enumerate(configs)
    }
    many_heads = len({(cfg[2], cfg[3]) for cfg in configs}) > 1

    def config_label(cfg) -> str:
        dtype, d, hq, hkv = cfg
        label = f"{dtype}, D={d}"
        if hq != hkv or many_heads:
            label += f", H={hq}" + (f"/{hkv}" if hq != hkv else "")
        return label

    fig, axes = plt.subplots(1, len(modes), figsize=(6.4 * len(modes), 5.0), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        panel = panels[mode]
        xs = sorted({x for pts in panel["lines"].values() for x, _ in pts})
        for (backend, cfg), pts in sorted(
            panel["lines"].items(), key=lambda kv: (kv[0][0] != "flashcore", kv[0])
        ):
            pts.sort()
            linestyle, marker = style_of[cfg]
            ax.plot(
                [x for x, _ in pts],
                [y for _, y in pts],
                color=colors.get(backend, "k"),
                linestyle=linestyle,
                marker=marker,
                markersize=4,
                linewidth=2.2 if backend == "flashcore" else 1.3,
                zorder=3 if backend == "flashcore" else 2,
            )
        title = mode
        if len(panel["tokens"]) == 1 and len(panel["heads"]) == 1:
            title += (
                f"  (B*S = {next(iter(panel['tokens']))} tokens, H = {next(iter(panel['heads']))})"
            )
        if mode.startswith(("window", "causal, window")):
            title += "\nSDPA reference: boolean attn_mask"
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x // 1024}K" if x >= 1024 and x % 1024 == 0 else str(x) for x in xs])
        ax.minorticks_off()
        ax.set_xlabel("sequence length S (Sq = Sk)")
        ax.set_ylabel("TFLOP/s")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    backend_handles = [
        Line2D(
            [],
            [],
            color=colors.get(b, "k"),
            linewidth=2.2 if b == "flashcore" else 1.3,
            label=b if b == "flashcore" else f"SDPA {b}",
        )
        for b in ("flashcore", *BACKENDS)
        if any(key[0] == b for p in panels.values() for key in p["lines"])
    ]
    config_handles = [
        Line2D(
            [],
            [],
            color="0.3",
            linestyle=style_of[cfg][0],
            marker=style_of[cfg][1],
            markersize=4,
            label=config_label(cfg),
        )
        for cfg in configs
    ]
    # two legend rows: colors name the backends, line styles the configs
    per_row = 6
    config_rows = -(-len(config_handles) // per_row)
    row_h = 0.045 * (5.0 / fig.get_figheight())
    fig.legend(
        handles=backend_handles,
        loc="lower center",
        bbox_to_anchor=(0.5, row_h * config_rows),
        ncol=len(backend_handles),
        frameon=False,
    )
    fig.legend(
        handles=config_handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(config_handles), per_row),
        frameon=False,
    )
    fig.suptitle(
        "flashcore forward vs SDPA backends: TFLOP/s = visible-pair matmul FLOPs / kernel time "
        "(CUDA-graph replay, median)\n"
        f"{env.get('gpu', '?')}, driver {env.get('driver', '?')}, torch {env.get('torch', '?')}, "
        f"CUDA {env.get('cuda', '?')}, commit {env.get('commit', '?')}, "
        f"{str(env.get('date', '?'))[:10]}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, row_h * (config_rows + 1) + 0.01, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dtype",
        action="append",
        metavar="{fp16,bf16}",
        help="input dtype(s): repeatable or a comma list (default fp16)",
    )
    parser.add_argument(
        "--head-dim",
        action="append",
        metavar="D",
        help="head dim(s), multiples of 8 in 8..256: repeatable or a comma list (default 64)",
    )
    parser.add_argument(
        "--shapes",
        metavar="B,H,S;...",
        help='shapes instead of the defaults, e.g. "1,8,512;4,32/8,2048" (H may be HQ/HKV)',
    )
    parser.add_argument(
        "--gqa",
        metavar="HQ/HKV",
        help=f"GQA rows ({GQA_BATCH}, HQ/HKV, {GQA_SEQLEN}), e.g. 32/8: besides --shapes "
        "or --plot's, else instead of the README shapes",
    )
    parser.add_argument(
        "--window",
        type=int,
        metavar="LEFT",
        help="add causal sliding-window rows, window (LEFT, 0), over --shapes or (1, 16, 16384)",
    )
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    parser.add_argument("--json", type=Path, help="write all numbers to this file")
    parser.add_argument("--commit", default=None, help="commit id to record (default: git)")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PATH.png",
        help="draw TFLOP/s against sequence length (needs matplotlib); "
        "without --shapes, sweeps S = 512..16384 at B*S = 32768, H = 16",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="print (and --plot) a saved --json file instead of measuring",
    )
    args = parser.parse_args()

    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print(MATPLOTLIB_MISSING, file=sys.stderr)
        return 2
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        env, rows = data["env"], data["rows"]
        print(json.dumps(env))
        floor = env.get("eager_floor_torch_add_us")
        if floor:
            print(f"eager floor: torch.add, events around one call: p50 {floor['p50']:.1f} us")
        for note in notes(rows):
            print(note)
        names = backend_names(rows)
        print(header(names))
        for row in rows:
            print("\n".join(format_row(row, names)))
        print_unsupported(rows)
        if args.plot:
            plot_rows(rows, env, args.plot)
        return 0

    try:
        dtypes = _items(args.dtype, "fp16")
        bad = [x for x in dtypes if x not in DTYPE_NAMES]
        if bad:
            raise ValueError(f"--dtype must be in {DTYPE_NAMES}, got {bad}")
        head_dims = [int(x) for x in _items(args.head_dim, "64")]
        bad = [d for d in head_dims if d % 8 or not 8 <= d <= 256]
        if bad:
            raise ValueError(f"--head-dim must be multiples of 8 in 8..256, got {bad}")
        if args.window is not None and args.window < 0:
            raise ValueError(f"--window LEFT must be >= 0, got {args.window}")
        specs = plan(args)
    except ValueError as e:
        parser.error(str(e))
    if not torch.cuda.is_available():
        print("bench_fwd: no CUDA GPU available", file=sys.stderr)
        return 1

    from flashcore import build_info
    from flashcore._bench import (
        DTYPES,
        SDPA_BACKENDS,
        eager_latency_us,
        env_info,
        make_inputs,
        measure_shape,
    )

    env = env_info()
    env.update(
        commit=args.commit or git_commit(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        flashcore=build_info()["version"],
        argv=sys.argv[1:],
    )
    print(json.dumps(env))
    x = make_inputs(1, 8, 512, 512, head_dims[0], dtype=DTYPES[dtypes[0]])[0]
    floor_p50, floor_p90 = eager_latency_us(lambda: torch.add(x, x))
    env["eager_floor_torch_add_us"] = {
        "p50": floor_p50,
        "p90": floor_p90,
        "shape": list(x.shape),
        "dtype": dtypes[0],
    }
    print(
        f"eager floor: torch.add on a {tuple(x.shape)} {dtypes[0]} tensor, events around one "
        f"call: p50 {floor_p50:.1f} us, p90 {floor_p90:.1f} us"
    )
    names = list(SDPA_BACKENDS)
    for note in notes(
        [{**s, "interleave": not is_large(s["batch"], s["heads_q"], s["seqlen"])} for s in specs]
    ):
        print(note)
    print(header(names))
    rows = []
    for dtype in dtypes:
        for d in head_dims:
            for spec in specs:
                b, hq, s = spec["batch"], spec["heads_q"], spec["seqlen"]
                large = is_large(b, hq, s)
                row = measure_shape(
                    b,
                    hq,
                    s,
                    s,
                    spec["causal"],
                    # eager latency too; fewer repeats where one call takes milliseconds
                    eager_reps=20 if large else 200,
                    # math materializes S: skip it where it would need GBs and seconds
                    backends=tuple(n for n in names if not (large and n == "math")),
                    d=d,
                    dtype=DTYPES[dtype],
                    heads_kv=spec["heads_kv"],
                    window=spec["window"],
                    interleave=not large,
                    graph_reps=10 if large else 30,
                    catch_errors=True,
                )
                rows.append(row)
                print("\n".join(format_row(row, names)), flush=True)
    print_unsupported(rows)
    failed = [r for r in rows if r["flashcore"] is None]
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        plot_rows(rows, env, args.plot)
    if failed:
        print(f"bench_fwd: flashcore failed on {len(failed)} of {len(rows)} rows", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
