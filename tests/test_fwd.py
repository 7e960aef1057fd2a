"""GPU tests: the kernel against the float64 reference of flashcore._reference,
on the same float16 / bfloat16 inputs.

Criterion (FlashAttention-2's, `_reference.compare`): the kernel's max abs error
is at most 2x the error that plain PyTorch attention in the same dtype makes
against the reference, plus a small floor; the lse likewise; rows that see no
key are exactly 0 with lse -inf. Every output buffer is poisoned with NaN
before the kernel runs, and the test asserts that the outputs really landed in
the poisoned memory.

Coverage is a covering design, not the cross product: every dtype x head dim
with three mask kinds, every mask kind x seqlen pairs (tails, Sq != Sk both
ways), every compiled config forced through flashcore._debug, then layouts,
adversarial inputs, streams, CUDA graphs and torch.compile. Inputs are fresh
random tensors in each test, seeded from the test id so a failure reproduces.
"""

import contextlib
import re

import pytest
import torch
import torch.nn.functional as F
from grids import DTYPES, cases_dtype_head_dim, dtype_id, kw_id, randn, seed_from_test_id  # noqa: F401
from grids import MASKS as GRID_MASKS

from flashcore import _reference, fused_attention

try:
    from flashcore import _debug

    CONFIGS = _debug.configs()
    CONFIGS_ERROR = None
except (ImportError, OSError, RuntimeError, AttributeError) as exc:  # reported by the tests
    CONFIGS, CONFIGS_ERROR = [], exc

pytestmark = pytest.mark.gpu

HEAD_DIMS = [8, 40, 64, 80, 96, 128, 160, 192, 256]
WIDTHS = sorted({c["head_dim"] for c in CONFIGS})  # tile widths of the compiled configs


def make_qkv(b, hq, hkv, sq, sk, d, dtype, q_scale=1.0):
    return (
        randn(b, hq, sq, d, dtype=dtype, scale=q_scale),
        randn(b, hkv, sk, d, dtype=dtype),
        randn(b, hkv, sk, d, dtype=dtype),
    )


def q_scale_for(kw):
    # With softcap, scores of ~3 standard deviations so the cap bends them.
    return 3.0 if kw.get("softcap") else 1.0


def unaligned(b, h, s, d, dtype, scale=1.0):
    # Row stride d + 1 after a 1-element offset: the base pointer and the rows
    # are not 16-byte aligned, so the kernel must take its element-wise path.
    base = randn(b * h * s * (d + 1) + 1, dtype=dtype, scale=scale)
    t = base[1:].view(b, h, s, d + 1)[..., :d]
    assert t.data_ptr() % 16 != 0
    return t


def poisoned_call(fn, out_specs):
    """Fills caching-allocator blocks of the output sizes with NaN, frees them,
    then runs fn; asserts the outputs reused exactly that poisoned memory."""
    torch.cuda.synchronize()
    poison = [torch.full(shape, float("nan"), dtype=dt, device="cuda") for shape, dt in out_specs]
    ptrs = [p.data_ptr() for p in poison]
    del poison
    res = fn()
    outs = res if isinstance(res, tuple) else (res,)
    got = [o.data_ptr() for o in outs]
    # The op allocates out, then lse: the same sizes in the same order as the
    # poison, so the deterministic caching allocator hands back those blocks.
    assert got == ptrs, "outputs did not reuse the poisoned blocks; the poison check is void"
    return res


def run_checked(q, k, v, return_lse=True, **kw):
    """fused_attention on poisoned output memory; checks output shapes/dtypes."""
    b, hq, sq, d = q.shape
    specs = [((b, hq, sq, d), q.dtype)]
    if return_lse:
        specs.append(((b, hq, sq), torch.float32))
    res = poisoned_call(lambda: fused_attention(q, k, v, return_lse=return_lse, **kw), specs)
    out = res[0] if return_lse else res
    assert out.shape == (b, hq, sq, d) and out.dtype == q.dtype and out.is_contiguous()
    if return_lse:
        assert res[1].shape == (b, hq, sq) and res[1].dtype == torch.float32
    return res


def assert_matches(out, q, k, v, lse=None, **kw):
    check = _reference.compare(out, q, k, v, lse, **kw)
    assert check.ok, (
        f"{check} | q {tuple(q.shape)} {dtype_id(q.dtype)}, k {tuple(k.shape)}, v "
        f"{tuple(v.shape)}, {kw}"
    )
    return check


def check_graph_replays(shape, kw, q_scale=1.0, capture=contextlib.nullcontext):
    """Captures one fused_attention call (bf16, return_lse, **kw) in a CUDA graph
    (inside the `capture()` context, after a warm-up on a side stream), then
    replays it three times on fresh inputs copied into the captured ones, with
    the outputs poisoned before each replay, and applies the reference rule."""
    static_q, static_k, static_v = make_qkv(*shape, torch.bfloat16)
    with capture():
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fused_attention(static_q, static_k, static_v, return_lse=True, **kw)  # warm-up
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out, static_lse = fused_attention(
                static_q, static_k, static_v, return_lse=True, **kw
            )
    for _ in range(3):
        q, k, v = make_qkv(*shape, torch.bfloat16, q_scale=q_scale)
        static_q.copy_(q)
        static_k.copy_(k)
        static_v.copy_(v)
        static_out.fill_(float("nan"))
        static_lse.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert_matches(static_out.clone(), q, k, v, static_lse.clone(), **kw)


def check(q, k, v, return_lse=True, **kw):
    """Runs the kernel on poisoned memory and applies the reference rule."""
    res = run_checked(q, k, v, return_lse=return_lse, **kw)
    out, lse = res if return_lse else (res, None)
    return assert_matches(out, q, k, v, lse, **kw)


def run_case(dtype, d, heads, sq, sk, kw):
    """Fresh random inputs of these sizes ((batch, heads_q, heads_kv) = heads),
    kernel with out and lse, reference rule."""
    b, hq, hkv = heads
    q, k, v = make_qkv(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
    return check(q, k, v, **kw)


# ---------------------------------------------------------------- dtype x head dim


@pytest.mark.parametrize("case", cases_dtype_head_dim(HEAD_DIMS))
def test_dtype_head_dim(case):
    run_case(*case)


# ---------------------------------------------------------------- mask kind x seqlens

MASKS = GRID_MASKS
SEQ_PAIRS = [
    (1, 1),
    (1, 2049),
    (2049, 1),
    (17, 113),
    (113, 17),
    (1000, 1000),
    (1000, 2049),
    (2049, 1000),
    (2049, 2049),
    (64, 1024),
    (1024, 128),
]
# (batch, heads_q, heads_kv); enable_gqa is passed when they differ, and once with
# a group of one
_HEADS_B = [((2, 3, 3), False), ((1, 4, 2), True), ((2, 2, 1), True), ((1, 3, 3), True)]


def _cases_mask_seqlen():
    cases, n = [], 0
    for mask, kw in MASKS.items():
        for sq, sk in SEQ_PAIRS:
            heads, gqa = _HEADS_B[n % len(_HEADS_B)]
            case = (DTYPES[n % 2], HEAD_DIMS[n % len(HEAD_DIMS)], heads, sq, sk, kw)
            if gqa:
                case = (*case[:5], dict(kw, enable_gqa=True))
            name = f"{mask}-{sq}x{sk}-{dtype_id(case[0])}-d{case[1]}-h{heads[1]}_{heads[2]}"
            cases.append(pytest.param(case, id=name))
            n += 1
    return cases


@pytest.mark.parametrize("case", _cases_mask_seqlen())
def test_mask_seqlens(case):
    run_case(*case)


# Rows that see no key: out exactly 0, lse exactly -inf, no NaN anywhere.
EMPTY_ROW_CASES = {
    # off = -200: rows 0..199 see no key (whole query tiles without a key tile)
    "causal_br_sq_gt_sk": (300, 100, {"causal": True, "alignment": "bottom_right"}),
    # each row sees only key i: rows 70.. see none
    "window_0_0_sq_gt_sk": (200, 70, {"window": (0, 0)}),
    # keys j >= i - 10: rows 110.. see none
    "window_left_only": (400, 100, {"window": (10, -1)}),
    # off = -30, keys j <= i - 25: rows 0..24 see none
    "window_right_br": (150, 120, {"window": (-1, 5), "alignment": "bottom_right"}),
    # off = -193, keys i - 201 <= j <= i - 193: rows 0..192 see none
    "causal_window_br_gqa": (
        257,
        64,
        {"causal": True, "window": (8, -1), "alignment": "bottom_right", "enable_gqa": True},
    ),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", list(EMPTY_ROW_CASES))
def test_rows_that_see_no_key(case, dtype):
    sq, sk, kw = EMPTY_ROW_CASES[case]
    d = {torch.float16: 64, torch.bfloat16: 128}[dtype]
    hkv = 2 if kw.get("enable_gqa") else 4
    q, k, v = make_qkv(2, 4, hkv, sq, sk, d, dtype)
    out, lse = run_checked(q, k, v, **kw)
    mask_kw = {key: kw[key] for key in ("causal", "window", "alignment") if key in kw}
    empty = ~_reference.visible_mask(sq, sk, device="cuda", **mask_kw).any(dim=-1)
    assert 0 < int(empty.sum()) < sq, "the case must have both empty and non-empty rows"
    assert not out.isnan().any() and not lse.isnan().any()
    assert out[:, :, empty].eq(0).all(), "a row that sees no key is not exactly 0"
    assert torch.isneginf(lse[:, :, empty]).all(), "a row that sees no key has lse != -inf"
    assert torch.isfinite(lse[:, :, ~empty]).all()
    assert assert_matches(out, q, k, v, lse, **kw).empty_rows == 2 * 4 * int(empty.sum())


# ---------------------------------------------------------------- every compiled config


def _config_params(pred=lambda cfg: True):
    if CONFIGS_ERROR is not None:  # one case that fails (on a GPU) with the error
        return [pytest.param("unavailable", id="configs-unavailable")]
    return [pytest.param(cfg, id=cfg["name"]) for cfg in CONFIGS if pred(cfg)]


def skip_unless_sm90():
    """Skips unless the Hopper family can run here: a compute capability 9.0 GPU
    and a build with sm_90a. (Not "unless the heuristic picks it": a test whose
    shape the heuristic sends elsewhere must fail, not skip, on an H100/H200.)"""
    import flashcore

    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("the Hopper family: compute capability 9.0 only")
    if "sm_90a" not in flashcore.build_info()["sass_archs"]:
        pytest.skip("the Hopper family: this build has no sm_90a code")


def forced(cfg):
    """Context forcing cfg (None: the heuristic); skips when it does not fit here."""
    if cfg is None:
        return contextlib.nullcontext()
    if CONFIGS_ERROR is not None:
        raise RuntimeError(f"flashcore._debug.configs() failed: {CONFIGS_ERROR!r}")
    if cfg["sm90"] and torch.cuda.get_device_capability() != (9, 0):
        pytest.skip(f"config {cfg['name']} is the Hopper family: compute capability 9.0 only")
    if not _debug.fits(cfg["name"]):
        pytest.skip(
            f"config {cfg['name']} needs {cfg['smem_bytes']} B of shared memory per block; "
            "this GPU allows less"
        )
    return _debug.forced_config(cfg["name"])


def narrower_d(width):
    """A head dim below width that no narrower tile serves: the next-narrower
    tile width + 8 (most zero-padded columns), else width itself."""
    prev = max((w for w in WIDTHS if w < width), default=0)
    return min(width, prev + 8)


# name: (dtype, narrower D?, (batch, heads_q, heads_kv, seqlen_q, seqlen_k), kwargs)
CONFIG_CASES = {
    "full": (torch.float16, False, (2, 3, 3, 113, 257), {}),
    "causal": (torch.bfloat16, True, (1, 4, 4, 257, 200), {"causal": True}),
    "gqa_causal_br": (
        torch.float16,
        True,
        (2, 6, 2, 100, 190),
        {"causal": True, "alignment": "bottom_right", "enable_gqa": True},
    ),
    # off = -80, keys i - 100 <= j <= i - 77: rows 0..76 see no key
    "window_empty_rows": (
        torch.bfloat16,
        False,
        (1, 3, 3, 200, 120),
        {"window": (20, 3), "alignment": "bottom_right"},
    ),
    "softcap": (torch.bfloat16, True, (2, 2, 2, 130, 321), {"softcap": 5.0}),
    "combo": (
        torch.float16,
        False,
        (1, 4, 2, 300, 333),
        {"causal": True, "window": (64, -1), "softcap": 5.0, "enable_gqa": True},
    ),
    "one_query": (
        torch.bfloat16,
        False,
        (3, 4, 2, 1, 1000),
        {"causal": True, "alignment": "bottom_right", "enable_gqa": True},
    ),
    "unaligned": (torch.float16, True, (2, 3, 3, 150, 97), {"causal": True}),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
@pytest.mark.parametrize("cfg", _config_params())
def test_every_config_forced(cfg, case):
    dtype, narrow, (b, hq, hkv, sq, sk), kw = CONFIG_CASES[case]
    with forced(cfg):
        d = narrower_d(cfg["head_dim"]) if narrow else cfg["head_dim"]
        if case == "unaligned":
            q = unaligned(b, hq, sq, d, dtype)
            k = randn(b, hkv, sk, d + 8, dtype=dtype)[..., 3 : 3 + d]
            v = randn(b, hkv, sk, d, dtype=dtype)
            if cfg["sm90"]:
                # TMA cannot read these rows: a forced Hopper config says so (the
                # heuristic never picks it for them: test_unaligned_rows_fallback).
                with pytest.raises(ValueError, match=r"TMA.*got q strides"):
                    fused_attention(q, k, v, **kw)
                return
        else:
            q, k, v = make_qkv(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
        check(q, k, v, **kw)


# The Hopper family's own edges: the K/V ring wrapping many times, a 1-row
# problem, Sq > Sk bottom-right (rows with no key), windows, BSHD views and row
# strides wider than the head dim (all TMA-readable, none copied).
SM90_CASES = {
    "long_keys": (torch.bfloat16, (1, 2, 2, 130, 4100), {}),
    "long_causal": (torch.float16, (1, 2, 2, 1000, 1000), {"causal": True}),
    "sq_gt_sk_br": (
        torch.float16,
        (2, 2, 2, 300, 129),
        {"causal": True, "alignment": "bottom_right"},
    ),
    "single_row": (torch.bfloat16, (2, 3, 3, 1, 1), {}),
    "window_gqa": (torch.bfloat16, (1, 4, 1, 700, 900), {"window": (100, 20), "enable_gqa": True}),
    # More query tiles than an H200 has SMs (600 and 420): a persistent
    # config's blocks walk several tiles of different lengths, tails included.
    "many_tiles_causal_gqa": (
        torch.float16,
        (3, 40, 8, 520, 520),
        {"causal": True, "enable_gqa": True},
    ),
    # Persistent configs, causal: the cross-head longest-first order over head
    # groups sized by the L2. At an L2 of 50 MiB the 50 (batch, head) pairs
    # split 32 + 18 at D64 and 16 + 16 + 16 + 2 at D128, a ragged last group
    # either way (tests/test_tile_order.py pins the sizes), and the 250 tiles
    # outnumber the SMs.
    "lpt_ragged_groups": (
        torch.float16,
        (2, 25, 25, 600, 2100),
        {"causal": True, "alignment": "bottom_right"},
    ),
    # Query tiles whose rows see no key (bottom-right, Sq > Sk) among more
    # tiles than SMs: a persistent block's walk passes from tiles with keys to
    # tiles without and back (the merged tile boundary, NOTES v27).
    "many_tiles_no_key_rows": (
        torch.bfloat16,
        (2, 70, 35, 600, 150),
        {"causal": True, "alignment": "bottom_right", "enable_gqa": True},
    ),
    "many_tiles_window_br": (
        torch.bfloat16,
        (2, 70, 70, 300, 333),
        {"window": (90, 10), "alignment": "bottom_right", "softcap": 5.0},
    ),
}


@pytest.mark.parametrize("case", list(SM90_CASES))
@pytest.mark.parametrize("cfg", _config_params(lambda cfg: cfg["sm90"]))
def test_sm90_family_cases(cfg, case):
    dtype, (b, hq, hkv, sq, sk), kw = SM90_CASES[case]
    with forced(cfg):
        q, k, v = make_qkv(b, hq, hkv, sq, sk, cfg["head_dim"], dtype, q_scale_for(kw))
        check(q, k, v, **kw)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("cfg", _config_params(lambda cfg: cfg["sm90"]))
def test_sm90_family_strided_views(cfg, causal):
    d = cfg["head_dim"]
    with forced(cfg):
        # BSHD storage seen as BHSD: row stride H*D, head stride D.
        q = randn(2, 200, 3, d, dtype=torch.bfloat16).transpose(1, 2)
        # Rows wider than the head dim: a slice of a (.., 2D) tensor.
        k = randn(2, 3, 333, 2 * d, dtype=torch.bfloat16)[..., d:]
        v = randn(2, 333, 3, d, dtype=torch.bfloat16).transpose(1, 2)
        assert _debug.tma_ok(q, k, v)
        check(q, k, v, causal=causal)


@pytest.mark.parametrize("d", [64, 128])
def test_sm90_persistent_twin_under_a_mask(d):
    # Causal calls and windows of a grid the Hopper family serves take the
    # persistent twin (cross-head longest-first order) up to 64 query tiles per
    # head, and stay correct; past that the one-block-per-tile build, unless
    # the debug switch (for the A/B) is on.
    q, k, v = make_qkv(3, 40, 40, 700, 700, d, torch.bfloat16)
    plain = f"sm90_d{d}"
    skip_unless_sm90()
    assert _debug.chosen_config(q, k, v) == plain + "_p"
    assert _debug.chosen_config(q, k, v, causal=True) == plain + "_p"
    assert _debug.chosen_config(q, k, v, window=(150, 0)) == plain + "_p"
    check(q, k, v, causal=True)
    check(q, k, v, window=(150, 0))
    # 8193 queries are 65 tiles of 128 (only the shapes are read); 1535 keys
    # keep head dim 64 on two consumer warpgroups (three from 2048 rows
    # without a mask since v27, from 1536 under one since v30:
    # test_sm90_d64_three_warpgroups_*).
    long_q = torch.empty(1, 4, 8193, d, device="cuda", dtype=torch.bfloat16)
    long_k = torch.empty(1, 4, 1535, d, device="cuda", dtype=torch.bfloat16)
    assert _debug.chosen_config(long_q, long_k, long_k) == plain + "_p"
    assert _debug.chosen_config(long_q, long_k, long_k, causal=True) == plain
    with _debug.sm90_persistent_masked():
        assert _debug.chosen_config(long_q, long_k, long_k, causal=True) == plain + "_p"
    assert _debug.chosen_config(long_q, long_k, long_k, causal=True) == plain


def _tail_split_of(q, k):
    """The tail split sm90_d64_w3_p takes for q, k without a mask on this GPU:
    (first split task, parts, tasks, key ranges) of sm90/tile_order.h."""
    b, hq, sq, _ = q.shape
    tiles = -(-sq // 192) * b * hq
    key_tiles = -(-k.shape[2] // 128)
    sm_count = torch.cuda.get_device_properties(q.device).multi_processor_count
    return _debug.sm90_tail_split(tiles, sm_count, key_tiles)


@pytest.mark.parametrize(
    "shape, dtype, forced",
    [
        # the heuristic's pick at (4,16,2048) on an H100/H200: 704 tiles, 44 split in 3
        ((4, 16, 16, 2048, 2048, 64), torch.float16, None),
        ((1, 5, 5, 1500, 2100, 40), torch.bfloat16, "sm90_d64_w3_p"),  # tails, 3 parts
        ((3, 8, 2, 1024, 1024, 64), torch.float16, "sm90_d64_w3_p"),  # GQA, 2 parts
        ((1, 1, 1, 3000, 1100, 64), torch.bfloat16, "sm90_d64_w3_p"),  # Sq > Sk, 2 parts
    ],
    ids=["heuristic_4x16x2048", "tails_d40", "gqa", "sq_gt_sk"],
)
def test_sm90_tail_split(shape, dtype, forced):
    # Without a mask the persistent three-warpgroup kernel splits the last
    # wave's query tiles along keys and merges the parts (v28): every output row
    # and lse must match the reference whichever part wrote it.
    skip_unless_sm90()
    q, k, v = make_qkv(*shape, dtype)
    assert _tail_split_of(q, k)[1] > 1, "the case must split"
    kw = {"enable_gqa": True} if shape[1] != shape[2] else {}
    if forced is None:
        assert _debug.chosen_config(q, k, v, **kw) == "sm90_d64_w3_p"
    with _debug.forced_config(forced) if forced else contextlib.nullcontext():
        check(q, k, v, **kw)
        check(q, k, v, return_lse=False, **kw)


def test_sm90_tail_split_in_a_cuda_graph():
    # The split's arrival counters live in the call's scheduler buffer and are
    # zeroed by the launch on the stream: a replayed graph merges correctly
    # every time (a counter left over from the previous replay would make the
    # wrong warp write the rows, before every part is in).
    shape = (3, 8, 8, 1024, 1536, 64)  # 144 tiles of 192 on 132 SMs: 12 split in 3
    skip_unless_sm90()
    q, k, _ = make_qkv(*shape, torch.bfloat16)
    assert _tail_split_of(q, k)[1] > 1
    check_graph_replays(shape, {}, capture=lambda: _debug.forced_config("sm90_d64_w3_p"))


SM90_TRAITS = re.compile(r"sm90::FwdTraits<(\d+), (\d+), (\d+), (true|false), (\d+), (true|false)>")


def sm90_fwd_kernels_run(fn):
    """(consumer warpgroups, persistent) of every Hopper forward kernel fn launches,
    read from the kernel names (template arguments of sm90::FwdTraits)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    found = []
    for e in prof.events():
        m = SM90_TRAITS.search(e.name)
        if m and "fwd_kernel" in e.name:
            found.append((int(m.group(5)), m.group(6) == "true"))
    return found


@pytest.mark.parametrize(
    "heads, s, kw, expected",
    [
        # rows >= 2048 without a mask: three warpgroups, one block per tile
        (6, 4096, {}, ("sm90_d64_w3", 3, False)),
        (12, 2048, {}, ("sm90_d64_w3", 3, False)),  # 12 x 11 = 132 tiles of 192 (v27)
        # causal from 1536 rows: three warpgroups, persistent (longest-first)
        (4, 8192, {"causal": True}, ("sm90_d64_w3_p", 3, True)),
        (6, 4096, {"causal": True}, ("sm90_d64_w3_p", 3, True)),  # v28
        (12, 2048, {"causal": True}, ("sm90_d64_w3_p", 3, True)),  # v30
        # softcap keeps two warpgroups (persistent without a mask)
        (6, 4096, {"softcap": 30.0}, ("sm90_d64_p", 2, True)),
        # causal below 1536 rows keeps two warpgroups
        (24, 1024, {"causal": True}, ("sm90_d64_p", 2, True)),
    ],
)
def test_sm90_d64_three_warpgroups_unforced(heads, s, kw, expected):
    # The heuristic's head-dim-64 pick on an H100/H200 (NOTES v17), checked on
    # the kernel that really ran (not only on _debug's mirror) and against the
    # reference. 6 heads of 4096 rows are 132 tiles of 192: one wave.
    q, k, v = make_qkv(1, heads, heads, s, s, 64, torch.bfloat16, q_scale_for(kw))
    name, wgs, persistent = expected
    skip_unless_sm90()
    assert _debug.chosen_config(q, k, v, **kw) == name
    assert sm90_fwd_kernels_run(lambda: fused_attention(q, k, v, **kw)) == [(wgs, persistent)]
    check(q, k, v, **kw)


def test_heuristic_picks_a_config_of_the_narrowest_tile_that_serves_d():
    by_name = {cfg["name"]: cfg for cfg in CONFIGS}
    for d in HEAD_DIMS:
        width = min(w for w in WIDTHS if w >= d)
        for sq, sk, kw in [(1, 4096, {}), (2049, 2049, {"causal": True}), (300, 300, {})]:
            q = torch.empty(2, 8, sq, d, device="cuda", dtype=torch.bfloat16)
            k = torch.empty(2, 8, sk, d, device="cuda", dtype=torch.bfloat16)
            name = _debug.chosen_config(q, k, k, **kw)
            assert name in by_name, f"chosen_config gave {name!r}, not a compiled config"
            assert by_name[name]["head_dim"] == width, f"d={d}: {name}, not a {width} tile"
            assert _debug.fits(name), f"the heuristic chose {name}, which does not fit"


def test_forced_config_narrower_than_head_dim_raises():
    narrow = [cfg for cfg in CONFIGS if cfg["head_dim"] < 256]
    if CONFIGS_ERROR is not None or not narrow:
        raise RuntimeError(f"no config narrower than 256 (configs() error: {CONFIGS_ERROR!r})")
    cfg = min(narrow, key=lambda c: c["head_dim"])
    q, k, v = make_qkv(1, 2, 2, 10, 12, cfg["head_dim"] + 8, torch.float16)
    with forced(cfg), pytest.raises(ValueError, match=r"(?i)head.?dim|config"):
        fused_attention(q, k, v)


def test_forced_config_that_does_not_fit_raises():
    misfits = [cfg for cfg in CONFIGS if not _debug.fits(cfg["name"])]
    if not misfits:
        pytest.skip("every compiled config fits this GPU's shared memory")
    cfg = misfits[0]
    q, k, v = make_qkv(1, 2, 2, 10, 12, cfg["head_dim"], torch.float16)
    with (
        _debug.forced_config(cfg["name"]),
        pytest.raises(ValueError, match=r"(?i)shared memory|smem|config"),
    ):
        fused_attention(q, k, v)


@pytest.mark.parametrize(
    "cfg",
    [pytest.param(None, id="heuristic")]
    + _config_params(lambda cfg: cfg["key_groups"] > 1 or cfg["sm90"]),
)
def test_bitwise_reproducible_across_memory_streams_and_load(cfg):
    # Key-group configs merge partial (m, l, O) states of several warp groups, and
    # the Hopper family passes K/V through an mbarrier ring between warpgroups: the
    # result must not depend on what the output memory held before, on the stream,
    # or on which SMs run which blocks while other kernels occupy the GPU.
    ctx = forced(cfg)
    d = 64 if cfg is None else cfg["head_dim"]
    q, k, v = make_qkv(2, 4, 2, 150, 1000, d, torch.bfloat16)
    kw = {"causal": True, "alignment": "bottom_right", "window": (700, -1), "enable_gqa": True}
    with ctx:
        first_out, first_lse = run_checked(q, k, v, **kw)  # on NaN-filled memory
        cur = torch.cuda.current_stream()
        side, busy = torch.cuda.Stream(), torch.cuda.Stream()
        side.wait_stream(cur)
        busy.wait_stream(cur)
        with torch.cuda.stream(side):
            # this stream's free blocks of the output sizes now hold random bits
            junk = [torch.randn_like(first_out), torch.randn_like(first_lse)]
            del junk
        big = randn(4096, 4096)
        busy.wait_stream(cur)
        again = []
        with torch.cuda.stream(busy):
            for _ in range(8):
                busy_out = big @ big
        with torch.cuda.stream(side):
            again.append(fused_attention(q, k, v, return_lse=True, **kw))
        again.append(fused_attention(q, k, v, return_lse=True, **kw))
        with torch.cuda.stream(busy):
            again.append(fused_attention(q, k, v, return_lse=True, **kw))
        cur.wait_stream(side)
        cur.wait_stream(busy)
        torch.cuda.synchronize()
        del busy_out
    assert_matches(first_out, q, k, v, first_lse, **kw)
    for i, (out, lse) in enumerate(again):
        assert torch.equal(out, first_out), f"call {i}: out differs bitwise from the first call"
        assert torch.equal(lse, first_lse), f"call {i}: lse differs bitwise from the first call"


# ---------------------------------------------------------------- GQA


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_gqa_reads_shared_kv_heads_from_views(dtype):
    b, hq, hkv, sq, sk, d = 2, 8, 2, 100, 700, 128
    q = randn(b, hq, sq, d, dtype=dtype)
    kw = {"enable_gqa": True, "causal": True, "alignment": "bottom_right"}
    # k and v as narrow views of one packed (B, Sk, heads, D) tensor, a spare head between
    kv = randn(b, sk, 2 * hkv + 1, d, dtype=dtype)
    k, v = kv[:, :, :hkv].transpose(1, 2), kv[:, :, hkv + 1 :].transpose(1, 2)
    check(q, k, v, **kw)
    # kv heads with stride 0: one head expanded to hkv
    k0 = randn(b, 1, sk, d, dtype=dtype).expand(b, hkv, sk, d)
    v0 = randn(b, 1, sk, d, dtype=dtype).expand(b, hkv, sk, d)
    assert k0.stride(1) == 0
    check(q, k0, v0, **kw)
    # The same config on materialized repeats gives the same bits (no mask, so both
    # calls walk identical key tiles in each query tile).
    name = _debug.chosen_config(q, k, v, enable_gqa=True)
    group = hq // hkv
    with _debug.forced_config(name):
        shared = fused_attention(q, k, v, enable_gqa=True)
        repeated = fused_attention(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1))
    assert torch.equal(shared, repeated)


def test_gqa_allocates_no_repeated_kv():
    b, hq, hkv, sq, sk, d = 1, 16, 2, 16, 16384, 128
    q, k, v = make_qkv(b, hq, hkv, sq, sk, d, torch.float16)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    out, lse = fused_attention(q, k, v, enable_gqa=True, return_lse=True)
    torch.cuda.synchronize()
    grown = torch.cuda.max_memory_allocated() - before
    repeated_k = b * hq * sk * d * k.element_size()  # 64 MiB: k alone, repeated to hq heads
    outputs = out.numel() * out.element_size() + lse.numel() * 4
    assert grown < repeated_k, (
        f"the call allocated {grown} B at peak (outputs {outputs} B); a repeat of k "
        f"alone would take {repeated_k} B"
    )
    assert_matches(out, q, k, v, lse, enable_gqa=True)


# ---------------------------------------------------------------- shapes and layouts


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize(
    "b,hq,hkv", [(1, 1, 1), (3, 5, 5), (8, 16, 16), (17, 2, 2), (3, 6, 2), (17, 4, 1), (8, 16, 4)]
)
def test_batch_heads(b, hq, hkv, causal):
    dtype = DTYPES[(b + hq + causal) % 2]
    d = 64 if hq % 2 else 128
    kw = {"causal": causal, "enable_gqa": hq != hkv}
    q, k, v = make_qkv(b, hq, hkv, 300, 257, d, dtype)
    check(q, k, v, return_lse=False, **kw)


LARGE_GRIDS = [
    (8, 40, 113, 1000, torch.float16, 64),
    (4, 40, 1000, 1000, torch.bfloat16, 128),
    (4, 40, 2049, 1000, torch.float16, 256),
    (4, 40, 1000, 2049, torch.bfloat16, 96),
]
LARGE_MASKS = {
    "full": {},
    "causal": {"causal": True},
    "causal_br_window": {"causal": True, "alignment": "bottom_right", "window": (300, -1)},
}


@pytest.mark.parametrize("mask", list(LARGE_MASKS))
@pytest.mark.parametrize(
    "b,h,sq,sk,dtype,d",
    LARGE_GRIDS,
    ids=[f"{b}x{h}x{sq}x{sk}-{dtype_id(t)}-d{d}" for b, h, sq, sk, t, d in LARGE_GRIDS],
)
def test_large_grids(b, h, sq, sk, dtype, d, mask):
    # Enough query tiles to fill the GPU: the heuristic's large-tile configs (the
    # seqlen tests above, with few heads, run the small-grid / key-group ones).
    q, k, v = make_qkv(b, h, h, sq, sk, d, dtype)
    check(q, k, v, return_lse=(mask != "full"), **LARGE_MASKS[mask])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_bshd_views_without_copy(causal, dtype):
    # Packed (B, S, Hq + 2 Hkv, D) projections viewed as (B, H, S, D): strides
    # (S*H*D, D, H*D, 1), no copy.
    b, s, hq, hkv, d = 2, 333, 6, 2, 80
    x = randn(b, s, hq + 2 * hkv, d, dtype=dtype)
    q = x[:, :, :hq].transpose(1, 2)
    k = x[:, :, hq : hq + hkv].transpose(1, 2)
    v = x[:, :, hq + hkv :].transpose(1, 2)
    assert not q.is_contiguous() and q.data_ptr() == x.data_ptr()
    check(q, k, v, return_lse=False, causal=causal, enable_gqa=True)


@pytest.mark.parametrize(
    "dtype,d,kw",
    [
        (torch.float16, 64, {"causal": False}),
        (torch.bfloat16, 64, {"causal": True}),
        (torch.bfloat16, 40, {"window": (30, 10), "alignment": "bottom_right"}),
        (torch.float16, 256, {"causal": True, "softcap": 5.0}),
    ],
    ids=["f16-d64", "bf16-d64-causal", "bf16-d40-window", "f16-d256-causal-softcap"],
)
def test_unaligned_rows_fallback(dtype, d, kw):
    q = unaligned(2, 3, 150, d, dtype, scale=q_scale_for(kw))
    k = randn(2, 3, 97, d + 8, dtype=dtype)[..., 3 : 3 + d]  # 6-byte offset
    v = randn(2, 3, 97, d, dtype=dtype)
    assert k.data_ptr() % 16 != 0 and k.stride(2) == d + 8
    check(q, k, v, **kw)


# ---------------------------------------------------------------- adversarial inputs


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "kw",
    [
        {"causal": True},
        {"causal": True, "window": (16, -1), "enable_gqa": True},
        {"softcap": 5.0, "enable_gqa": True},
    ],
    ids=kw_id,
)
def test_all_ones(kw, dtype):
    # Every visible score equal (top-left causal leaves every row a key): out is 1.
    hkv = 2 if kw.get("enable_gqa") else 4
    q = torch.ones(2, 4, 200, 64, device="cuda", dtype=dtype)
    k = torch.ones(2, hkv, 230, 64, device="cuda", dtype=dtype)
    out, lse = run_checked(q, k, k, **kw)
    assert torch.equal(out, torch.ones_like(out))
    assert_matches(out, q, k, k, lse, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "kw", [{"causal": False}, {"causal": True}, {"window": (40, 40)}], ids=kw_id
)
def test_identical_keys(kw, dtype):
    q = randn(2, 4, 150, 64, dtype=dtype)
    k = randn(2, 4, 1, 64, dtype=dtype).expand(2, 4, 190, 64)
    v = randn(2, 4, 190, 64, dtype=dtype)
    assert k.stride(2) == 0
    check(q, k, v, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "kw",
    [
        {"causal": False},
        {"causal": True},
        {"causal": True, "softcap": 30.0, "alignment": "bottom_right"},
    ],
    ids=kw_id,
)
def test_large_magnitude_q(kw, dtype):
    # Scores of ~30 standard deviations, up to a few hundred: softmax saturates to
    # near one-hot rows (and with softcap, tanh saturates too).
    q = randn(2, 4, 257, 64, dtype=dtype, scale=30.0)
    k, v = randn(2, 4, 300, 64, dtype=dtype), randn(2, 4, 300, 64, dtype=dtype)
    check(q, k, v, **kw)


@pytest.mark.parametrize("d", [64, 160])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_ramp_in_v(causal, d):
    # v[j, c] = j / S + c / D catches transposed or shifted V layouts.
    s = 321
    j = torch.arange(s, device="cuda").view(s, 1) / s
    c = torch.arange(d, device="cuda").view(1, d) / d
    dtype = torch.float16 if d == 64 else torch.bfloat16
    v = (j + c).to(dtype).expand(2, 3, s, d).contiguous()
    q, k = randn(2, 3, 200, d, dtype=dtype), randn(2, 3, s, d, dtype=dtype)
    check(q, k, v, causal=causal)


@pytest.mark.parametrize("softcap", [None, 10.0], ids=["nocap", "cap10"])
@pytest.mark.parametrize("scale", [0.05, 0.3])
def test_explicit_scale(scale, softcap):
    dtype = torch.bfloat16 if softcap else torch.float16
    q, k, v = make_qkv(2, 4, 4, 190, 230, 80, dtype, q_scale=2.0)
    check(q, k, v, scale=scale, softcap=softcap)


def test_empty_batch_heads_and_queries():
    gqa_all = {
        "enable_gqa": True,
        "causal": True,
        "window": (3, -1),
        "alignment": "bottom_right",
        "softcap": 5.0,
    }
    cases = [
        ((0, 4, 10, 64), (0, 4, 12, 64), {}),
        ((2, 0, 10, 64), (2, 0, 12, 64), {"causal": True}),
        ((2, 4, 0, 64), (2, 4, 12, 64), {}),
        ((2, 4, 0, 128), (2, 2, 12, 128), gqa_all),
        ((0, 4, 10, 40), (0, 2, 12, 40), {"enable_gqa": True}),
    ]
    for dtype in DTYPES:
        for shape_q, shape_k, kw in cases:
            q = torch.empty(shape_q, device="cuda", dtype=dtype)
            k = torch.empty(shape_k, device="cuda", dtype=dtype)
            out = fused_attention(q, k, k, **kw)
            assert out.shape == shape_q and out.dtype == dtype, (shape_q, kw)
            out, lse = fused_attention(q, k, k, return_lse=True, **kw)
            assert out.shape == shape_q and lse.shape == shape_q[:3], (shape_q, kw)
            assert lse.dtype == torch.float32


# ---------------------------------------------------------------- streams, graphs, compile


def test_non_default_stream():
    kw = {"causal": True, "window": (200, -1), "enable_gqa": True}
    q, k, v = make_qkv(4, 8, 2, 777, 777, 128, torch.bfloat16)
    expected = fused_attention(q, k, v, **kw)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    eye = torch.eye(128, device="cuda", dtype=torch.bfloat16)
    with torch.cuda.stream(stream):
        # long work queued ahead on this stream (x @ I is exact): a launch on the
        # wrong stream would read q2 before this stream's writes land
        q2 = q * 1.0
        for _ in range(20):
            q2 = q2 @ eye
        out = fused_attention(q2, k, v, **kw)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    assert torch.equal(out, expected)


def test_cuda_graph_capture_and_replay():
    shape = (2, 8, 2, 500, 600, 128)
    kw = {
        "causal": True,
        "alignment": "bottom_right",
        "window": (200, -1),
        "softcap": 20.0,
        "enable_gqa": True,
    }
    check_graph_replays(shape, kw, q_scale=3.0)


COMPILE_KW = {
    "causal": True,
    "alignment": "bottom_right",
    "window": (256, -1),
    "softcap": 30.0,
    "enable_gqa": True,
}


def _attention_block(xq, xkv):
    # xq: (B, Sq, Hq, D) and xkv: (B, Sk, 2 * Hkv, D) packed projections
    hkv = xkv.shape[2] // 2
    q = xq.transpose(1, 2)
    k, v = xkv[:, :, :hkv].transpose(1, 2), xkv[:, :, hkv:].transpose(1, 2)
    out, lse = fused_attention(q, k, v, return_lse=True, **COMPILE_KW)
    return out.transpose(1, 2).flatten(2), lse


def _compile_check(compiled, shapes):
    for b, sq, sk, hq, hkv, d in shapes:
        xq = randn(b, sq, hq, d, dtype=torch.bfloat16, scale=3.0)
        xkv = randn(b, sk, 2 * hkv, d, dtype=torch.bfloat16)
        with torch.no_grad():
            got_out, got_lse = compiled(xq, xkv)
            out, lse = _attention_block(xq, xkv)
        assert torch.equal(got_out, out) and torch.equal(got_lse, lse), (b, sq, sk)
        q, kv = xq.transpose(1, 2), xkv.transpose(1, 2)
        ref_out = out.view(b, sq, hq, d).transpose(1, 2)
        assert_matches(ref_out, q, kv[:, :hkv], kv[:, hkv:], lse, **COMPILE_KW)


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    compiled = torch.compile(_attention_block, fullgraph=True)
    _compile_check(compiled, [(2, 300, 700, 8, 2, 128)])


def test_torch_compile_fullgraph_dynamic():
    torch._dynamo.reset()
    compiled = torch.compile(_attention_block, fullgraph=True, dynamic=True)
    _compile_check(compiled, [(2, 300, 700, 8, 2, 128), (3, 129, 1000, 8, 2, 128)])


def test_opcheck():
    # fwd(q, k, v, scale, is_causal, window_left, window_right, bottom_right,
    #     softcap, enable_gqa, config); config -1: the heuristic
    q = randn(2, 3, 129, 64).requires_grad_(True)
    k, v = randn(2, 3, 77, 64), randn(2, 3, 77, 64)
    qb = randn(2, 4, 100, 128, dtype=torch.bfloat16).requires_grad_(True)
    kb, vb = (
        randn(2, 2, 150, 128, dtype=torch.bfloat16),
        randn(2, 2, 150, 128, dtype=torch.bfloat16),
    )
    cases = [
        (q, k, v, 0.125, False, -1, -1, False, 0.0, False, -1),
        (q, k, v, 0.125, True, -1, -1, True, 0.0, False, -1),
        (qb, kb, vb, 0.09, True, 40, -1, True, 20.0, True, -1),
        (qb, kb, vb, 0.09, False, 5, 7, False, 0.0, True, -1),
    ]
    for args in cases:
        torch.library.opcheck(torch.ops.flashcore.fwd.default, args)
        torch.library.opcheck(torch.ops.flashcore.fwd_lse.default, args)


# ---------------------------------------------------------------- the reference itself


def test_reference_agrees_with_sdpa_float64():
    # The oracle against an independent implementation where SDPA can express the
    # mask: is_causal (top-left), and masks built with tril/triu diagonal offsets
    # (the reference builds its own from index comparisons). off = 90 - 70 = 20.
    q = torch.randn(2, 4, 70, 32, device="cuda", dtype=torch.float64)
    k = torch.randn(2, 2, 90, 32, device="cuda", dtype=torch.float64)
    v = torch.randn(2, 2, 90, 32, device="cuda", dtype=torch.float64)
    ones = torch.ones(70, 90, dtype=torch.bool, device="cuda")
    cases = [
        ({"causal": True}, {"is_causal": True}),
        ({"causal": True, "alignment": "bottom_right"}, {"attn_mask": ones.tril(20)}),
        ({"window": (7, 5), "alignment": "bottom_right"}, {"attn_mask": ones.tril(25).triu(13)}),
        ({"causal": True, "window": (7, 5)}, {"attn_mask": ones.tril(0).triu(-7)}),
    ]
    for ours, theirs in cases:
        out, _ = _reference.attention_ref(q, k, v, enable_gqa=True, **ours)
        expected = F.scaled_dot_product_attention(q, k, v, enable_gqa=True, **theirs)
        assert (out - expected).abs().max().item() < 1e-12, ours
