"""`python -m flashcore`: build info; on a GPU, a self-check against the float64
reference (fp16 and bf16, head dims 64 and 128, a causal and a GQA + window +
softcap case) and a benchmark at the seed's shapes (1, 8, {256, 512, 1024}, 64)
against every SDPA backend."""

from __future__ import annotations

import sys

import torch

from . import build_info, fused_attention

SEED_SHAPES = [(1, 8, 256), (1, 8, 512), (1, 8, 1024)]
SEED_HEAD_DIM = 64
MAX_ERR_VS_SDPA = 0.06  # the seed's acceptance criterion (plain fp16 attention)
# Self-check cases: (dtype, head_dim, seqlen, fused_attention keyword arguments).
CHECKS = [
    (torch.float16, 64, 1024, {}),
    (torch.bfloat16, 128, 1000, {"causal": True}),
    (torch.float16, 80, 777, {"causal": True, "alignment": "bottom_right"}),
    (
        torch.bfloat16,
        128,
        1024,
        {"enable_gqa": True, "window": (256, 0), "softcap": 30.0, "causal": True},
    ),
]


def _print_build_info() -> None:
    info = build_info()
    print("flashcore build info")
    for key, val in info.items():
        print(f"  {key:17s} {val}")
    print(f"  {'runtime torch':17s} {torch.__version__} (CUDA {torch.version.cuda})")


def _self_check(dtype: torch.dtype, d: int, s: int, kwargs: dict) -> tuple[bool, str]:
    """Kernel vs the float64 reference (flashcore._reference's rule), fresh inputs."""
    from . import _reference

    g = torch.Generator(device="cuda").manual_seed(s + d)
    heads_kv = 2 if kwargs.get("enable_gqa") else 8
    q = torch.randn(1, 8, s, d, device="cuda", generator=g).to(dtype)
    k = torch.randn(1, heads_kv, s, d, device="cuda", generator=g).to(dtype)
    v = torch.randn(1, heads_kv, s, d, device="cuda", generator=g).to(dtype)
    out, lse = fused_attention(q, k, v, return_lse=True, **kwargs)
    check = _reference.compare(out, q, k, v, lse, **kwargs)
    ok = check.ok
    if not kwargs and dtype == torch.float16:
        # The seed's criterion too: max |flashcore - SDPA| < 0.06.
        sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        ok &= (out.float() - sdpa.float()).abs().max().item() < MAX_ERR_VS_SDPA
    return ok, str(check)


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
    print(
        "\nself-check: error vs a float64 reference <= 2x plain PyTorch attention's in the "
        "same dtype + a floor"
    )
    for dtype, d, s, kwargs in CHECKS:
        good, text = _self_check(dtype, d, s, kwargs)
        ok &= good
        name = str(dtype).replace("torch.", "")
        print(f"  {name} (1, 8, {s}, {d}) {kwargs}: {'PASS' if good else 'FAIL'}  {text}")

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
        row = measure_shape(b, h, s, s, causal=False, d=SEED_HEAD_DIM)
        ours = row["flashcore"]
        line = (
            f"{(b, h, s, SEED_HEAD_DIM)!s:>16} {ours['kernel_us']:12.1f} "
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
