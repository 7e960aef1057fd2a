"""Forward benchmark: flashcore next to every SDPA backend, same process, same inputs.

    python benchmarks/bench_fwd.py --json results.json [--quick]

Prints, per shape and causal mode: kernel time (CUDA-graph replay, median),
eager per-call latency (events around one call, p50) and its ratio to the best
SDPA backend's, TFLOP/s, and the ratio flashcore / backend (below 1.0 means
flashcore is faster). Also the eager latency of a bare torch.add on a
(1,8,512,64) tensor by the same method: the floor any torch op pays on the
machine at hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import torch

SMALL = [(1, 8, 256), (1, 8, 512), (1, 8, 1024)]
LARGE = [(4, 16, 2048), (8, 16, 4096), (2, 16, 16384)]


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write all numbers to this file")
    parser.add_argument("--commit", default=None, help="commit id to record (default: git)")
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_fwd: no CUDA GPU available", file=sys.stderr)
        return 1

    from flashcore import build_info
    from flashcore._bench import (
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
    )
    print(json.dumps(env))
    x = make_inputs(1, 8, 512, 512)[0]
    floor_p50, floor_p90 = eager_latency_us(lambda: torch.add(x, x))
    env["eager_floor_torch_add_us"] = {"p50": floor_p50, "p90": floor_p90}
    print(
        f"eager floor: torch.add on a (1, 8, 512, 64) fp16 tensor, events around one call: "
        f"p50 {floor_p50:.1f} us, p90 {floor_p90:.1f} us"
    )
    shapes = [(s, c) for s in SMALL for c in (False, True)]
    if not args.quick:
        shapes += [(s, c) for s in LARGE for c in (False, True)]
    names = list(SDPA_BACKENDS)
    print(
        f"{'B,H,S,D':>16} {'causal':>6} {'ours us':>9} {'TFLOP/s':>8} {'eager':>7} {'/best':>5}"
        + "".join(f" {n:>9} {'ratio':>5}" for n in names)
        + "   (backend TFLOP/s | us)"
    )
    rows = []
    for (b, h, s), causal in shapes:
        large = b * h * s >= 4 * 16 * 2048
        # math materializes S: skip it where it would need GBs and seconds
        backends = tuple(n for n in names if not (large and n == "math"))
        # eager latency too; fewer repeats where one call takes milliseconds
        row = measure_shape(b, h, s, s, causal, eager_reps=20 if large else 200, backends=backends)
        rows.append(row)
        ours = row["flashcore"]
        eager = f"{ours['eager_p50_us']:7.1f}" if "eager_p50_us" in ours else f"{'-':>7}"
        # eager latency relative to the fastest SDPA backend's, eager too
        theirs = [row[n]["eager_p50_us"] for n in names if row.get(n) and "eager_p50_us" in row[n]]
        if "eager_p50_us" in ours and theirs:
            eager += f" {ours['eager_p50_us'] / min(theirs):5.2f}"
        else:
            eager += f" {'-':>5}"
        line = (
            f"{(b, h, s, 64)!s:>16} {causal!s:>6} {ours['kernel_us']:9.1f} "
            f"{ours['tflops']:8.1f} {eager}"
        )
        for n in names:
            e = row.get(n)
            if e is None:
                line += f" {'n/a':>9} {'':>5}"
            else:
                val = e["tflops"] if large else e["kernel_us"]
                line += f" {val:9.1f} {e['ratio']:5.2f}"
        print(line, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
