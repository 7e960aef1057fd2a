"""A/B of flashcore builds in one device run: each build in its own process
(installed into its own --target directory), the same inputs and timer for all,
rounds alternating between builds so drift hits every build alike.

    pip install --no-deps --target /tmp/t_old old.whl
    pip install --no-deps --target /tmp/t_new new.whl
    python benchmarks/ab_builds.py --build old=/tmp/t_old --build new=/tmp/t_new \\
        [--dtype fp16] [--head-dim 64] [--shapes "1,8,1024;8,16,4096"] [--rounds 2] [--json ab.json]

Kernel time: CUDA-graph replay of 20 back-to-back calls, median of 30 replays
(the timer of flashcore._bench), for non-causal and causal; eager latency: CUDA
events around one call with grad mode on (inputs needing no gradient), median of
300 calls. SDPA's cuDNN
backend is timed in the same process as a yardstick of run-to-run drift. The
table gives each build's median over rounds and its time ratio to the first
build. Only ``fused_attention(q, k, v, causal)`` is called, so builds back to
flashcore 0.1 (fp16, head dim 64) can take part.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

DEFAULT_SHAPES = "1,8,256;1,8,512;1,8,1024;4,16,2048;8,16,4096;2,16,16384"


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for part in text.split(";"):
        b, h, s = (int(x) for x in part.split(","))
        shapes.append((b, h, s))
    return shapes


def eager_p50(fn, reps: int = 300) -> float:
    """Median of CUDA events around one eager call of fn, in microseconds, the
    GPU idle before each (the timer does not come from the build under test;
    benchmarks/eager_ab.py uses it too)."""
    import torch

    for _ in range(10):
        fn()
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000)
    return statistics.median(times)


def worker(args: argparse.Namespace) -> None:
    """Runs inside one build's process: prints one JSON line per case."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import flashcore

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]

    def graph_us(fn, calls=20, reps=30):
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
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1000 / calls)
        return statistics.median(times)

    for b, h, s in parse_shapes(args.shapes):
        for causal in (False, True):
            gen = torch.Generator(device="cuda").manual_seed(0)
            q, k, v = (
                torch.randn(b, h, s, args.head_dim, device="cuda", generator=gen).to(dtype)
                for _ in range(3)
            )
            call = lambda q=q, k=k, v=v, c=causal: flashcore.fused_attention(q, k, v, c)
            # Eager latency with grad mode on and inputs that need no gradient:
            # the path of an inference call outside torch.no_grad().
            eager = eager_p50(call)
            with torch.no_grad():
                ours = graph_us(call)
                with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                    cudnn = graph_us(
                        lambda q=q, k=k, v=v, c=causal: F.scaled_dot_product_attention(
                            q, k, v, is_causal=c
                        )
                    )
            row = {
                "shape": [b, h, s],
                "causal": causal,
                "us": ours,
                "cudnn_us": cudnn,
                "eager_us": eager,
            }
            print(json.dumps(row), flush=True)


def summarize(builds: list[str], rows: list[dict]) -> list[dict]:
    """Median per (build, shape, causal) over rounds, and the ratio to builds[0]."""
    table = []
    cases = sorted({(tuple(r["shape"]), r["causal"]) for r in rows}, key=lambda c: (c[0], c[1]))
    for shape, causal in cases:
        entry = {"shape": list(shape), "causal": causal}
        for name in builds:
            sel = [
                r
                for r in rows
                if r["build"] == name and tuple(r["shape"]) == shape and r["causal"] == causal
            ]
            if sel:
                entry[name] = {
                    "us": statistics.median(r["us"] for r in sel),
                    "eager_us": statistics.median(r.get("eager_us", float("nan")) for r in sel),
                    "vs_cudnn": statistics.median(r["us"] / r["cudnn_us"] for r in sel),
                    "runs": [r["us"] for r in sel],
                }
        base = entry.get(builds[0])
        for name in builds[1:]:
            if base and name in entry:
                entry[name]["ratio"] = entry[name]["us"] / base["us"]
        table.append(entry)
    return table


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--build",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a build: its name and the --target directory it is installed in",
    )
    p.add_argument("--dtype", choices=["fp16", "bf16"], default="fp16")
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help='"B,H,S;..." (default: README shapes)')
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", help="write the raw rows and the table to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if len(args.build) < 2:
        p.error("give at least two --build NAME=DIR")
    builds = []
    for spec in args.build:
        name, sep, path = spec.partition("=")
        if not sep or not name or not os.path.isdir(path):
            p.error(f"--build must be NAME=DIR with an existing DIR, got {spec!r}")
        builds.append((name, path))
    rows = []
    for _ in range(args.rounds):
        for name, path in builds:
            env = dict(os.environ, PYTHONPATH=path)
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                "--dtype",
                args.dtype,
                "--head-dim",
                str(args.head_dim),
                "--shapes",
                args.shapes,
            ]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            rows += [dict(json.loads(line), build=name) for line in out.splitlines() if line]
    names = [n for n, _ in builds]
    table = summarize(names, rows)
    print(
        f"{args.dtype}, head dim {args.head_dim}; kernel us (median of {args.rounds} rounds), "
        f"ratio = time / {names[0]}'s"
    )
    for entry in table:
        cells = []
        for name in names:
            e = entry.get(name)
            if e:
                ratio = f" ({e['ratio']:.3f})" if "ratio" in e else ""
                cells.append(f"{name} {e['us']:.2f}{ratio} eager {e['eager_us']:.1f}")
        shape = ",".join(map(str, entry["shape"]))
        print(
            f"  {shape:>12} {'causal' if entry['causal'] else 'non-causal':>10}  "
            + "  ".join(cells)
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"builds": dict(builds), "args": vars(args), "rows": rows, "table": table},
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
