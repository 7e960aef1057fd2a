"""`python -m flashcore`: build info; on a GPU, self-check and benchmark at the
seed's shapes (1, 8, {256, 512, 1024}, 64) against every SDPA backend."""

from __future__ import annotations

import sys

import torch

from . import build_info, fused_attention

SEED_SHAPES = [(1, 8, 256), (1, 8, 512), (1, 8, 1024)]
MAX_ERR_VS_SDPA = 0.06  # the seed's acceptance criterion


def _print_build_info() -> None:
    info = build_info()
    print("flashcore build info")
    for key, val in info.items():
        print(f"  {key:17s} {val}")
    print(f"  {'runtime torch':17s} {torch.__version__} (CUDA {torch.version.cuda})")


def _self_check(b: int, h: int, s: int) -> tuple[float, float, float, float]:
    """Max/mean abs error vs SDPA and vs a float64 reference, fresh random inputs."""
    from ._bench import make_inputs

    q, k, v = make_inputs(b, h, s, s, seed=s)
    out = fused_attention(q, k, v).double()
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v).double()
    p = torch.softmax(q.double() @ k.double().transpose(-1, -2) / 8.0, dim=-1)
    ref = p @ v.double()
    d_sdpa = (out - sdpa).abs()
    return (
        d_sdpa.max().item(),
        d_sdpa.mean().item(),
        (out - ref).abs().max().item(),
        (sdpa - ref).abs().max().item(),
    )


def main() -> int:
    _print_build_info()
    if not torch.cuda.is_available():
        print(
            "\nno CUDA GPU is available: flashcore's kernel needs one; skipping the "
            "self-check and benchmark."
        )
        return 1
    if build_info()["load_error"] is not None:
        print(f"\nthe compiled extension did not load: {build_info()['load_error']}")
        return 1
    from ._bench import SDPA_BACKENDS, env_info, measure_shape

    env = env_info()
    print(
        f"\nGPU: {env['gpu']} ({env['sm_count']} SMs, cc {env['compute_capability']}), "
        f"driver {env['driver']}, torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}"
    )
    ok = True
    print("\nself-check (fp16, non-causal): error vs SDPA and vs a float64 reference")
    print(
        f"{'shape':>16} {'max|d| sdpa':>12} {'mean|d| sdpa':>13} {'ours vs f64':>12} "
        f"{'sdpa vs f64':>12}  result"
    )
    for b, h, s in SEED_SHAPES:
        mx, mean, ours64, sdpa64 = _self_check(b, h, s)
        good = mx < MAX_ERR_VS_SDPA and ours64 <= 2 * sdpa64 + 1e-4
        ok &= good
        print(
            f"{(b, h, s, 64)!s:>16} {mx:12.2e} {mean:13.2e} {ours64:12.2e} {sdpa64:12.2e}  "
            f"{'PASS' if good else 'FAIL'}"
        )

    print(
        "\nbenchmark: kernel time by CUDA-graph replay (median), eager latency by events "
        "around one call; ratio = flashcore / backend (lower is better)"
    )
    names = list(SDPA_BACKENDS)
    header = f"{'shape':>16} {'flashcore us':>12} {'eager p50/p90 us':>17}"
    for n in names:
        header += f" {n + ' us':>12} {'ratio':>6}"
    print(header)
    for b, h, s in SEED_SHAPES:
        row = measure_shape(b, h, s, s, causal=False)
        ours = row["flashcore"]
        line = (
            f"{(b, h, s, 64)!s:>16} {ours['kernel_us']:12.1f} "
            f"{ours['eager_p50_us']:8.1f}/{ours['eager_p90_us']:<8.1f}"
        )
        for n in names:
            e = row[n]
            line += (
                f" {'n/a':>12} {'':>6}"
                if e is None
                else f" {e['kernel_us']:12.1f} {e['ratio']:6.2f}"
            )
        print(line)
    print(f"\nself-check: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
