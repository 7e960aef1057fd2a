"""Small cases for compute-sanitizer (memcheck, racecheck, synccheck): every compiled kernel
config forced through flashcore._debug (each that fits this GPU) in its masked,
unmasked and unaligned-rows builds, then tails, causal, windows with rows that see no key,
softcap, GQA and unaligned rows through the heuristic; then every backward config
forced in its three builds (gradients checked against the float64 reference).

Each result (out and lse) is checked against flashcore._reference by the same
rule as the GPU tests, so the run also fails on wrong answers. Sizes stay small:
the sanitizer tools run kernels ~100x slower. Run with
PYTORCH_NO_CUDA_MEMORY_CACHING=1 so every tensor is its own allocation and an
out-of-bounds access cannot hide in a pool; q, k and v end exactly at the end of
their allocations. Prints "N passed, M failed"; exit status 1 on any failure.
An argument restricts the run to the configs (forward and backward) whose name
contains it, e.g. "sm90" or "bwd".
"""

import contextlib
import sys

import torch

from flashcore import _debug, _reference, fused_attention


def randn(n, dtype, scale=1.0):
    return (torch.randn(n, device="cuda") * scale).to(dtype)


def make(b, h, s, d, dtype, unaligned=False, scale=1.0):
    """(b, h, s, d) whose last element is the last of its allocation. Unaligned:
    rows of stride d + 1 after a 1-element offset (not 16-byte aligned)."""
    if not unaligned:
        return randn(b * h * s * d, dtype, scale).view(b, h, s, d)
    row = d + 1
    base = randn(1 + (b * h * s - 1) * row + d, dtype, scale)
    return base.as_strided((b, h, s, d), (h * s * row, s * row, row, 1), 1)


def narrower_d(width, widths):
    """The next-narrower tile width + 8 (most zero-padded columns), else width."""
    prev = max((w for w in widths if w < width), default=0)
    return min(width, prev + 8)


def config_cases():
    """Three cases per compiled config, one per kernel build it launches:
    masked (causal bottom-right + window, full head dim), unmasked (softcap,
    narrower head dim: zero-filled columns) and unaligned rows (narrower head
    dim; the element-wise-load build), the dtypes alternating so each dtype
    meets each variant. Every key group sees at least two key tiles, so the
    interior-tile loads run too."""
    configs = _debug.configs()
    widths = sorted({c["head_dim"] for c in configs})
    cases = []
    for i, cfg in enumerate(configs):
        bm, bn, groups = cfg["block_m"], cfg["block_n"], cfg["key_groups"]
        # a query tile plus a tail; two key tiles per key group plus a tail
        sq, sk = bm + 17, 2 * groups * bn + 13
        first, second = (torch.float16, torch.bfloat16)[:: 1 if i % 2 else -1]
        masked = {"causal": True, "alignment": "bottom_right", "window": (bn + 7, -1)}
        masked_shape = (1, 2, 1, sq, sk, cfg["head_dim"])
        narrow_shape = (1, 2, 2, sq, sk, narrower_d(cfg["head_dim"], widths))
        cases.append((cfg, "masked", masked_shape, first, masked | {"enable_gqa": True}, False))
        cases.append((cfg, "unmasked", narrow_shape, second, {"softcap": 5.0}, False))
        if cfg["sm90"]:
            # The Hopper family has no unaligned build (TMA); its other two variants.
            cases.append((cfg, "unmasked plain", narrow_shape, first, {}, False))
            masked_softcap = masked | {"softcap": 5.0, "enable_gqa": True}
            cases.append((cfg, "masked softcap", masked_shape, second, masked_softcap, False))
        else:
            cases.append((cfg, "unaligned", narrow_shape, first, {}, True))
        if cfg["persistent"]:
            # More query tiles (3 x 70 x 2 = 420) than an H200's 132 SMs: each
            # block walks several tiles through the counter and its tile slot.
            walk = (3, 70, 70, bm + 17, bn + 13, cfg["head_dim"])
            cases.append((cfg, "tile walk", walk, second, {}, False))
            cases.append((cfg, "tile walk causal", walk, first, {"causal": True}, False))
            # Bottom-right with Sq > Sk: the first query tiles of each head see no
            # key, so a block's walk passes between tiles with and without keys.
            no_keys = (2, 70, 70, 3 * bm + 17, bn + 13, cfg["head_dim"])
            br = {"causal": True, "alignment": "bottom_right"}
            cases.append((cfg, "tile walk rows without keys", no_keys, second, br, False))
            # The masked kernel's cross-head longest-first order over head groups
            # sized by the L2 (sm90/tile_order.h): at 50 MiB the 50 pairs split
            # 32 + 18 at head dim 64 and 16 x 3 + 2 at 128, a ragged last group;
            # 200 tiles, so blocks walk several.
            lpt = (2, 25, 25, 3 * bm + 17, 2100, cfg["head_dim"])
            cases.append((cfg, "tile walk LPT groups", lpt, second, {"causal": True}, False))
        if cfg["tail_split"]:
            # The tail split without a mask (sm90/tile_order.h): 2 x 5 x 6 = 60
            # tiles of 8 key tiles, each split in 2 (on 132 SMs): partial
            # results, arrival counters and the merge, with tails in both rows.
            split = (2, 5, 5, 5 * bm + 17, 7 * bn + 13, cfg["head_dim"])
            cases.append((cfg, "tail split", split, first, {}, False))
    return cases


# (label, (batch, heads_q, heads_kv, seqlen_q, seqlen_k, head_dim), dtype, kwargs, unaligned)
HEURISTIC_CASES = [
    ("one query one key", (1, 1, 1, 1, 1, 64), torch.float16, {}, False),
    ("tails causal", (1, 2, 2, 17, 113, 40), torch.bfloat16, {"causal": True}, False),
    (
        "causal bottom-right, rows 0..95 see no key",
        (2, 1, 1, 113, 17, 128),
        torch.float16,
        {"causal": True, "alignment": "bottom_right"},
        False,
    ),
    (
        "window + GQA",
        (1, 2, 1, 100, 300, 64),
        torch.bfloat16,
        {"window": (32, 8), "enable_gqa": True},
        False,
    ),
    ("softcap d256", (1, 2, 2, 130, 130, 256), torch.bfloat16, {"softcap": 5.0}, False),
    ("d8", (1, 1, 1, 64, 64, 8), torch.float16, {}, False),
    (
        "causal window bottom-right",
        (1, 2, 2, 200, 333, 96),
        torch.float16,
        {"causal": True, "window": (50, -1), "alignment": "bottom_right"},
        False,
    ),
    ("one key", (2, 3, 3, 70, 1, 192), torch.bfloat16, {}, False),
    ("unaligned causal", (1, 2, 2, 150, 97, 64), torch.float16, {"causal": True}, True),
    (
        "unaligned window bottom-right, rows 0..22 see no key",
        (1, 2, 2, 150, 97, 80),
        torch.bfloat16,
        {"window": (20, 30), "alignment": "bottom_right"},
        True,
    ),
]


def bwd_config_cases():
    """The backward (issue 10): per compiled mma.sync backward config, six
    cases. Four, one per main-kernel build it launches: masked (causal
    bottom-right + window + GQA, a gradient on the lse too), unmasked with
    softcap at a narrower head dim, rows that are not 16-byte aligned, and a
    GQA group split in 4 parts (the fp32 partials and their reduce kernel; the
    last element: the forced split, None for the heuristic's). Two in
    deterministic mode. Per Hopper-family config (sm90: TMA-readable inputs,
    the default mode only) six: its four builds (masked and unmasked, softcap
    on and off), MQA, whose blocks walk 8 query heads, and a forced GQA split
    in 4 parts (fp32 partials from the wgmma accumulators, the same reduce).
    Each key block sees at least two query blocks and there are at least two
    key blocks, so the query-block loop (and the sm90 ring and dS buffers
    wrapping), the dQ reductions from several blocks and the tails all run."""
    configs = _debug.bwd_configs()
    widths = sorted({c["head_dim"] for c in configs})
    cases = []
    for i, cfg in enumerate(configs):
        bm, bn = cfg["block_m"], cfg["block_n"]
        sq, sk = 2 * bm + 17, 2 * bn + 13
        first, second = (torch.float16, torch.bfloat16)[:: 1 if i % 2 else -1]
        d_narrow = narrower_d(cfg["head_dim"], widths)
        masked = {"causal": True, "alignment": "bottom_right", "window": (bn + 7, -1)}
        cases.append(
            (cfg, "masked dlse", (1, 4, 2, sq, sk, cfg["head_dim"]), first,
             masked | {"enable_gqa": True}, False, True, None)
        )  # fmt: skip
        cases.append(
            (cfg, "unmasked softcap", (1, 2, 2, sq, sk, d_narrow), second, {"softcap": 5.0},
             False, False, None)
        )  # fmt: skip
        if cfg["sm90"]:
            cases.append(
                (cfg, "unmasked plain", (1, 2, 2, sq, sk, d_narrow), first, {}, False, False,
                 None)
            )  # fmt: skip
            cases.append(
                (cfg, "masked softcap", (1, 2, 2, sq, sk, cfg["head_dim"]), second,
                 masked | {"softcap": 5.0}, False, False, None)
            )  # fmt: skip
            cases.append(
                (cfg, "mqa causal", (1, 8, 1, sq, sk, cfg["head_dim"]), first,
                 {"causal": True, "enable_gqa": True}, False, False, None)
            )  # fmt: skip
            cases.append(
                (cfg, "gqa split 4", (1, 8, 2, sq, sk, d_narrow), second,
                 {"causal": True, "enable_gqa": True}, False, True, 4)
            )  # fmt: skip
            continue
        cases.append(
            (cfg, "unaligned", (1, 2, 2, sq, sk, d_narrow), first, {}, True, False, None)
        )  # fmt: skip
        cases.append(
            (cfg, "gqa split 4", (1, 8, 2, sq, sk, d_narrow), second,
             {"causal": True, "enable_gqa": True}, False, True, 4)
        )  # fmt: skip
        # The deterministic mode: the main kernel without dQ (split and not) and
        # the dQ kernel of the tile head dim (bwd_dq_kernel.cuh): masked with a
        # split in 2, and unaligned rows with softcap.
        cases.append(
            (cfg, "deterministic masked split 2", (1, 4, 2, sq, sk, cfg["head_dim"]), second,
             masked | {"enable_gqa": True, "deterministic": True}, False, True, 2)
        )  # fmt: skip
        cases.append(
            (cfg, "deterministic unaligned softcap", (1, 2, 2, sq, sk, d_narrow), first,
             {"softcap": 5.0, "deterministic": True}, True, False, None)
        )  # fmt: skip
    return cases


@contextlib.contextmanager
def forced_bwd(name, gqa_split):
    """Backward config `name`, and the GQA group split unless None."""
    with _debug.forced_bwd_config(name):
        if gqa_split is None:
            yield
        else:
            with _debug.forced_bwd_gqa_split(gqa_split):
                yield


def run_bwd_case(label, shape, dtype, kw, unaligned, with_dlse, ctx):
    b, hq, hkv, sq, sk, d = shape
    scale = 3.0 if kw.get("softcap") else 1.0
    q = make(b, hq, sq, d, dtype, unaligned, scale)
    k, v = make(b, hkv, sk, d, dtype, unaligned), make(b, hkv, sk, d, dtype)
    dout = make(b, hq, sq, d, dtype)
    dlse = make(b, hq, sq, 1, torch.float32).view(b, hq, sq) if with_dlse else None
    try:
        leaves = [t.detach().requires_grad_(True) for t in (q, k, v)]
        with ctx:
            out, lse = fused_attention(*leaves, return_lse=True, **kw)
        outputs, grads = ((out, lse), (dout, dlse)) if with_dlse else ((out,), (dout,))
        dq, dk, dv = torch.autograd.grad(outputs, leaves, grads)
        ref_kw = {key: val for key, val in kw.items() if key != "deterministic"}
        check = _reference.compare_grads(dq, dk, dv, q, k, v, dout, dlse=dlse, **ref_kw)
        ok, text = check.ok, str(check)
    except (RuntimeError, ValueError, TypeError) as exc:  # a CUDA error is a RuntimeError
        ok, text = False, f"raised {type(exc).__name__}: {exc}"
    print(f"{label} {shape} {str(dtype)[6:]} {kw}: {text} {'ok' if ok else 'WRONG'}", flush=True)
    return ok


def run_case(label, shape, dtype, kw, unaligned, ctx):
    b, hq, hkv, sq, sk, d = shape
    scale = 3.0 if kw.get("softcap") else 1.0
    q = make(b, hq, sq, d, dtype, unaligned, scale)
    k, v = make(b, hkv, sk, d, dtype, unaligned), make(b, hkv, sk, d, dtype)
    try:
        with ctx:
            out, lse = fused_attention(q, k, v, return_lse=True, **kw)
        check = _reference.compare(out, q, k, v, lse, **kw)
        ok, text = check.ok, str(check)
    except (RuntimeError, ValueError, TypeError) as exc:  # a CUDA error is a RuntimeError
        ok, text = False, f"raised {type(exc).__name__}: {exc}"
    print(f"{label} {shape} {str(dtype)[6:]} {kw}: {text} {'ok' if ok else 'WRONG'}", flush=True)
    return ok


def main(argv: list[str]) -> int:
    # Optional first argument --fwd or --bwd: only the forward cases (forced
    # configs, then the heuristic's) or only the backward's, so that racecheck
    # can be split over two device calls. Optional argument after it: run only
    # the configs whose name contains it (and no heuristic cases), e.g. "sm90".
    argv = list(argv)
    part = argv.pop(0)[2:] if argv and argv[0] in ("--fwd", "--bwd") else None
    only = argv[0] if argv else None
    torch.manual_seed(0)
    results = []
    try:
        cases = config_cases()
    except (RuntimeError, OSError, AttributeError) as exc:
        print(f"flashcore._debug.configs() failed: {exc!r}")
        cases = []
        results.append(False)
    for cfg, variant, shape, dtype, kw, unaligned in [] if part == "bwd" else cases:
        if only is not None and only not in cfg["name"]:
            continue
        label = f"{cfg['name']} {variant}"
        if cfg["sm90"] and torch.cuda.get_device_capability() != (9, 0):
            print(f"{label}: skipped, the Hopper family needs compute capability 9.0")
            continue
        if not _debug.fits(cfg["name"]):
            print(f"{label}: skipped, needs {cfg['smem_bytes']} B of shared memory per block")
            continue
        forced = _debug.forced_config(cfg["name"])
        results.append(run_case(label, shape, dtype, kw, unaligned, forced))
    heuristic_cases = [] if only is not None or part == "bwd" else HEURISTIC_CASES
    for label, shape, dtype, kw, unaligned in heuristic_cases:
        results.append(run_case(label, shape, dtype, kw, unaligned, contextlib.nullcontext()))
    try:
        bwd_cases = bwd_config_cases()
    except (RuntimeError, OSError, AttributeError) as exc:
        print(f"flashcore._debug.bwd_configs() failed: {exc!r}")
        bwd_cases = []
        results.append(False)
    for cfg, variant, shape, dtype, kw, unaligned, with_dlse, gqa_split in (
        [] if part == "fwd" else bwd_cases
    ):
        if only is not None and only not in cfg["name"]:
            continue
        label = f"{cfg['name']} {variant}"
        if cfg["sm90"] and torch.cuda.get_device_capability() != (9, 0):
            print(f"{label}: skipped, the Hopper family needs compute capability 9.0")
            continue
        if cfg["smem_bytes"] > _debug.device_desc()["smem_optin"]:
            print(f"{label}: skipped, needs {cfg['smem_bytes']} B of shared memory per block")
            continue
        forced = forced_bwd(cfg["name"], gqa_split)
        results.append(run_bwd_case(label, shape, dtype, kw, unaligned, with_dlse, forced))
    torch.cuda.synchronize()
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
