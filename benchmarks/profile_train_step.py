"""Where a training step of benchmarks/train_gpt.py spends its time, per attention
backend: the step's wall time (synchronized), the host's time to issue it (no
synchronization until the optimizer step has been issued), and a torch.profiler
table of the attention ops and kernels over a few steps.

    python benchmarks/profile_train_step.py [--attn sdpa,flashcore,sdpa-flash]
        [--steps 30] [--profile-steps 5] [train_gpt.py's model flags, e.g.
        --kv-heads 2 --head-dim 128]

A step whose host time is close to its wall time is host-bound: the GPU waits on
launches, and the attention kernels' speed barely shows in tokens/s. The table
sums, per backend, the profiler's CUDA time of every kernel and the host time of
the attention entry points over the profiled steps: "attend" is the model's whole
forward call (flashcore's Python wrapper included), the ops and autograd nodes
below it are flashcore's and SDPA's own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_gpt


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--attn", default="sdpa,flashcore,sdpa-flash")
    p.add_argument("--steps", type=int, default=30, help="timed steps (after 10 warm-up)")
    p.add_argument("--profile-steps", type=int, default=5)
    p.add_argument("--rows", type=int, default=12, help="profiler table rows per backend")
    ours, rest = p.parse_known_args(argv)
    if ours.steps < 1 or ours.profile_steps < 1:
        p.error(f"--steps and --profile-steps must be >= 1, got {ours.steps}, {ours.profile_steps}")
    return ours, train_gpt.parse_args(rest)


def step_fn(args: argparse.Namespace, name: str):
    torch.manual_seed(args.seed)
    inner = train_gpt.attention_fn(name)

    def attend(q, k, v):  # the model's whole attention call, wrapper included
        with torch.profiler.record_function("attend: the model's attention call"):
            return inner(q, k, v)

    model = train_gpt.GPT(args, attend).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    data = torch.randint(0, args.vocab, (args.batch, args.seq + 1), device=args.device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(data[:, :-1])
            loss = F.cross_entropy(logits.float().reshape(-1, args.vocab), data[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def measure(step, steps: int) -> tuple[float, float]:
    """Median wall time of a synchronized step and median host time to issue one (ms)."""
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    wall, host = [], []
    for _ in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        host.append((t1 - t0) * 1e3)
        wall.append((t2 - t0) * 1e3)
    return statistics.median(wall), statistics.median(host)


def profile(step, steps: int, rows: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    attn = [
        e
        for e in events
        if e.key.startswith("attend")
        or "flashcore" in e.key
        or "scaled_dot_product" in e.key
        or "attention" in e.key.lower()
    ]
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    gpu_total = sum(e.self_device_time_total for e in kernels) / 1e3 / steps
    print(f"  all kernels: {gpu_total:.3f} ms GPU per step, {len(kernels)} kernel names")
    print(f"  {'attention op / kernel':70s} {'calls':>6s} {'host ms':>8s} {'GPU ms':>8s}")
    for e in sorted(attn, key=lambda e: -(e.cpu_time_total + e.self_device_time_total))[:rows]:
        print(
            f"  {e.key[:70]:70s} {e.count // steps:6d} {e.cpu_time_total / 1e3 / steps:8.3f} "
            f"{e.self_device_time_total / 1e3 / steps:8.3f}"
        )
    print("  top kernels by GPU time per step:")
    for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[:rows]:
        print(
            f"  {e.key[:70]:70s} {e.count // steps:6d} {'':8s} "
            f"{e.self_device_time_total / 1e3 / steps:8.3f}"
        )


def main(argv: list[str]) -> int:
    ours, args = parse_args(argv)
    tokens = args.batch * args.seq
    for name in [b.strip() for b in ours.attn.split(",") if b.strip()]:
        step = step_fn(args, name)
        wall, host = measure(step, ours.steps)
        print(
            f"{name}: step {wall:.3f} ms wall, {host:.3f} ms host to issue "
            f"({host / wall:.0%}), {tokens / wall * 1e3:,.0f} tokens/s"
        )
        profile(step, ours.profile_steps, ours.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
