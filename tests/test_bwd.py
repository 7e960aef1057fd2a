"""GPU tests of the backward pass (issue 10): gradients of fused_attention
against the float64 reference of flashcore._reference, on the same float16 /
bfloat16 inputs, through autograd and through the ops directly.

Criterion (FlashAttention-2's, `_reference.compare_grads`): per dq, dk and dv,
the max abs error is at most 2x the error that plain PyTorch attention
differentiated in the same dtype makes against the float64 gradients, plus a
floor relative to the largest gradient; no NaN or inf; exact zeros in the dq rows
of queries that see no key and the dk / dv rows of keys no query sees. The
training forward (fwd_train) is checked against `_reference.compare` too.

Coverage is a covering design, not the cross product: every dtype x covered head
dim with three mask kinds, every mask kind with tails and Sq != Sk both ways
(rotating head counts: MHA, GQA 8/2, MQA), then GQA, rows and keys without pairs,
poisoned outputs and workspace, strided and unaligned layouts, adversarial
inputs, the lse gradient, autograd end to end, torch.compile, opcheck, double
backward, run-to-run reproducibility, the deterministic mode (the reference rule
over a grid, bitwise-equal repeated runs, poisoned dq, unaligned and strided
layouts), every compiled backward config forced (one deterministic case each), the
GQA group split forced to every divisor of the group (with its own poisoned
workspace, exact zeros and bitwise reproducibility; in both modes), the Hopper
configs as the heuristic picks them on H100 / H200 (unforced runs, poisoned
workspace, the mma.sync fallbacks), and the head dims the backward does not
cover (a clear error). Inputs are fresh
random tensors in each test, seeded from the test id so a failure reproduces.
"""

import math
import warnings
from fractions import Fraction

import pytest
import torch
from grids import DTYPES, cases_dtype_head_dim, dtype_id, kw_id, randn, seed_from_test_id  # noqa: F401
from grids import MASKS as GRID_MASKS

from flashcore import _reference, fused_attention, sdpa

try:
    from flashcore import _debug

    BWD_CONFIGS = _debug.bwd_configs()
    CONFIGS_ERROR = None
except (ImportError, OSError, RuntimeError, AttributeError) as exc:  # reported by the tests
    BWD_CONFIGS, CONFIGS_ERROR = [], exc

pytestmark = pytest.mark.gpu

# Every tile width's edges: 8 (most padding), 40, 64, 96, 128, 160 and 256.
HEAD_DIMS = [8, 40, 64, 96, 128, 160, 256]


def make(b, hq, hkv, sq, sk, d, dtype, q_scale=1.0):
    """q, k, v and an output gradient dout."""
    return (
        randn(b, hq, sq, d, dtype=dtype, scale=q_scale),
        randn(b, hkv, sk, d, dtype=dtype),
        randn(b, hkv, sk, d, dtype=dtype),
        randn(b, hq, sq, d, dtype=dtype),
    )


def q_scale_for(kw):
    # With softcap, scores of ~3 standard deviations so the cap bends them.
    return 3.0 if kw.get("softcap") else 1.0


def op_args(q, kw, deterministic=False, config=-1):
    """fused_attention's keywords as the ops' trailing scalar arguments."""
    scale = kw.get("scale") or 1.0 / math.sqrt(q.shape[-1])
    wl, wr = kw.get("window") or (-1, -1)
    return (
        scale,
        bool(kw.get("causal", False)),
        wl,
        wr,
        kw.get("alignment", "top_left") == "bottom_right",
        float(kw.get("softcap") or 0.0),
        bool(kw.get("enable_gqa", False)),
        deterministic,
        config,
    )


def train(q, k, v, dout, dlse=None, **kw):
    """fused_attention with grad-requiring q, k, v and autograd's backward for
    dout (and dlse on the lse, if given). Returns out, lse, dq, dk, dv."""
    leaves = [t.detach().requires_grad_(True) for t in (q, k, v)]  # same storage and strides
    out, lse = fused_attention(*leaves, return_lse=True, **kw)
    assert out.requires_grad and lse.requires_grad
    outputs, grads = (out,), (dout,)
    if dlse is not None:
        outputs, grads = (out, lse), (dout, dlse)
    dq, dk, dv = torch.autograd.grad(outputs, leaves, grads)
    return out.detach(), lse.detach(), dq, dk, dv


def assert_grads(dq, dk, dv, q, k, v, dout, dlse=None, **kw):
    check = _reference.compare_grads(dq, dk, dv, q, k, v, dout, dlse=dlse, **kw)
    assert check.ok, (
        f"{check} | q {tuple(q.shape)} {dtype_id(q.dtype)}, k {tuple(k.shape)}, v "
        f"{tuple(v.shape)}, dlse {'yes' if dlse is not None else 'no'}, {kw}"
    )
    for name, g, t in (("dq", dq, q), ("dk", dk, k), ("dv", dv, v)):
        assert g.shape == t.shape and g.dtype == t.dtype, name
    return check


def check(q, k, v, dout, dlse=None, **kw):
    """Training call through autograd; forward and gradients against the reference."""
    out, lse, dq, dk, dv = train(q, k, v, dout, dlse, **kw)
    fwd = _reference.compare(out, q, k, v, lse, **kw)
    assert fwd.ok, f"training forward: {fwd} | {kw}"
    return assert_grads(dq, dk, dv, q, k, v, dout, dlse, **kw)


def run_case(dtype, d, heads, sq, sk, kw):
    b, hq, hkv = heads
    q, k, v, dout = make(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
    return check(q, k, v, dout, **kw)


# ---------------------------------------------------------------- dtype x head dim


@pytest.mark.parametrize("case", cases_dtype_head_dim(HEAD_DIMS))
def test_dtype_head_dim(case):
    run_case(*case)


# ---------------------------------------------------------------- mask kind x seqlens

MASKS = dict(GRID_MASKS, softcap30={"softcap": 30.0})
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
]
# (batch, heads_q, heads_kv): MHA, GQA 8/2, MQA 8/1, a group of one with enable_gqa
_HEADS_B = [((2, 3, 3), False), ((1, 8, 2), True), ((1, 8, 1), True), ((1, 3, 3), True)]


def _cases_mask_seqlen():
    # Each mask with three seqlen pairs, rotating so every pair meets several masks.
    cases, n = [], 0
    for m, (mask, kw) in enumerate(MASKS.items()):
        for j in range(3):
            sq, sk = SEQ_PAIRS[(m + 3 * j) % len(SEQ_PAIRS)]
            heads, gqa = _HEADS_B[n % len(_HEADS_B)]
            dtype, d = DTYPES[n % 2], HEAD_DIMS[n % len(HEAD_DIMS)]
            case_kw = dict(kw, enable_gqa=True) if gqa else kw
            name = f"{mask}-{sq}x{sk}-{dtype_id(dtype)}-d{d}-h{heads[1]}_{heads[2]}"
            cases.append(pytest.param((dtype, d, heads, sq, sk, case_kw), id=name))
            n += 1
    return cases


@pytest.mark.parametrize("case", _cases_mask_seqlen())
def test_mask_seqlens(case):
    run_case(*case)


# ---------------------------------------------------------------- GQA / MQA


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("hkv", [2, 1], ids=["gqa8_2", "mqa8_1"])
@pytest.mark.parametrize("d", [64, 128])
def test_gqa_sums_dk_dv_over_the_group(d, hkv, dtype):
    kw = {"enable_gqa": True, "causal": True, "alignment": "bottom_right"}
    q, k, v, dout = make(2, 8, hkv, 300, 433, d, dtype)
    check(q, k, v, dout, **kw)


def test_gqa_matches_materialized_repeats():
    # The group loop's dk / dv equal the per-q-head gradients of repeated k / v
    # summed over the group (reference-level agreement; the sums differ in order).
    q, k, v, dout = make(1, 8, 2, 200, 250, 64, torch.bfloat16)
    _, _, dq, dk, dv = train(q, k, v, dout, enable_gqa=True)
    kr, vr = k.repeat_interleave(4, 1), v.repeat_interleave(4, 1)
    _, _, dq_r, dk_r, dv_r = train(q, kr, vr, dout)

    def err(a, b):
        return (a.float() - b.float()).abs().max().item()

    assert err(dq, dq_r) < 1e-2 * max(1.0, dq_r.abs().max().item())
    for got, rep in ((dk, dk_r), (dv, dv_r)):
        summed = rep.float().view(1, 2, 4, 250, 64).sum(2)
        assert err(got, summed) < 5e-2 * max(1.0, summed.abs().max().item())


# ---------------------------------------------------------------- no pairs: exact zeros

# Queries that see no key (dq rows 0) and keys no query sees (dk, dv rows 0).
EMPTY_CASES = {
    # off = -200: queries 0..199 see no key
    "causal_br_sq_gt_sk": (300, 100, {"causal": True, "alignment": "bottom_right"}),
    # top-left causal with Sk > Sq: keys Sq.. seen by nobody (whole key blocks)
    "causal_tl_sk_gt_sq": (100, 400, {"causal": True}),
    # each query sees key i only: queries 70.. none; every key seen
    "window_0_0_sq_gt_sk": (200, 70, {"window": (0, 0)}),
    # keys i - 10 .. i: queries 110.. none; keys 0..99 all seen
    "window_left_only": (400, 100, {"window": (10, -1)}),
    # off = -30, keys j <= i - 25: queries 0..24 see none
    "window_right_br": (150, 120, {"window": (-1, 5), "alignment": "bottom_right"}),
    # off = -193, keys i - 201 <= j <= i - 193, with GQA
    "causal_window_br_gqa": (
        257,
        64,
        {"causal": True, "window": (8, -1), "alignment": "bottom_right", "enable_gqa": True},
    ),
    # a narrow band: keys far right of every query's window
    "window_band_keys_unseen": (64, 1000, {"window": (3, 3)}),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", list(EMPTY_CASES))
def test_rows_and_keys_without_pairs_get_exact_zeros(case, dtype):
    sq, sk, kw = EMPTY_CASES[case]
    d = {torch.float16: 64, torch.bfloat16: 128}[dtype]
    hkv = 2 if kw.get("enable_gqa") else 4
    q, k, v, dout = make(2, 4, hkv, sq, sk, d, dtype)
    *_, dq, dk, dv = train(q, k, v, dout, **kw)
    mask_kw = {key: kw[key] for key in ("causal", "window", "alignment") if key in kw}
    mask = _reference.visible_mask(sq, sk, device="cuda", **mask_kw)
    unseen_q, unseen_k = ~mask.any(dim=-1), ~mask.any(dim=0)
    assert int(unseen_q.sum()) + int(unseen_k.sum()) > 0, "the case must have empty rows or keys"
    for name, g in (("dq", dq), ("dk", dk), ("dv", dv)):
        assert not g.isnan().any(), name
    assert dq[:, :, unseen_q].eq(0).all(), "a query that sees no key has nonzero dq"
    assert dk[:, :, unseen_k].eq(0).all(), "a key nobody sees has nonzero dk"
    assert dv[:, :, unseen_k].eq(0).all(), "a key nobody sees has nonzero dv"
    assert_grads(dq, dk, dv, q, k, v, dout, **kw)


# ---------------------------------------------------------------- poisoned memory


def poisoned_call(fn, out_specs):
    """Fills caching-allocator blocks of the output sizes with NaN (in the op's
    allocation order), frees them, then runs fn; asserts the returned tensors
    reused exactly those blocks. The op allocates dq, dk, dv and then its one
    workspace block: with dq, dk and dv landing on the poison in order, the
    allocator's replay puts the workspace on the last poisoned block too."""
    torch.cuda.synchronize()
    poison = [torch.full(shape, float("nan"), dtype=dt, device="cuda") for shape, dt in out_specs]
    ptrs = [p.data_ptr() for p in poison]
    del poison
    res = fn()
    got = [t.data_ptr() for t in res]
    assert got == ptrs[: len(got)], "outputs did not reuse the poisoned blocks; the check is void"
    return res


def bwd_specs(q, k, v, gqa_split=None, deterministic=False, dout=None, softcap=0.0):
    """The op's allocations: dq, dk, dv, then the workspace of the chosen config
    (for these tensors, the mode and a forced split) and GQA group split (the
    heuristic's unless forced; it depends on softcap for a Hopper config)."""
    forced = -1 if gqa_split is None else gqa_split
    name = _debug.chosen_bwd_config(q, k, deterministic, v=v, dout=dout, gqa_split=forced)
    assert name is not None
    if gqa_split is None:
        gqa_split = _debug.chosen_bwd_gqa_split(
            q, k, deterministic, v=v, dout=dout, softcap=softcap
        )
    b, hq, sq, d = q.shape
    ws = _debug.bwd_workspace_elems(b, hq, k.shape[1], sq, k.shape[2], d, name, gqa_split)
    return [(q.shape, q.dtype), (k.shape, k.dtype), (v.shape, v.dtype), ((ws,), torch.float32)]


POISON_CASES = {
    "plain_tail": (torch.float16, 64, (2, 4, 4, 200, 333), {}),
    "causal_br_empty_rows": (
        torch.bfloat16,
        128,
        (1, 4, 4, 300, 129),
        {"causal": True, "alignment": "bottom_right"},
    ),
    "gqa_window_softcap": (
        torch.float16,
        96,
        (2, 8, 2, 257, 513),
        {"enable_gqa": True, "window": (40, 7), "softcap": 5.0},
    ),
    "mqa_causal_unseen_keys": (
        torch.bfloat16,
        40,
        (1, 8, 1, 70, 1000),
        {"causal": True, "enable_gqa": True},
    ),
    "one_query": (torch.float16, 128, (3, 4, 2, 1, 1000), {"enable_gqa": True}),
}


@pytest.mark.parametrize("with_dlse", [False, True], ids=["no_dlse", "dlse"])
@pytest.mark.parametrize("case", list(POISON_CASES))
def test_poisoned_outputs_and_workspace(case, with_dlse):
    dtype, d, (b, hq, hkv, sq, sk), kw = POISON_CASES[case]
    q, k, v, dout = make(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
    out, lse = poisoned_call(
        lambda: torch.ops.flashcore.fwd_train(q, k, v, *op_args(q, kw)),
        [(q.shape, dtype), (q.shape[:3], torch.float32)],
    )
    assert _reference.compare(out, q, k, v, lse, **kw).ok
    dlse = torch.randn(b, hq, sq, device="cuda") if with_dlse else None
    dq, dk, dv = poisoned_call(
        lambda: torch.ops.flashcore.bwd(dout, q, k, v, out, lse, dlse, *op_args(q, kw)),
        bwd_specs(q, k, v, dout=dout, softcap=kw.get("softcap", 0.0)),
    )
    assert_grads(dq, dk, dv, q, k, v, dout, dlse, **kw)


# ---------------------------------------------------------------- the GQA group split

# docs/design/backward.md section 5: each kv head's group of query heads split
# into G parts (forced here; the heuristic picks G from the grid size), each
# part's fp32 dK / dV partials added in a fixed order by the reduce kernel.
# Every (q_per_kv, G) pair with G dividing q_per_kv, each with the masks (causal
# both alignments, windows), softcap, tails and Sq != Sk both ways, rotating
# dtype and head dim (every tile width, padded and full).
SPLIT_PAIRS = [(q_per_kv, g) for q_per_kv in (2, 4, 8) for g in (1, 2, 4, 8) if q_per_kv % g == 0]
SPLIT_CASES = {
    "causal_tl_unseen_keys": (300, 433, {"causal": True}),
    "causal_br_empty_rows": (433, 300, {"causal": True, "alignment": "bottom_right"}),
    "window_br": (257, 513, {"window": (40, 7), "alignment": "bottom_right"}),
    "window_softcap": (200, 131, {"window": (-1, 30), "softcap": 5.0}),
    "full_tails": (17, 1000, {}),
}
SPLIT_HEAD_DIMS = [64, 128, 40, 256, 96, 160]


def _split_params():
    params, n = [], 0
    for q_per_kv, g in SPLIT_PAIRS:
        for case in SPLIT_CASES:
            dtype, d = DTYPES[n % 2], SPLIT_HEAD_DIMS[n % len(SPLIT_HEAD_DIMS)]
            name = f"q{q_per_kv}-g{g}-{case}-{dtype_id(dtype)}-d{d}"
            params.append(pytest.param(q_per_kv, g, case, dtype, d, id=name))
            n += 1
    return params


@pytest.mark.parametrize("q_per_kv,g,case,dtype,d", _split_params())
def test_gqa_split_forced(q_per_kv, g, case, dtype, d):
    sq, sk, kw = SPLIT_CASES[case]
    kw = dict(kw, enable_gqa=True)
    q, k, v, dout = make(2, 2 * q_per_kv, 2, sq, sk, d, dtype, q_scale_for(kw))
    with _debug.forced_bwd_gqa_split(g):
        *_, dq, dk, dv = train(q, k, v, dout, **kw)
    assert_grads(dq, dk, dv, q, k, v, dout, **kw)


@pytest.mark.parametrize("g", [2, 4])
@pytest.mark.parametrize("case", ["causal_tl_sk_gt_sq", "window_band_keys_unseen"])
def test_gqa_split_keys_without_pairs_get_exact_zeros(case, g):
    # Key blocks no query of any part sees: every part writes zero partials.
    sq, sk, kw = EMPTY_CASES[case]
    kw = dict(kw, enable_gqa=True)
    q, k, v, dout = make(2, 8, 2, sq, sk, 128, torch.bfloat16)
    with _debug.forced_bwd_gqa_split(g):
        *_, dq, dk, dv = train(q, k, v, dout, **kw)
    mask_kw = {key: kw[key] for key in ("causal", "window", "alignment") if key in kw}
    unseen_k = ~_reference.visible_mask(sq, sk, device="cuda", **mask_kw).any(dim=0)
    assert int(unseen_k.sum()) > 0
    assert dk[:, :, unseen_k].eq(0).all() and dv[:, :, unseen_k].eq(0).all()
    assert_grads(dq, dk, dv, q, k, v, dout, **kw)


@pytest.mark.parametrize(
    "g,kw",
    [
        (2, {"causal": True, "alignment": "bottom_right"}),
        (4, {"window": (50, 10), "softcap": 5.0}),
        (8, {}),
    ],
    ids=["g2-causal_br", "g4-window_softcap", "g8-full"],
)
def test_gqa_split_poisoned_outputs_and_workspace(g, kw):
    # NaN in dk, dv and the workspace (partials included) before the op runs:
    # an element the main kernel or the reduce fails to write shows up.
    kw = dict(kw, enable_gqa=True)
    q, k, v, dout = make(2, 8, 1, 257, 333, 128, torch.float16, q_scale_for(kw))
    out, lse = torch.ops.flashcore.fwd_train(q, k, v, *op_args(q, kw))
    dlse = torch.randn_like(lse)
    dq, dk, dv = poisoned_call(
        lambda: torch.ops.flashcore.bwd(dout, q, k, v, out, lse, dlse, *op_args(q, kw), g),
        bwd_specs(q, k, v, gqa_split=g, dout=dout),
    )
    assert_grads(dq, dk, dv, q, k, v, dout, dlse, **kw)


@pytest.mark.parametrize("det", [False, True], ids=["default", "deterministic"])
@pytest.mark.parametrize("g", [2, 4, 8])
def test_gqa_split_run_to_run_bitwise(g, det):
    # The parts are added in ascending order by one thread per element: dk and
    # dv do not depend on how the blocks were scheduled; in deterministic mode
    # (the main kernel without dQ, the dQ kernel) dq neither.
    kw = {"causal": True, "enable_gqa": True}
    q, k, v, dout = make(2, 8, 1, 700, 900, 128, torch.bfloat16)
    names = ("out", "lse", "dq", "dk", "dv")
    with _debug.forced_bwd_gqa_split(g):
        first = train(q, k, v, dout, deterministic=det, **kw)
        for _ in range(3):
            again = train(q, k, v, dout, deterministic=det, **kw)
            for i in (2, 3, 4) if det else (3, 4):
                assert torch.equal(again[i], first[i]), f"{names[i]} differs bitwise"
    assert_grads(*first[2:], q, k, v, dout, **kw)


def test_gqa_split_unaligned_inputs():
    # k and v rows that are not 16-byte aligned: the split main kernels'
    # element-wise loads (kAligned16 false).
    kw = {"causal": True, "enable_gqa": True}
    q, _, _, dout = make(2, 4, 2, 150, 190, 64, torch.float16)
    k = unaligned(2, 2, 190, 64, torch.float16)
    v = unaligned(2, 2, 190, 64, torch.float16)
    with _debug.forced_bwd_gqa_split(2):
        *_, dq, dk, dv = train(q, k, v, dout, **kw)
    assert_grads(dq, dk, dv, q, k, v, dout, **kw)


@pytest.mark.parametrize(
    "b,hq,hkv,s", [(8, 8, 2, 512), (1, 32, 8, 8192), (1, 32, 1, 2048)], ids=str
)
def test_gqa_split_heuristic_on_this_gpu(b, hq, hkv, s):
    # The GPT training step that motivated the split (8 x 8/2 heads, 512 keys),
    # the GQA row and an MQA row: the divisor G of the group with the
    # fewest waves of one block per SM per unit of work (waves / G), the
    # smallest on ties (heuristics.h), for the config the heuristic picks: a
    # Hopper one (a grid of 48% of a wave or more on H100 / H200: the GPT step
    # and the GQA row) splits by the same model (NOTES v19), except with softcap
    # (no split build). The deterministic mode keeps the mma.sync configs.
    q = torch.empty(b, hq, s, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.empty(b, hkv, s, 128, device="cuda", dtype=torch.bfloat16)
    for det in (False, True):
        cfg = next(c for c in BWD_CONFIGS if c["name"] == _debug.chosen_bwd_config(q, k, det))
        got = _debug.chosen_bwd_gqa_split(q, k, det)
        assert not (det and cfg["sm90"]), cfg["name"]
        assert got == _split_model(b, hkv, s, hq // hkv, cfg["block_n"]), (cfg["name"], det)
        soft = _debug.chosen_bwd_gqa_split(q, k, det, softcap=30.0)
        assert soft == (1 if cfg["sm90"] else got), (cfg["name"], det, soft)


def _split_model(b, hkv, s, group, block_n):
    """heuristics.h choose_bwd_gqa_split's model, for an mma.sync config."""
    blocks = b * hkv * -(-s // block_n)
    sms = _debug.device_desc()["sm_count"]
    divisors = [g for g in range(1, group + 1) if group % g == 0]
    cost = {g: Fraction(-(-blocks * g // sms), g) for g in divisors}
    return min(g for g in divisors if cost[g] == min(cost.values()))


# ---------------------------------------------------------------- layouts


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_bshd_views_and_gradient_layouts(causal, dtype):
    # Projections in (B, S, H, D) storage viewed as (B, H, S, D): the gradients
    # keep the inputs' strides (dense views) or their dim order (slices of one
    # packed projection), so the upstream transpose needs no copy.
    b, s, hq, hkv, d = 2, 333, 6, 2, 64
    x = randn(b, s, hq + 2 * hkv, d, dtype=dtype)
    q = randn(b, s, hq, d, dtype=dtype).transpose(1, 2)  # dense BSHD view
    k = x[:, :, hq : hq + hkv].transpose(1, 2)  # slices of a packed projection
    v = x[:, :, hq + hkv :].transpose(1, 2)
    dout = randn(b, s, hq, d, dtype=dtype).transpose(1, 2)  # BSHD gradient
    kw = {"causal": causal, "enable_gqa": True}
    *_, dq, dk, dv = train(q, k, v, dout, **kw)
    assert dq.stride() == q.stride(), (dq.stride(), q.stride())
    for g in (dk, dv):
        assert g.transpose(1, 2).is_contiguous(), g.stride()
    assert_grads(dq, dk, dv, q, k, v, dout, **kw)


def test_dout_layouts():
    q, k, v, _ = make(2, 4, 4, 150, 190, 64, torch.bfloat16)
    kw = {"causal": True}
    base = randn(2, 4, 64, 150, dtype=torch.bfloat16)
    douts = {
        "last_dim_strided": base.transpose(2, 3),  # made contiguous by the autograd glue
        "expanded": randn(1, 1, 1, 64, dtype=torch.bfloat16).expand(2, 4, 150, 64),
        "row_stride_wide": randn(2, 4, 150, 128, dtype=torch.bfloat16)[..., 32:96],
    }
    for name, dout in douts.items():
        _, _, dq, dk, dv = train(q, k, v, dout, **kw)
        check_ = _reference.compare_grads(dq, dk, dv, q, k, v, dout.contiguous(), **kw)
        assert check_.ok, f"{name}: {check_}"


def test_sum_loss_backward():
    # out.sum()'s gradient reaches the backward as one expanded element.
    q, k, v, _ = make(2, 4, 2, 130, 170, 128, torch.float16)
    kw = {"enable_gqa": True, "window": (50, 0)}
    leaves = [t.detach().requires_grad_(True) for t in (q, k, v)]
    fused_attention(*leaves, **kw).sum().backward()
    dout = torch.ones_like(q)
    assert_grads(*(t.grad for t in leaves), q, k, v, dout, **kw)


def unaligned(b, h, s, d, dtype, scale=1.0):
    # Row stride d + 1 after a 1-element offset: neither the base pointer nor the
    # rows are 16-byte aligned, so the kernels must take their element-wise path.
    base = randn(b * h * s * (d + 1) + 1, dtype=dtype, scale=scale)
    t = base[1:].view(b, h, s, d + 1)[..., :d]
    assert t.data_ptr() % 16 != 0
    return t


@pytest.mark.parametrize(
    "dtype,d,kw",
    [
        (torch.float16, 64, {"causal": True}),
        (torch.bfloat16, 40, {"window": (30, 10), "alignment": "bottom_right"}),
        (torch.bfloat16, 128, {"softcap": 5.0}),
    ],
    ids=["f16-d64-causal", "bf16-d40-window", "bf16-d128-softcap"],
)
def test_unaligned_rows(dtype, d, kw):
    q = unaligned(2, 3, 150, d, dtype, scale=q_scale_for(kw))
    k = randn(2, 3, 97, d + 8, dtype=dtype)[..., 3 : 3 + d]  # 6-byte offset
    v = randn(2, 3, 97, d, dtype=dtype)
    dout = unaligned(2, 3, 150, d, dtype)
    check(q, k, v, dout, **kw)


# ---------------------------------------------------------------- adversarial inputs


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "kw",
    [{"causal": False}, {"causal": True}, {"causal": True, "softcap": 30.0}],
    ids=kw_id,
)
def test_large_magnitude_q(kw, dtype):
    # Near one-hot softmax rows: dP - D cancels, the precision edge of dS.
    q, k, v, dout = make(2, 4, 4, 257, 300, 64, dtype, q_scale=30.0)
    check(q, k, v, dout, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_identical_keys_and_all_ones(dtype):
    q = randn(2, 4, 150, 64, dtype=dtype)
    k = randn(2, 4, 1, 64, dtype=dtype).expand(2, 4, 190, 64)
    v, dout = randn(2, 4, 190, 64, dtype=dtype), randn(2, 4, 150, 64, dtype=dtype)
    check(q, k, v, dout, causal=True)
    ones = torch.ones(2, 4, 200, 64, device="cuda", dtype=dtype)
    check(ones, ones, ones, randn(2, 4, 200, 64, dtype=dtype), causal=True)


@pytest.mark.parametrize("d", [64, 128])
def test_ramps_in_v_and_dout(d):
    # v[j, c] = j / S + c / D and dout likewise catch transposed dV / dK layouts.
    sq, sk = 200, 321

    def ramp(s):
        return torch.arange(s, device="cuda").view(s, 1) / s + torch.arange(d, device="cuda") / d

    dtype = torch.float16 if d == 64 else torch.bfloat16
    v = ramp(sk).to(dtype).expand(2, 3, sk, d).contiguous()
    dout = ramp(sq).to(dtype).expand(2, 3, sq, d).contiguous()
    q, k = randn(2, 3, sq, d, dtype=dtype), randn(2, 3, sk, d, dtype=dtype)
    check(q, k, v, dout, causal=True)


@pytest.mark.parametrize("scale", [0.05, 0.3])
def test_explicit_scale(scale):
    q, k, v, dout = make(2, 4, 4, 190, 230, 96, torch.bfloat16, q_scale=2.0)
    check(q, k, v, dout, scale=scale, softcap=10.0)


# ---------------------------------------------------------------- the lse gradient


LSE_CASES = {
    "plain": (torch.float16, 64, (2, 4, 4, 200, 300), {}),
    "causal_br_empty_rows": (
        torch.bfloat16,
        128,
        (1, 4, 2, 300, 129),
        {"causal": True, "alignment": "bottom_right", "enable_gqa": True},
    ),
    "window_softcap": (
        torch.bfloat16,
        40,
        (2, 3, 3, 257, 257),
        {"window": (20, 5), "softcap": 5.0},
    ),
}


@pytest.mark.parametrize("lse_only", [False, True], ids=["out_and_lse", "lse_only"])
@pytest.mark.parametrize("case", list(LSE_CASES))
def test_lse_gradient(case, lse_only):
    dtype, d, (b, hq, hkv, sq, sk), kw = LSE_CASES[case]
    q, k, v, dout = make(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
    dlse = torch.randn(b, hq, sq, device="cuda")
    leaves = [t.detach().requires_grad_(True) for t in (q, k, v)]
    out, lse = fused_attention(*leaves, return_lse=True, **kw)
    if lse_only:  # the backward gets no dout: zeros
        dout = torch.zeros_like(dout)
        loss = (lse * dlse).nan_to_num(posinf=0.0, neginf=0.0).sum()
    else:
        loss = (out.float() * dout.float()).sum() + (lse * dlse).nan_to_num(neginf=0.0).sum()
    loss.backward()
    assert_grads(*(t.grad for t in leaves), q, k, v, dout, dlse, **kw)


# ---------------------------------------------------------------- autograd end to end


def test_loss_backward_into_leaf_parameters():
    kw = {"causal": True, "enable_gqa": True, "window": (128, -1), "softcap": 30.0}
    q, k, v, dout = make(2, 8, 2, 300, 300, 64, torch.bfloat16)
    leaves = [torch.nn.Parameter(t.clone()) for t in (q, k, v)]
    out = fused_attention(*leaves, **kw)
    (out.float() * dout.float()).sum().backward()
    assert_grads(*(p.grad for p in leaves), q, k, v, dout, **kw)


@pytest.mark.parametrize("which", ["q", "k", "v", "kv"])
def test_only_some_inputs_require_grad(which):
    q, k, v, dout = make(1, 4, 4, 120, 140, 64, torch.float16)
    ref = _reference.attention_grads_ref(q, k, v, dout, causal=True)
    leaves = {n: t.detach().requires_grad_(n in which) for n, t in zip("qkv", (q, k, v))}
    out = fused_attention(leaves["q"], leaves["k"], leaves["v"], causal=True)
    out.backward(dout)
    for i, name in enumerate("qkv"):
        g = leaves[name].grad
        if name not in which:
            assert g is None, name
        else:
            err = (g.double() - ref[i]).abs().max().item()
            assert err < 1e-2 * max(1.0, ref[i].abs().max().item()), (name, err)


def test_create_graph_works_and_double_backward_raises():
    q, k, v, dout = make(1, 2, 2, 64, 80, 64, torch.float16)
    leaves = [t.detach().requires_grad_(True) for t in (q, k, v)]
    out = fused_attention(*leaves, causal=True)
    dq, dk, dv = torch.autograd.grad(out, leaves, dout, create_graph=True)
    assert_grads(dq.detach(), dk.detach(), dv.detach(), q, k, v, dout, causal=True)
    with pytest.raises(RuntimeError, match=r"double backward"):
        dq.float().square().sum().backward()


def test_head_dims_without_a_backward_kernel_raise_clearly():
    # Where this GPU has no backward config for a head dim (99 KB GPUs above
    # 128), training raises ValueError at the forward, naming the head dim;
    # inference still runs. On A100 / H100 / H200 every head dim is served.
    missing = [d for d in range(8, 257, 8) if _debug.chosen_bwd_config(*make_qk(d)) is None]
    if not missing:
        pytest.skip("this GPU has a backward config for every head dim")
    d = missing[0]
    q, k, v, dout = make(1, 2, 2, 64, 80, d, torch.bfloat16)
    with pytest.raises(ValueError, match=rf"backward pass has no kernel for head_dim {d}"):
        fused_attention(q.detach().requires_grad_(True), k, v)
    with torch.no_grad():
        assert fused_attention(q, k, v).shape == q.shape
    out, lse = torch.ops.flashcore.fwd_lse(q, k, v, *op_args(q, {})[:7], -1)
    with pytest.raises(RuntimeError, match=rf"\[flashcore:ValueError\].*head_dim {d}"):
        torch.ops.flashcore.bwd(dout, q, k, v, out, lse, None, *op_args(q, {}))


def make_qk(d):
    return torch.empty(1, 2, 64, d, device="cuda"), torch.empty(1, 2, 80, d, device="cuda")


# ---------------------------------------------------------------- reproducibility


@pytest.mark.parametrize(
    "kw",
    [{}, {"causal": True, "enable_gqa": True}, {"window": (100, 20), "alignment": "bottom_right"}],
    ids=kw_id,
)
def test_run_to_run(kw):
    # dk and dv are summed in a fixed order (each key block's CTA walks its query
    # blocks, the GQA group loop its heads): bitwise equal. dq is accumulated with
    # fp32 atomics in a varying order: equal up to rounding.
    hkv = 2 if kw.get("enable_gqa") else 8
    q, k, v, dout = make(2, 8, hkv, 1000, 1100, 128, torch.bfloat16)
    first = train(q, k, v, dout, **kw)
    for _ in range(3):
        again = train(q, k, v, dout, **kw)
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
        assert torch.equal(again[3], first[3]), "dk differs bitwise between identical calls"
        assert torch.equal(again[4], first[4]), "dv differs bitwise between identical calls"
        diff = (again[2].float() - first[2].float()).abs().max().item()
        assert diff <= 2e-2 * first[2].float().abs().max().item(), diff
    assert_grads(*first[2:], q, k, v, dout, **kw)


# ---------------------------------------------------------------- deterministic mode


def check_det(q, k, v, dout, dlse=None, **kw):
    """check() with deterministic=True: the training forward and the
    deterministic backward's gradients against the reference. Returns out, lse,
    dq, dk, dv."""
    res = train(q, k, v, dout, dlse, deterministic=True, **kw)
    fwd = _reference.compare(res[0], q, k, v, res[1], **kw)
    assert fwd.ok, f"training forward: {fwd} | {kw}"
    assert_grads(*res[2:], q, k, v, dout, dlse, **kw)
    return res


# (dtype, head dim, (batch, heads_q, heads_kv), seqlen_q, seqlen_k, keywords):
# every mask kind, GQA / MQA, softcap, tails, Sq != Sk both ways, every tile
# width's edges (8 and 40 pad the 64 tile, 96 / 128 the 128 one, 160 / 256 the
# 256 one) and the rows / keys that take part in no pair.
DET_CASES = {
    "f16-d8-plain": (torch.float16, 8, (2, 3, 3), 113, 257, {}),
    "bf16-d40-causal-tail": (torch.bfloat16, 40, (1, 4, 4), 257, 113, {"causal": True}),
    "f16-d64-causal_br-gqa": (
        torch.float16,
        64,
        (2, 8, 2),
        300,
        190,
        {"causal": True, "alignment": "bottom_right", "enable_gqa": True},
    ),
    "bf16-d64-window-softcap": (
        torch.bfloat16,
        64,
        (1, 4, 4),
        1000,
        1000,
        {"window": (60, 20), "softcap": 5.0},
    ),
    "f16-d96-mqa-window_br": (
        torch.float16,
        96,
        (1, 8, 1),
        17,
        1000,
        {"window": (-1, 50), "alignment": "bottom_right", "enable_gqa": True},
    ),
    "bf16-d128-plain-sq1": (torch.bfloat16, 128, (3, 4, 2), 1, 300, {"enable_gqa": True}),
    "f16-d128-causal-softcap30": (
        torch.float16,
        128,
        (2, 3, 3),
        1000,
        2049,
        {"causal": True, "softcap": 30.0},
    ),
    "bf16-d128-causal_window_br": (
        torch.bfloat16,
        128,
        (2, 4, 4),
        2049,
        1000,
        {"causal": True, "window": (33, 40), "alignment": "bottom_right"},
    ),
    "f16-d160-gqa-window": (
        torch.float16,
        160,
        (2, 4, 2),
        257,
        113,
        {"enable_gqa": True, "window": (37, 11), "alignment": "bottom_right"},
    ),
    "bf16-d256-causal-tail": (torch.bfloat16, 256, (2, 4, 4), 300, 301, {"causal": True}),
    "f16-d256-gqa-softcap": (
        torch.float16,
        256,
        (1, 8, 2),
        113,
        1000,
        {"enable_gqa": True, "softcap": 8.0},
    ),
    "bf16-d64-sk1": (torch.bfloat16, 64, (2, 3, 3), 300, 1, {}),
    # queries 0..199 see no key (dq rows exactly 0)
    "f16-d64-empty_rows": (
        torch.float16,
        64,
        (2, 4, 4),
        300,
        100,
        {"causal": True, "alignment": "bottom_right"},
    ),
}


@pytest.mark.parametrize("case", list(DET_CASES))
def test_deterministic_gradients(case):
    dtype, d, (b, hq, hkv), sq, sk, kw = DET_CASES[case]
    q, k, v, dout = make(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
    with_dlse = list(DET_CASES).index(case) % 3 == 1  # the lse gradient on a third
    dlse = torch.randn(b, hq, sq, device="cuda") if with_dlse else None
    *_, dq, dk, dv = check_det(q, k, v, dout, dlse, **kw)
    mask_kw = {key: kw[key] for key in ("causal", "window", "alignment") if key in kw}
    mask = _reference.visible_mask(sq, sk, device="cuda", **mask_kw)
    unseen_q, unseen_k = ~mask.any(dim=-1), ~mask.any(dim=0)
    assert dq[:, :, unseen_q].eq(0).all(), "a query that sees no key has nonzero dq"
    assert dk[:, :, unseen_k].eq(0).all() and dv[:, :, unseen_k].eq(0).all()


DET_REPEAT_CASES = {
    # many key blocks per query block and query blocks per key block
    "f16-2x8x1000-d64-causal": (torch.float16, 64, (2, 8, 8), 1000, 1000, {"causal": True}),
    "bf16-1x8_2x777-d128-gqa": (torch.bfloat16, 128, (1, 8, 2), 777, 777, {"enable_gqa": True}),
    "f16-1x4x600-d256-window-softcap": (
        torch.float16,
        256,
        (1, 4, 4),
        600,
        900,
        {"window": (200, 100), "softcap": 10.0},
    ),
}


@pytest.mark.parametrize("case", list(DET_REPEAT_CASES))
def test_deterministic_is_bitwise_repeatable(case):
    dtype, d, (b, hq, hkv), sq, sk, kw = DET_REPEAT_CASES[case]
    q, k, v, dout = make(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
    first = check_det(q, k, v, dout, **kw)
    names = ("out", "lse", "dq", "dk", "dv")
    for run in range(20):
        again = train(q, k, v, dout, deterministic=True, **kw)
        for name, a, f in zip(names, again, first):
            assert torch.equal(a, f), f"{name} differs bitwise in run {run + 2}"
    # the default mode: the same gradients up to dq's accumulation order (dk and
    # dv take the same sums; compared with the same tolerance, not bitwise)
    default = train(q, k, v, dout, **kw)
    for name, a, f in zip(names[2:], default[2:], first[2:]):
        scale = f.float().abs().max().item()
        diff = (a.float() - f.float()).abs().max().item()
        assert diff <= 1e-2 * max(1.0, scale), (name, diff, scale)


def test_use_deterministic_algorithms_runs_the_deterministic_backward():
    q, k, v, dout = make(2, 8, 2, 1000, 1000, 64, torch.bfloat16)
    kw = {"causal": True, "enable_gqa": True}
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        for only in (False, True):
            torch.use_deterministic_algorithms(True, warn_only=only)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                got = [train(q, k, v, dout, **kw) for _ in range(3)]
            for again in got[1:]:
                assert all(torch.equal(a, f) for a, f in zip(again, got[0]))
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    explicit = train(q, k, v, dout, deterministic=True, **kw)
    assert all(torch.equal(a, f) for a, f in zip(explicit, got[0]))
    assert_grads(*explicit[2:], q, k, v, dout, **kw)


@pytest.mark.parametrize("case", ["gqa_window_softcap", "causal_br_empty_rows"])
def test_deterministic_poisoned_outputs(case):
    # dq is written by the dQ kernel directly (no postprocess): every element,
    # zeros included, must land on the NaN poison.
    dtype, d, (b, hq, hkv, sq, sk), kw = POISON_CASES[case]
    q, k, v, dout = make(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
    out, lse = torch.ops.flashcore.fwd_train(q, k, v, *op_args(q, kw, deterministic=True))
    dlse = torch.randn(b, hq, sq, device="cuda")
    dq, dk, dv = poisoned_call(
        lambda: torch.ops.flashcore.bwd(
            dout, q, k, v, out, lse, dlse, *op_args(q, kw, deterministic=True)
        ),
        bwd_specs(q, k, v, deterministic=True, dout=dout)[:3],
    )
    assert_grads(dq, dk, dv, q, k, v, dout, dlse, **kw)


@pytest.mark.parametrize(
    "dtype,d,kw",
    [
        (torch.float16, 64, {"causal": True}),
        (torch.bfloat16, 128, {"softcap": 5.0}),
    ],
    ids=["f16-d64-causal", "bf16-d128-softcap"],
)
def test_deterministic_unaligned_rows(dtype, d, kw):
    # the dQ kernel's element-wise loads, and dq rows that are not 16-byte aligned
    q = unaligned(2, 3, 150, d, dtype, scale=q_scale_for(kw))
    k = randn(2, 3, 97, d + 8, dtype=dtype)[..., 3 : 3 + d]
    v = randn(2, 3, 97, d, dtype=dtype)
    dout = unaligned(2, 3, 150, d, dtype)
    check_det(q, k, v, dout, **kw)


def test_deterministic_bshd_views():
    # dq keeps q's BSHD strides: the dQ kernel's strided 16-byte stores
    b, s, hq, hkv, d = 2, 333, 6, 2, 128
    x = randn(b, s, hq + 2 * hkv, d, dtype=torch.bfloat16)
    q = randn(b, s, hq, d, dtype=torch.bfloat16).transpose(1, 2)
    k = x[:, :, hq : hq + hkv].transpose(1, 2)
    v = x[:, :, hq + hkv :].transpose(1, 2)
    dout = randn(b, s, hq, d, dtype=torch.bfloat16).transpose(1, 2)
    kw = {"causal": True, "enable_gqa": True}
    dq = check_det(q, k, v, dout, **kw)[2]
    assert dq.stride() == q.stride(), (dq.stride(), q.stride())


def test_deterministic_dq_does_not_depend_on_the_main_config():
    # Proof that the deterministic path ran: its dq comes from the dQ kernel of
    # the tile head dim, whatever main config (key-block width) is forced, so it
    # is bitwise equal across configs of one width; the default mode's dq is a
    # sum of atomics over key blocks of each config's width.
    for d in sorted({c["head_dim"] for c in BWD_CONFIGS}):
        names = [c["name"] for c in BWD_CONFIGS if c["head_dim"] == d]
        # the Hopper configs have no deterministic mode (they refuse it:
        # test_sm90_bwd_refuses_the_deterministic_mode_and_a_split)
        names = [
            c["name"]
            for c in BWD_CONFIGS
            if c["name"] in names
            and not c["sm90"]
            and c["smem_bytes"] <= _debug.device_desc()["smem_optin"]
        ]
        if len(names) < 2:
            continue
        q, k, v, dout = make(1, 4, 2, 700, 900, d, torch.bfloat16)
        kw = {"causal": True, "enable_gqa": True}
        dqs = []
        for name in names:
            with _debug.forced_bwd_config(name):
                dqs.append(train(q, k, v, dout, deterministic=True, **kw)[2])
        assert all(torch.equal(dq, dqs[0]) for dq in dqs[1:]), (d, names)
        assert_grads(*train(q, k, v, dout, deterministic=True, **kw)[2:], q, k, v, dout, **kw)


def test_side_stream():
    q, k, v, dout = make(2, 8, 2, 500, 600, 64, torch.float16)
    kw = {"causal": True, "enable_gqa": True}
    expected = train(q, k, v, dout, **kw)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = train(q, k, v, dout, **kw)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    assert torch.equal(got[3], expected[3]) and torch.equal(got[4], expected[4])
    assert_grads(*got[2:], q, k, v, dout, **kw)


# ---------------------------------------------------------------- every backward config


def _bwd_config_params(pred=lambda cfg: True):
    if CONFIGS_ERROR is not None:  # one case that fails (on a GPU) with the error
        return [pytest.param("unavailable", id="configs-unavailable")]
    return [pytest.param(cfg, id=cfg["name"]) for cfg in BWD_CONFIGS if pred(cfg)]


def skip_unless_runs_here(cfg):
    """Skips when backward config cfg cannot run on this GPU and build: its
    shared memory, and for the Hopper family compute capability 9.0 and an
    sm_90a build."""
    if CONFIGS_ERROR is not None:
        raise RuntimeError(f"flashcore._debug.bwd_configs() failed: {CONFIGS_ERROR!r}")
    if cfg["sm90"]:
        if torch.cuda.get_device_capability() != (9, 0):
            pytest.skip(f"{cfg['name']} is the Hopper family: compute capability 9.0 only")
        import flashcore

        if "sm_90a" not in flashcore.build_info()["sass_archs"]:
            pytest.skip(f"{cfg['name']} needs a build with sm_90a")
    if cfg["smem_bytes"] > _debug.device_desc()["smem_optin"]:
        pytest.skip(f"{cfg['name']} needs {cfg['smem_bytes']} B of shared memory per block")


CONFIG_CASES = {
    "full": (torch.float16, (2, 3, 3, 113, 257), {}),
    "causal_br_gqa": (
        torch.bfloat16,
        (2, 6, 2, 300, 190),
        {"causal": True, "alignment": "bottom_right", "enable_gqa": True},
    ),
    "window_softcap": (torch.float16, (1, 4, 4, 200, 320), {"window": (30, 3), "softcap": 5.0}),
}


@pytest.mark.parametrize("case", [*CONFIG_CASES, "deterministic"])
@pytest.mark.parametrize("cfg", _bwd_config_params())
def test_every_bwd_config_forced(cfg, case):
    skip_unless_runs_here(cfg)
    # "deterministic": the deterministic mode (this config's main kernel
    # without dQ, and the dQ kernel of its tile width) on a masked GQA softcap case
    det = case == "deterministic"
    if det:
        dtype, (b, hq, hkv, sq, sk) = torch.bfloat16, (2, 6, 2, 300, 433)
        kw = {"causal": True, "window": (150, -1), "softcap": 8.0, "enable_gqa": True}
    else:
        dtype, (b, hq, hkv, sq, sk), kw = CONFIG_CASES[case]
    narrower = [c["head_dim"] for c in BWD_CONFIGS if c["head_dim"] < cfg["head_dim"]]
    for d in sorted({cfg["head_dim"], max(narrower, default=0) + 8}):
        q, k, v, dout = make(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
        if det and cfg["sm90"]:
            # the Hopper family has no deterministic mode: a clear error, never a run
            with _debug.forced_bwd_config(cfg["name"]):
                out = fused_attention(q.requires_grad_(True), k, v, deterministic=True, **kw)
            with pytest.raises(ValueError, match=rf"{cfg['name']} has no deterministic mode"):
                out.backward(dout)
            continue
        with _debug.forced_bwd_config(cfg["name"]):
            res = train(q, k, v, dout, deterministic=det, **kw)
            if det:
                again = train(q, k, v, dout, deterministic=True, **kw)
                assert all(torch.equal(a, f) for a, f in zip(again, res)), "not bitwise equal"
        assert_grads(*res[2:], q, k, v, dout, **kw)


@pytest.mark.parametrize("cfg", _bwd_config_params())
def test_every_bwd_config_with_a_gqa_split(cfg):
    # Every config's split epilogue (fp32 partials from its warp tiles, or its
    # wgmma accumulators in the Hopper family) and the reduce. The Hopper
    # family's split builds have no softcap: it raises there, naming both.
    skip_unless_runs_here(cfg)
    kw = {"causal": True, "alignment": "bottom_right", "enable_gqa": True, "softcap": 5.0}
    if cfg["sm90"]:
        q, k, v, dout = make(2, 8, 2, 300, 190, cfg["head_dim"], torch.bfloat16, 3.0)
        with _debug.forced_bwd_config(cfg["name"]), _debug.forced_bwd_gqa_split(2):
            out = fused_attention(q.requires_grad_(True), k, v, **kw)
        with pytest.raises(ValueError, match=r"gqa_split > 1 has no softcap build; got "
                           r"gqa_split 2 and softcap 5"):  # fmt: skip
            out.backward(dout)
        kw = {"causal": True, "alignment": "bottom_right", "enable_gqa": True, "window": (90, -1)}
    narrower = [c["head_dim"] for c in BWD_CONFIGS if c["head_dim"] < cfg["head_dim"]]
    for d in sorted({cfg["head_dim"], max(narrower, default=0) + 8}):
        q, k, v, dout = make(2, 8, 2, 300, 190, d, torch.bfloat16, q_scale_for(kw))
        with _debug.forced_bwd_config(cfg["name"]), _debug.forced_bwd_gqa_split(2):
            *_, dq, dk, dv = train(q, k, v, dout, **kw)
        assert_grads(dq, dk, dv, q, k, v, dout, **kw)


def test_forced_gqa_split_not_dividing_the_group_raises():
    q, k, v, dout = make(1, 6, 2, 10, 12, 64, torch.float16)
    with _debug.forced_bwd_gqa_split(2):
        out = fused_attention(q.requires_grad_(True), k, v, enable_gqa=True)
    with pytest.raises(ValueError, match=r"gqa_split must be a divisor of heads_q / heads_kv = 3"):
        out.backward(dout)


def test_forced_bwd_config_narrower_than_head_dim_raises():
    cfg = min(BWD_CONFIGS, key=lambda c: c["head_dim"])
    q, k, v, dout = make(1, 2, 2, 10, 12, cfg["head_dim"] + 8, torch.float16)
    with _debug.forced_bwd_config(cfg["name"]):
        out = fused_attention(q.requires_grad_(True), k, v)
    with pytest.raises(ValueError, match=rf"{cfg['name']} serves head_dim <= {cfg['head_dim']}"):
        out.backward(dout)


# ---------------------------------------------------------------- the Hopper backward

# The sm90 (wgmma + TMA) backward configs, forced (the heuristic picks them for
# TMA-readable default-mode calls whose grid fills the GPU: the dispatch tests
# after these; docs/design/backward.md section 7). A covering design: every
# (config, dtype, mask kind) once, with the head dim (the tile width and
# narrower ones it serves through zero-filled columns), MHA / GQA 8/2 and a
# seqlen pair (tails of every tile, Sq != Sk both ways, one query, one key)
# rotating; then the edges of the kernel's own machinery.
SM90_MASKS = {
    "none": {},
    "causal_tl": {"causal": True},
    "causal_br": {"causal": True, "alignment": "bottom_right"},
    "window": {"window": (100, 20)},
    "window_br": {"window": (37, 11), "alignment": "bottom_right"},
    "softcap": {"softcap": 30.0},
    "causal_br_softcap": {"causal": True, "alignment": "bottom_right", "softcap": 5.0},
}
SM90_SEQS = [
    (17, 113),
    (2049, 1000),
    (1000, 2049),
    (113, 17),
    (1, 2049),
    (1000, 1000),
    (2049, 1),
    (1, 1),
    (113, 2049),
]
SM90_HEAD_DIMS = {64: [64, 40, 8], 128: [128, 96, 72]}
SM90_HEADS = [((2, 3, 3), {}), ((1, 8, 2), {"enable_gqa": True})]


def _sm90_cfgs():
    return [c for c in BWD_CONFIGS if c["sm90"]]


def _sm90_grid():
    if CONFIGS_ERROR is not None:  # one case that fails (on a GPU) with the error
        return [pytest.param("unavailable", id="configs-unavailable")]
    cases, n = [], 0
    for cfg in _sm90_cfgs():
        for dtype in DTYPES:
            for mask, kw in SM90_MASKS.items():
                sq, sk = SM90_SEQS[n % len(SM90_SEQS)]
                heads, gqa = SM90_HEADS[n % len(SM90_HEADS)]
                dims = SM90_HEAD_DIMS[cfg["head_dim"]]
                d = dims[n % len(dims)]
                case = (cfg, dtype, d, heads, sq, sk, dict(kw, **gqa))
                name = (
                    f"{cfg['name']}-{dtype_id(dtype)}-d{d}-{mask}-h{heads[1]}_{heads[2]}-{sq}x{sk}"
                )
                cases.append(pytest.param(case, id=name))
                n += 1
    return cases


@pytest.mark.parametrize("case", _sm90_grid())
def test_sm90_bwd_grid(case):
    if CONFIGS_ERROR is not None:
        raise RuntimeError(f"flashcore._debug.bwd_configs() failed: {CONFIGS_ERROR!r}")
    cfg, dtype, d, (b, hq, hkv), sq, sk, kw = case
    skip_unless_runs_here(cfg)
    q, k, v, dout = make(b, hq, hkv, sq, sk, d, dtype, q_scale_for(kw))
    with _debug.forced_bwd_config(cfg["name"]):
        check(q, k, v, dout, **kw)


# name: (dtype, (batch, heads_q, heads_kv, seqlen_q, seqlen_k), kwargs)
SM90_EDGE_CASES = {
    # Many m-steps per block: the Q / dO ring and the dS buffers wrap many
    # times, crossing query-head boundaries of the group (4 heads x 17 or 33
    # query blocks per key block).
    "ring_wrap_gqa": (torch.bfloat16, (1, 8, 2, 2049, 300), {"enable_gqa": True}),
    # MQA: every block walks all 8 query heads; bottom-right causal with Sk > Sq.
    "mqa_causal_br": (
        torch.float16,
        (2, 8, 1, 700, 900),
        {"causal": True, "alignment": "bottom_right", "enable_gqa": True},
    ),
    # Key blocks no query sees (top-left causal, Sk > Sq): zero dk / dv rows
    # from blocks that issue no copy at all.
    "causal_tl_unseen_keys": (torch.bfloat16, (2, 4, 4, 150, 1000), {"causal": True}),
    # Queries that see no key (bottom-right, Sq > Sk): exact zero dq rows.
    "causal_br_empty_rows": (
        torch.float16,
        (1, 4, 2, 600, 129),
        {"causal": True, "alignment": "bottom_right", "enable_gqa": True},
    ),
    # A band narrower than a key block: most tiles masked on both sides.
    "narrow_band": (torch.bfloat16, (1, 3, 3, 513, 700), {"window": (5, 3)}),
    "window_0_0_br": (
        torch.float16,
        (1, 2, 2, 300, 333),
        {"window": (0, 0), "alignment": "bottom_right"},
    ),
    "window_softcap_gqa": (
        torch.bfloat16,
        (2, 8, 2, 257, 513),
        {"window": (40, 7), "softcap": 5.0, "enable_gqa": True},
    ),
}


@pytest.mark.parametrize("case", list(SM90_EDGE_CASES))
@pytest.mark.parametrize("cfg", _bwd_config_params(lambda cfg: cfg["sm90"]))
def test_sm90_bwd_edges(cfg, case):
    skip_unless_runs_here(cfg)
    dtype, (b, hq, hkv, sq, sk), kw = SM90_EDGE_CASES[case]
    q, k, v, dout = make(b, hq, hkv, sq, sk, cfg["head_dim"], dtype, q_scale_for(kw))
    with _debug.forced_bwd_config(cfg["name"]):
        check(q, k, v, dout, **kw)


@pytest.mark.parametrize("with_dlse", [False, True], ids=["no_dlse", "dlse"])
@pytest.mark.parametrize("cfg", _bwd_config_params(lambda cfg: cfg["sm90"]))
def test_sm90_bwd_poisoned_outputs_and_workspace(cfg, with_dlse):
    # dq, dk, dv and the workspace (dq_accum, dpsum, lse_log2) on NaN-filled
    # blocks: every element is written (dq through the sm90 postprocess's
    # order, dk / dv with zero rows for keys nobody sees), and the preprocess
    # zeroes dq_accum; with the lse gradient folded into dpsum.
    skip_unless_runs_here(cfg)
    index = [c["name"] for c in BWD_CONFIGS].index(cfg["name"])
    d = cfg["head_dim"]
    b, hq, hkv, sq, sk = 1, 4, 2, 300, 500
    kw = {"causal": True, "alignment": "bottom_right", "enable_gqa": True, "softcap": 5.0}
    q, k, v, dout = make(b, hq, hkv, sq, sk, d, torch.bfloat16, q_scale_for(kw))
    out, lse = torch.ops.flashcore.fwd_train(q, k, v, *op_args(q, kw))
    dlse = torch.randn(b, hq, sq, device="cuda") if with_dlse else None
    ws = _debug.bwd_workspace_elems(b, hq, hkv, sq, sk, d, cfg["name"], 1)
    specs = [(q.shape, q.dtype), (k.shape, k.dtype), (v.shape, v.dtype), ((ws,), torch.float32)]
    dq, dk, dv = poisoned_call(
        lambda: torch.ops.flashcore.bwd(
            dout, q, k, v, out, lse, dlse, *op_args(q, kw, config=index)
        ),
        specs,
    )
    assert_grads(dq, dk, dv, q, k, v, dout, dlse, **kw)


@pytest.mark.parametrize("cfg", _bwd_config_params(lambda cfg: cfg["sm90"]))
def test_sm90_bwd_ramps_in_v_and_dout(cfg):
    # v[j, c] = j / S + c / D and dout likewise: a transposed or mis-strided
    # operand (the MN-major dO / Q of the dV / dK GEMMs, dS stored [key][query]
    # for the dQ GEMM, K as its MN-major B) shows up as a wrong ramp.
    skip_unless_runs_here(cfg)
    d, sq, sk = cfg["head_dim"], 200, 321

    def ramp(s):
        return torch.arange(s, device="cuda").view(s, 1) / s + torch.arange(d, device="cuda") / d

    for dtype in DTYPES:
        v = ramp(sk).to(dtype).expand(2, 3, sk, d).contiguous()
        dout = ramp(sq).to(dtype).expand(2, 3, sq, d).contiguous()
        q, k = randn(2, 3, sq, d, dtype=dtype), randn(2, 3, sk, d, dtype=dtype)
        with _debug.forced_bwd_config(cfg["name"]):
            check(q, k, v, dout, causal=True)


@pytest.mark.parametrize("cfg", _bwd_config_params(lambda cfg: cfg["sm90"]))
def test_sm90_bwd_large_magnitude_q(cfg):
    # Near one-hot softmax rows: dP - D cancels, the precision edge of dS.
    skip_unless_runs_here(cfg)
    for kw in ({}, {"causal": True, "softcap": 30.0}):
        q, k, v, dout = make(2, 4, 4, 257, 300, cfg["head_dim"], torch.bfloat16, q_scale=30.0)
        with _debug.forced_bwd_config(cfg["name"]):
            check(q, k, v, dout, **kw)


@pytest.mark.parametrize("cfg", _bwd_config_params(lambda cfg: cfg["sm90"]))
def test_sm90_bwd_strided_views(cfg):
    # TMA-readable layouts that are not contiguous BHSD: a BSHD projection seen
    # as BHSD (row stride H*D, head stride D), rows wider than the head dim.
    skip_unless_runs_here(cfg)
    d = cfg["head_dim"]
    q = randn(2, 200, 3, d, dtype=torch.float16).transpose(1, 2)
    k = randn(2, 3, 333, 2 * d, dtype=torch.float16)[..., d:]
    v = randn(2, 333, 3, d, dtype=torch.float16).transpose(1, 2)
    dout = randn(2, 200, 3, d, dtype=torch.float16).transpose(1, 2)
    assert _debug.tma_ok(q, k, v, dout)
    with _debug.forced_bwd_config(cfg["name"]):
        _, _, dq, dk, dv = train(q, k, v, dout, causal=True)
    assert_grads(dq, dk, dv, q, k, v, dout, causal=True)
    assert dq.stride() == q.stride(), (dq.stride(), q.stride())


@pytest.mark.parametrize("cfg", _bwd_config_params(lambda cfg: cfg["sm90"]))
def test_sm90_bwd_dk_dv_are_bitwise_repeatable(cfg):
    # dK and dV are sums in one block's registers in a fixed order (the group's
    # heads, then ascending query blocks): bitwise equal run to run, on memory
    # that held other values. dq adds atomics from several blocks: only close.
    skip_unless_runs_here(cfg)
    kw = {"causal": True, "window": (300, -1), "enable_gqa": True, "softcap": 5.0}
    q, k, v, dout = make(2, 8, 2, 700, 650, cfg["head_dim"], torch.bfloat16, q_scale_for(kw))
    with _debug.forced_bwd_config(cfg["name"]):
        first = train(q, k, v, dout, **kw)
        junk = [torch.randn_like(t.float()) for t in first]
        del junk
        again = [train(q, k, v, dout, **kw) for _ in range(3)]
    assert_grads(*first[2:], q, k, v, dout, **kw)
    for res in again:
        assert torch.equal(res[3], first[3]) and torch.equal(res[4], first[4]), "dk / dv differ"


@pytest.mark.parametrize("cfg", _bwd_config_params(lambda cfg: cfg["sm90"]))
def test_sm90_bwd_refuses_inputs_tma_cannot_read(cfg):
    # Rows that are not 16-byte aligned: a forced Hopper config says why
    # instead of launching (the heuristic sends them to mma.sync:
    # test_heuristic_hopper_bwd_falls_back_to_mma_sync).
    skip_unless_runs_here(cfg)
    d = cfg["head_dim"]
    q = unaligned(2, 3, 150, d, torch.float16)
    k = randn(2, 3, 97, d + 8, dtype=torch.float16)[..., 3 : 3 + d]
    v = randn(2, 3, 97, d, dtype=torch.float16)
    dout = randn(2, 3, 150, d, dtype=torch.float16)
    with _debug.forced_bwd_config(cfg["name"]):
        out = fused_attention(q.requires_grad_(True), k, v, causal=True)
    with pytest.raises(ValueError, match=rf"{cfg['name']} needs q, k, v, out, dout .*\(TMA\)"):
        out.backward(dout)


@pytest.mark.parametrize("cfg", _bwd_config_params(lambda cfg: cfg["sm90"]))
def test_sm90_bwd_refuses_the_deterministic_mode_takes_a_forced_split(cfg):
    skip_unless_runs_here(cfg)
    q, k, v, dout = make(1, 4, 1, 100, 120, cfg["head_dim"], torch.float16)
    with _debug.forced_bwd_config(cfg["name"]):
        out = fused_attention(q.requires_grad_(True), k, v, enable_gqa=True, deterministic=True)
    with pytest.raises(ValueError, match=rf"{cfg['name']} has no deterministic mode"):
        out.backward(dout)
    # MQA, 4 query heads: splits 1 (the whole group per block), 2 and 4 (one
    # head per block); poisoned gradient buffers and workspace (train), the
    # same reference rule; 3 does not divide the group and raises.
    for split in (1, 2, 4):
        with _debug.forced_bwd_config(cfg["name"]), _debug.forced_bwd_gqa_split(split):
            _, _, dq, dk, dv = train(q, k, v, dout, enable_gqa=True)
        assert_grads(dq, dk, dv, q, k, v, dout, enable_gqa=True)
    with _debug.forced_bwd_config(cfg["name"]), _debug.forced_bwd_gqa_split(3):
        out = fused_attention(q, k, v, enable_gqa=True)
    with pytest.raises(ValueError, match=r"forced gqa_split must be a divisor"):
        out.backward(dout)


# ---------------------------------------------------------------- the Hopper backward, picked


def hopper_grid_shape(d):
    """(b, heads, sq, sk) of an MHA call whose grid of 128-key blocks (b x heads
    x 8) fills this GPU once, where the heuristic picks the Hopper config of
    head dim d; skips elsewhere (not an H100 / H200, or a build without sm_90a)."""
    sms = _debug.device_desc()["sm_count"]
    shape = (2, -(-sms // 16), 777, 1000)
    q = torch.empty(shape[0], shape[1], shape[2], d, device="cuda", dtype=torch.float16)
    k = torch.empty(shape[0], shape[1], shape[3], d, device="cuda", dtype=torch.float16)
    name = _debug.chosen_bwd_config(q, k)
    if not next(c for c in BWD_CONFIGS if c["name"] == name)["sm90"]:
        pytest.skip(f"the heuristic picks {name} here, not a Hopper config")
    return shape


@pytest.mark.parametrize(
    "d,kw",
    [(64, {"causal": True}), (128, {"window": (300, 40), "softcap": 5.0}), (96, {})],
    ids=["d64-causal", "d128-window-softcap", "d96-plain"],
)
def test_heuristic_hopper_bwd_runs_unforced(d, kw):
    # The dispatch rule's GPU side (host/heuristics.cpp use_sm90_bwd): a call the
    # heuristic gives a Hopper config runs it unforced, with correct gradients,
    # and its dk / dv are bitwise the forced config's (evidence that it ran: the
    # Hopper dK / dV sums are in a fixed order, test_sm90_bwd_dk_dv_are_bitwise_
    # repeatable; the mma.sync kernels sum in another).
    b, h, sq, sk = hopper_grid_shape(d)
    q, k, v, dout = make(b, h, h, sq, sk, d, torch.bfloat16, q_scale_for(kw))
    name = _debug.chosen_bwd_config(q, k, v=v, dout=dout)
    assert _debug.chosen_bwd_gqa_split(q, k, v=v, dout=dout) == 1
    picked = train(q, k, v, dout, **kw)
    assert_grads(*picked[2:], q, k, v, dout, **kw)
    with _debug.forced_bwd_config(name):
        forced = train(q, k, v, dout, **kw)
    assert torch.equal(picked[3], forced[3]) and torch.equal(picked[4], forced[4]), name


def test_heuristic_hopper_bwd_poisoned_outputs_and_workspace():
    # The workspace of a heuristic-picked Hopper config (sized by config, no
    # partials): dq, dk, dv and the workspace land on NaN poison.
    b, h, sq, sk = hopper_grid_shape(128)
    kw = {"causal": True, "alignment": "bottom_right"}
    q, k, v, dout = make(b, h, h, sq, sk, 128, torch.float16)
    out, lse = torch.ops.flashcore.fwd_train(q, k, v, *op_args(q, kw))
    dlse = torch.randn_like(lse)
    specs = bwd_specs(q, k, v, dout=dout)
    assert _debug.chosen_bwd_config(q, k, v=v, dout=dout) == "sm90_bwd_d128"
    dq, dk, dv = poisoned_call(
        lambda: torch.ops.flashcore.bwd(dout, q, k, v, out, lse, dlse, *op_args(q, kw)), specs
    )
    assert_grads(dq, dk, dv, q, k, v, dout, dlse, **kw)


@pytest.mark.parametrize(
    "kw",
    [{"enable_gqa": True}, {"enable_gqa": True, "causal": True}],
    ids=["plain", "causal"],
)
def test_heuristic_hopper_bwd_gqa_split_unforced(kw):
    # The GPT training step's GQA shape (8 x 8/2 heads, 512 tokens, head dim
    # 128): on 132 SMs 64 blocks, which the heuristic splits in two parts for
    # the Hopper config too (NOTES v19). Unforced, poisoned outputs and
    # workspace (the fp32 partials included), correct gradients; with softcap
    # the Hopper config runs unsplit.
    q, k, v, dout = make(8, 8, 2, 512, 512, 128, torch.bfloat16, q_scale_for(kw))
    name = _debug.chosen_bwd_config(q, k, v=v, dout=dout)
    if not next(c for c in BWD_CONFIGS if c["name"] == name)["sm90"]:
        pytest.skip(f"the heuristic picks {name} here, not a Hopper config")
    g = _debug.chosen_bwd_gqa_split(q, k, v=v, dout=dout)
    blocks = 8 * 2 * 4
    if -(-2 * blocks // _debug.device_desc()["sm_count"]) != 1:
        pytest.skip("two parts are not one wave on this GPU")
    assert g == 2
    assert _debug.chosen_bwd_gqa_split(q, k, v=v, dout=dout, softcap=20.0) == 1
    out, lse = torch.ops.flashcore.fwd_train(q, k, v, *op_args(q, kw))
    dlse = torch.randn_like(lse)
    dq, dk, dv = poisoned_call(
        lambda: torch.ops.flashcore.bwd(dout, q, k, v, out, lse, dlse, *op_args(q, kw)),
        bwd_specs(q, k, v, dout=dout),
    )
    assert_grads(dq, dk, dv, q, k, v, dout, dlse, **kw)
    soft = {**kw, "softcap": 20.0}
    picked = train(q, k, v, dout, **soft)
    assert_grads(*picked[2:], q, k, v, dout, **soft)


@pytest.mark.parametrize("d", [64, 128])
def test_heuristic_hopper_bwd_falls_back_to_mma_sync(d):
    # The same grid where the Hopper config cannot serve the call: rows TMA
    # cannot read (k, v or dout), the deterministic mode, a forced GQA split.
    # Each runs the mma.sync config of the width: no error, correct gradients.
    b, h, sq, sk = hopper_grid_shape(d)
    kw = {"causal": True}
    q, k, v, dout = make(b, h, h, sq, sk, d, torch.float16)
    mma = f"bwd_d{d}"
    bad = unaligned(b, h, sk, d, torch.float16)
    for name, args in (("k", (q, bad, v, dout)), ("v", (q, k, bad, dout))):
        assert _debug.chosen_bwd_config(args[0], args[1], v=args[2], dout=args[3]) == mma, name
        *_, dq, dk, dv = train(*args, **kw)
        assert_grads(dq, dk, dv, *args, **kw)
    bad_dout = unaligned(b, h, sq, d, torch.float16)
    assert _debug.chosen_bwd_config(q, k, v=v, dout=bad_dout) == mma
    *_, dq, dk, dv = train(q, k, v, bad_dout, **kw)
    assert_grads(dq, dk, dv, q, k, v, bad_dout, **kw)
    assert _debug.chosen_bwd_config(q, k, True, v=v, dout=dout) == mma
    *_, dq, dk, dv = train(q, k, v, dout, deterministic=True, **kw)
    assert_grads(dq, dk, dv, q, k, v, dout, **kw)
    # GQA (2 query heads per kv head: the grid is k's): a forced split of 2.
    qg = randn(b, 2 * h, sq, d, dtype=torch.float16)
    doutg = randn(b, 2 * h, sq, d, dtype=torch.float16)
    gkw = dict(kw, enable_gqa=True)
    assert _debug.chosen_bwd_config(qg, k, v=v, dout=doutg).startswith("sm90_")
    assert _debug.chosen_bwd_config(qg, k, v=v, dout=doutg, gqa_split=2) == mma
    with _debug.forced_bwd_gqa_split(2):
        *_, dq, dk, dv = train(qg, k, v, doutg, **gkw)
    assert_grads(dq, dk, dv, qg, k, v, doutg, **gkw)


# ---------------------------------------------------------------- compile, graphs, opcheck

COMPILE_KW = {
    "causal": True,
    "alignment": "bottom_right",
    "window": (256, -1),
    "softcap": 30.0,
    "enable_gqa": True,
}


def _training_block(xq, xkv):
    # xq: (B, Sq, Hq, D) and xkv: (B, Sk, 2 * Hkv, D) packed projections
    hkv = xkv.shape[2] // 2
    q = xq.transpose(1, 2)
    k, v = xkv[:, :, :hkv].transpose(1, 2), xkv[:, :, hkv:].transpose(1, 2)
    out, lse = fused_attention(q, k, v, return_lse=True, **COMPILE_KW)
    return out.float().square().sum() + lse.nan_to_num(neginf=0.0).sum()


def _compile_check(compiled, shapes):
    for b, sq, sk, hq, hkv, d in shapes:
        xq = randn(b, sq, hq, d, dtype=torch.bfloat16, scale=3.0).requires_grad_(True)
        xkv = randn(b, sk, 2 * hkv, d, dtype=torch.bfloat16).requires_grad_(True)
        got = torch.autograd.grad(compiled(xq, xkv), (xq, xkv))
        expected = torch.autograd.grad(_training_block(xq, xkv), (xq, xkv))
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.dtype == e.dtype
            # dq's atomics make two runs differ in their last bits only
            scale = e.float().abs().max().item()
            assert (g.float() - e.float()).abs().max().item() <= 1e-2 * max(1.0, scale)


def test_torch_compile_fullgraph_training():
    torch._dynamo.reset()
    compiled = torch.compile(_training_block, fullgraph=True)
    _compile_check(compiled, [(2, 300, 700, 8, 2, 128)])


def test_torch_compile_fullgraph_training_dynamic():
    # aot_eager: the joint graph and the fakes, without inductor's compile time
    torch._dynamo.reset()
    compiled = torch.compile(_training_block, fullgraph=True, dynamic=True, backend="aot_eager")
    _compile_check(compiled, [(2, 300, 700, 8, 2, 64), (3, 129, 1000, 8, 2, 64)])


def test_cuda_graph_of_forward_and_backward():
    q, k, v, _ = make(2, 8, 2, 500, 600, 64, torch.bfloat16)
    kw = {"causal": True, "enable_gqa": True}

    def step(q, k, v):
        return fused_attention(q, k, v, **kw)

    leaves = tuple(t.detach().requires_grad_(True) for t in (q, k, v))
    graphed = torch.cuda.make_graphed_callables(step, leaves)
    for _ in range(2):
        q2, k2, v2, dout2 = make(2, 8, 2, 500, 600, 64, torch.bfloat16)
        inputs = tuple(t.detach().requires_grad_(True) for t in (q2, k2, v2))
        graphed(*inputs).backward(dout2)
        assert_grads(*(t.grad for t in inputs), q2, k2, v2, dout2, **kw)


def test_opcheck():
    cases = [
        (torch.float16, (2, 3, 3, 129, 77, 64), {}),
        (torch.bfloat16, (2, 4, 2, 100, 150, 128), {"causal": True, "enable_gqa": True}),
        (
            torch.bfloat16,
            (1, 4, 1, 90, 60, 40),
            {"window": (5, 7), "alignment": "bottom_right", "softcap": 20.0, "enable_gqa": True},
        ),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # opcheck's own AOT check reads .grad of non-leaf tensors while faking its
        # inputs; torch 2.14 warns there for every custom op with an autograd
        # formula (a toy op on the CPU does the same), not about this one.
        warnings.filterwarnings(
            "ignore", message=r"The \.grad attribute of a Tensor that is not a leaf Tensor"
        )
        for i, (dtype, (b, hq, hkv, sq, sk, d), kw) in enumerate(cases):
            q, k, v, dout = make(b, hq, hkv, sq, sk, d, dtype)
            args = op_args(q, kw, deterministic=i == 2)  # one deterministic case
            train_args = (
                q.clone().requires_grad_(True),
                k.clone().requires_grad_(True),
                v.clone().requires_grad_(True),
                *args,
            )
            torch.library.opcheck(torch.ops.flashcore.fwd_train.default, train_args)
            out, lse = torch.ops.flashcore.fwd_train(q, k, v, *args)
            for dlse in (None, torch.randn_like(lse)):
                torch.library.opcheck(
                    torch.ops.flashcore.bwd.default, (dout, q, k, v, out, lse, dlse, *args)
                )


# ---------------------------------------------------------------- edges and drop-ins


def test_no_queries_gives_zero_dk_dv():
    for shape_q, shape_k in [((2, 4, 0, 64), (2, 4, 12, 64)), ((0, 4, 10, 64), (0, 4, 12, 64))]:
        q = torch.empty(shape_q, device="cuda", dtype=torch.float16)
        k = randn(*shape_k)
        out, lse = torch.ops.flashcore.fwd_train(q, k, k, *op_args(q, {}))
        dq, dk, dv = torch.ops.flashcore.bwd(
            torch.empty_like(out), q, k, k, out, lse, None, *op_args(q, {})
        )
        assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == k.shape
        assert dk.eq(0).all() and dv.eq(0).all()


def test_sdpa_drop_in_serves_training():
    q, k, v, dout = make(2, 8, 2, 300, 300, 64, torch.float16)
    sdpa.reset_call_counts()
    leaves = [t.detach().requires_grad_(True) for t in (q, k, v)]
    out = sdpa.scaled_dot_product_attention(*leaves, is_causal=True, enable_gqa=True)
    out.backward(dout)
    assert sdpa.call_counts() == {"flashcore": 1}
    assert_grads(*(t.grad for t in leaves), q, k, v, dout, causal=True, enable_gqa=True)
    # training under deterministic algorithms: flashcore serves the call with
    # its deterministic backward
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        # several key blocks per query row: with one, the default backward's dq
        # is one atomic add per element and as reproducible as the deterministic one
        q, k, v, dout = make(1, 2, 2, 500, 500, 64, torch.float16)
        grads = []
        for _ in range(2):
            leaf = q.detach().requires_grad_(True)
            sdpa.scaled_dot_product_attention(leaf, k, v).backward(dout)
            grads.append(leaf.grad)
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    assert sdpa.call_counts().get("flashcore") == 3
    assert torch.equal(grads[0], grads[1])
    # the deterministic backward ran: bitwise the explicit deterministic=True call's dq
    leaf = q.detach().requires_grad_(True)
    fused_attention(leaf, k, v, deterministic=True).backward(dout)
    assert torch.equal(grads[0], leaf.grad), "sdpa did not run the deterministic backward"
    ref = _reference.attention_grads_ref(q, k, v, dout)[0]
    err = (grads[0].double() - ref).abs().max().item()
    assert err < 1e-2 * max(1.0, ref.abs().max().item()), err
