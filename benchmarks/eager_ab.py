"""Per-call host cost of flashcore builds on one small shape (issue 10's "the
no-grad path pays nothing": eager latency before and after, within 1 us).

    pip install --no-deps --target /tmp/t_old old.whl
    pip install --no-deps --target /tmp/t_new new.whl
    python benchmarks/eager_ab.py --build old=/tmp/t_old --build new=/tmp/t_new \\
        [--rounds 6] [--core 3]

Each round runs every build in its own process (PYTHONPATH = its directory),
pinned to one CPU core with taskset, alternating builds. Per process, on
(1, 8, 256, 64) fp16, whose kernel (about 3.5 us) is shorter than the host path:
- loop_grad_on / loop_no_grad: host time per call of fused_attention over 3000
  back-to-back calls (grad mode on with inputs that need no gradient, the path
  of an inference call outside torch.no_grad(); and under torch.no_grad());
- loop_op: the same for torch.ops.flashcore.fwd called directly (the C++ op
  without the Python wrapper);
- loop_empty_like: torch.empty_like, flashcore-free: a yardstick of the
  process's own speed. Some processes on the device machine run everything
  about 2x slower (empty_like 3.5 us instead of 1.7); the medians over rounds
  keep such outliers out, and the yardstick shows them;
- events_grad_on / events_op: CUDA events around one call, the GPU idle before
  each, median of 300 (the brief's eager latency).
The table gives each build's median per quantity over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab_builds import eager_p50  # the scripts are not a package

SHAPE = (1, 8, 256, 64)


def worker() -> None:
    import torch

    import flashcore

    torch.manual_seed(0)
    q, k, v = (torch.randn(*SHAPE, device="cuda", dtype=torch.float16) for _ in range(3))
    fa = flashcore.fused_attention
    op = torch.ops.flashcore.fwd.default
    scale = SHAPE[-1] ** -0.5

    def loop(fn, n=3000):
        for _ in range(50):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / n * 1e6

    def call_op():
        return op(q, k, v, scale, False, -1, -1, False, 0.0, False, -1)

    r = {"loop_grad_on": loop(lambda: fa(q, k, v))}
    with torch.no_grad():
        r["loop_no_grad"] = loop(lambda: fa(q, k, v))
        r["loop_op"] = loop(call_op)
        r["loop_empty_like"] = loop(lambda: torch.empty_like(q))
    r["events_grad_on"] = eager_p50(lambda: fa(q, k, v))
    with torch.no_grad():
        r["events_op"] = eager_p50(call_op)
    print(json.dumps(r), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", action="append", default=[], metavar="NAME=DIR")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--core", type=int, default=3, help="CPU core the workers are pinned to")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.worker:
        if not args.build or any("=" not in b for b in args.build):
            p.error("--build NAME=DIR, at least one")
        if args.rounds < 1:
            p.error(f"--rounds must be >= 1, got {args.rounds}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker()
        return 0
    builds = dict(b.split("=", 1) for b in args.build)
    rows: dict[str, list[dict]] = {name: [] for name in builds}
    cmd = ["taskset", "-c", str(args.core), sys.executable, __file__, "--worker"]
    for rnd in range(args.rounds):
        for name, path in builds.items():
            out = subprocess.run(
                cmd,
                check=False,
                env=dict(os.environ, PYTHONPATH=path),
                capture_output=True,
                text=True,
            )
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if not lines:
                print(f"{name}: worker failed\n{out.stderr[-2000:]}")
                return 1
            rows[name].append(json.loads(lines[-1]))
            print(rnd, name, lines[-1], flush=True)
    for name, rs in rows.items():
        print(name, {key: round(statistics.median(r[key] for r in rs), 2) for key in rs[0]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
