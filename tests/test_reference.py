"""CPU tests of flashcore._reference's gradient oracle (the backward's, issue 10):
its float64 gradients against PyTorch's SDPA differentiated in float64 where SDPA
can express the mask, against autograd through the forward reference where it
cannot (softcap), exact zeros where no pair exists, and the rule of compare_grads
accepting PyTorch's own low-precision gradients and rejecting mutated ones."""

import pytest
import torch
import torch.nn.functional as F

from flashcore import _reference


def _qkv(b, hq, hkv, sq, sk, d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)
    return mk(b, hq, sq, d), mk(b, hkv, sk, d), mk(b, hkv, sk, d), mk(b, hq, sq, d)


def _sdpa_grads(q, k, v, dout, **kw):
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*leaves, enable_gqa=True, **kw)
    return torch.autograd.grad(out, leaves, dout)


# off = 90 - 70 = 20 for bottom-right; SDPA gets the same masks from tril/triu.
_ONES = torch.ones(70, 90, dtype=torch.bool)
SDPA_CASES = [
    ({}, {}),
    ({"causal": True}, {"is_causal": True}),
    ({"causal": True, "alignment": "bottom_right"}, {"attn_mask": _ONES.tril(20)}),
    ({"window": (7, 5), "alignment": "bottom_right"}, {"attn_mask": _ONES.tril(25).triu(13)}),
    ({"causal": True, "window": (7, 5)}, {"attn_mask": _ONES.tril(0).triu(-7)}),
    ({"scale": 0.3}, {"scale": 0.3}),
]


@pytest.mark.parametrize("ours, theirs", SDPA_CASES, ids=lambda c: str(c) or "plain")
def test_grads_ref_matches_sdpa_float64(ours, theirs):
    q, k, v, dout = _qkv(2, 4, 2, 70, 90, 32)
    got = _reference.attention_grads_ref(q, k, v, dout, enable_gqa=True, **ours)
    expected = _sdpa_grads(q, k, v, dout, **theirs)
    for name, a, b in zip(("dq", "dk", "dv"), got, expected):
        assert a.dtype == torch.float64 and a.shape == b.shape, name
        assert (a - b).abs().max().item() < 1e-10, (name, ours)


def test_grads_ref_softcap_matches_autograd_of_the_forward_reference():
    # SDPA has no softcap: differentiate attention_ref's own (exp(s - lse))
    # formulation instead, an independent way to write the same function.
    q, k, v, dout = _qkv(1, 2, 2, 40, 50, 16)
    q = q * 3
    kw = {"causal": True, "softcap": 5.0, "alignment": "bottom_right"}
    got = _reference.attention_grads_ref(q, k, v, dout, **kw)
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    out, _ = _reference.attention_ref(*leaves, **kw)
    expected = torch.autograd.grad(out, leaves, dout)
    for name, a, b in zip(("dq", "dk", "dv"), got, expected):
        assert (a - b).abs().max().item() < 1e-10, name
    # and the cap matters: without it the gradients differ
    uncapped = _reference.attention_grads_ref(q, k, v, dout, causal=True, alignment="bottom_right")
    assert (uncapped[0] - got[0]).abs().max().item() > 1e-3


def test_grads_are_exact_zeros_where_no_pair_exists():
    # Bottom-right window (20, 3) with Sq 100 > Sk 60: off = -40, query i sees
    # keys i - 60 .. i - 37, so queries 0..36 see none; query 37 sees key 0 alone
    # (softmax 1 whatever the score: dq 0 too); every key is seen by someone.
    q, k, v, dout = _qkv(1, 2, 1, 100, 60, 16)
    kw = {"window": (20, 3), "alignment": "bottom_right", "enable_gqa": True}
    dq, dk, dv = _reference.attention_grads_ref(q, k, v, dout, **kw)
    for t in (dq, dk, dv):
        assert torch.isfinite(t).all()
    mask = _reference.visible_mask(100, 60, window=(20, 3), alignment="bottom_right")
    assert (~mask.any(dim=-1)).sum() == 37
    assert dq[:, :, :38].eq(0).all() and dq[:, :, 38:].abs().amax(dim=-1).gt(0).all()
    assert dk.abs().amax(dim=-1).gt(0).all() and dv.abs().amax(dim=-1).gt(0).all()
    low = _reference.attention_grads_ref(q.half(), k.half(), v.half(), dout.half(), lowp=True, **kw)
    assert all(torch.isfinite(t).all() for t in low) and low[0][:, :, :37].eq(0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_compare_grads_accepts_torch_lowp_and_rejects_mutations(dtype):
    q, k, v, dout = _qkv(1, 4, 2, 70, 90, 32, dtype=dtype)
    kw = {"causal": True, "alignment": "bottom_right", "enable_gqa": True}
    low = _reference.attention_grads_ref(q, k, v, dout, lowp=True, **kw)
    check = _reference.compare_grads(*low, q, k, v, dout, **kw)
    assert check.ok, str(check)
    # top-left instead of bottom-right, i.e. the mask shifted by 20 keys
    wrong = _reference.attention_grads_ref(q, k, v, dout, causal=True, enable_gqa=True, lowp=True)
    check = _reference.compare_grads(*wrong, q, k, v, dout, **kw)
    assert not check.ok and "over the bound" in str(check), str(check)
    # dk not summed over the group: one q head's share only
    dq, dk, dv = low
    half = dk / 2
    assert not _reference.compare_grads(dq, half, dv, q, k, v, dout, **kw).ok
    # a NaN anywhere
    nan_dv = dv.clone()
    nan_dv[0, 0, 5, 3] = float("nan")
    check = _reference.compare_grads(dq, dk, nan_dv, q, k, v, dout, **kw)
    assert not check.ok and "NaN" in str(check)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_compare_grads_floor_where_dq_and_dk_vanish(dtype):
    # One key: dq and dk are exactly 0 in float64 and in torch's own math. A
    # kernel's fp32 rounding there (1e-6 of |dv|) passes on the floor of the
    # three gradients; an error the size of the gradients themselves does not.
    q, k, v, dout = _qkv(2, 3, 3, 40, 1, 64, dtype=dtype)
    dq, dk, dv = _reference.attention_grads_ref(q, k, v, dout)
    assert dq.abs().max() == 0 and dk.abs().max() == 0 and dv.abs().max() > 0
    tiny = 1e-6 * dv.abs().max().item()
    check = _reference.compare_grads(dq + tiny, dk - tiny, dv, q, k, v, dout)
    assert check.ok, str(check)
    big = 0.1 * dv.abs().max().item()
    check = _reference.compare_grads(dq + big, dk, dv, q, k, v, dout)
    assert not check.ok and "dq error over the bound" in str(check), str(check)


def test_grads_ref_with_an_lse_gradient():
    # No row is empty here: differentiate attention_ref's (out, lse) directly,
    # an independent formulation, with a gradient on both.
    q, k, v, dout = _qkv(1, 4, 2, 40, 50, 16)
    dlse = torch.randn(1, 4, 40, dtype=torch.float64)
    kw = {"causal": True, "alignment": "bottom_right", "softcap": 5.0, "enable_gqa": True}
    got = _reference.attention_grads_ref(q, k, v, dout, dlse=dlse, **kw)
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    out, lse = _reference.attention_ref(*leaves, **kw)
    expected = torch.autograd.grad((out, lse), leaves, (dout, dlse))
    for name, a, b in zip(("dq", "dk", "dv"), got, expected):
        assert (a - b).abs().max().item() < 1e-10, name
    # the lse term matters for dq and dk, not for dv
    plain = _reference.attention_grads_ref(q, k, v, dout, **kw)
    assert (plain[0] - got[0]).abs().max().item() > 1e-3
    assert (plain[2] - got[2]).abs().max().item() < 1e-12
    # and the low-precision yardstick with it passes the rule
    qh, kh, vh, dh = (t.half() for t in (q, k, v, dout))
    low = _reference.attention_grads_ref(qh, kh, vh, dh, lowp=True, dlse=dlse.float(), **kw)
    assert _reference.compare_grads(*low, qh, kh, vh, dh, dlse=dlse.float(), **kw).ok
    assert not _reference.compare_grads(*low, qh, kh, vh, dh, **kw).ok


def test_grads_ref_lse_gradient_is_zero_in_rows_that_see_no_key():
    # bottom-right causal with Sq 30 > Sk 20: queries 0..9 see no key
    q, k, v, dout = _qkv(1, 2, 2, 30, 20, 16)
    dlse = torch.randn(1, 2, 30, dtype=torch.float64)
    kw = {"causal": True, "alignment": "bottom_right"}
    dq, dk, dv = _reference.attention_grads_ref(q, k, v, dout, dlse=dlse, **kw)
    assert all(torch.isfinite(t).all() for t in (dq, dk, dv))
    assert dq[:, :, :10].eq(0).all() and dq[:, :, 11:].abs().amax(dim=-1).gt(0).all()
