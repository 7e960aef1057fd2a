"""The one reference and tolerance rule for flashcore's forward pass (and the
backward's gradients: attention_grads_ref, compare_grads), shared by
tests/test_fwd.py, ci/sanitize_cases.py and `python -m flashcore`.

- `attention_ref`: the attention in float64 on the given (float16 / bfloat16)
  inputs, masks built from their definition (`visible_mask`).
- `attention_lowp`: the same math as plain PyTorch does it in the input dtype
  (the matmuls and softmax in float16 / bfloat16, as SDPA's math backend with
  reduced-precision reductions allowed); the yardstick for what "as accurate as
  PyTorch" means at that dtype.
- `compare`: FlashAttention-2's criterion. The kernel's max abs error against
  `attention_ref` must be at most twice `attention_lowp`'s, plus a small floor;
  the same rule for the lse. Rows that see no key must be exactly 0 with lse -inf.

Mask semantics (the public API's): with off = 0 ("top_left") or seqlen_k -
seqlen_q ("bottom_right"), causal lets query i see keys j <= i + off; window
(left, right) lets it see i + off - left <= j <= i + off + right, -1 meaning
unbounded on that side; causal with a window is their intersection. Softcap c:
score = c * tanh(scale * q.k / c), masked after the cap.

Needs no GPU: everything runs on the inputs' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ALIGNMENTS = ("top_left", "bottom_right")

# Absolute floor of the output rule, per dtype. It only matters where the
# low-precision baseline is exact or nearly so by luck (a row with one visible
# key, all-equal inputs); elsewhere that baseline's error is 10x or more above
# it. Each floor is well under half an output ulp at 1.0 (float16 2^-11 = 4.9e-4,
# bfloat16 2^-8 = 3.9e-3), so it cannot excuse a wrong element of ordinary size,
# and well over the kernel's float32 arithmetic error (~1e-6 of the output).
OUT_FLOOR = {torch.float16: 2e-4, torch.bfloat16: 1e-3}
# Floor of the lse rule, relative to max(1, max |lse|): the lse is float32 in the
# kernel whatever the input dtype; 1e-5 is ~100 float32 ulps, room for the
# exp2/log2 folding and the sum over up to thousands of keys, and far under the
# baseline's error (its scores are rounded to the input dtype: ~1e-3 relative).
LSE_FLOOR_REL = 1e-5


def visible_mask(
    seqlen_q: int,
    seqlen_k: int,
    causal: bool = False,
    window: tuple[int, int] | None = None,
    alignment: str = "top_left",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(seqlen_q, seqlen_k) bool: True where query i may see key j (module docstring)."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    off = 0 if alignment == "top_left" else seqlen_k - seqlen_q
    i = torch.arange(seqlen_q, device=device).view(-1, 1)
    j = torch.arange(seqlen_k, device=device).view(1, -1)
    mask = torch.ones(seqlen_q, seqlen_k, dtype=torch.bool, device=device)
    if causal:
        mask &= j <= i + off
    if window is not None:
        left, right = window
        if left < -1 or right < -1:
            raise ValueError(f"window sides must be >= -1 (-1: unbounded), got {window}")
        if left != -1:
            mask &= j >= i + off - left
        if right != -1:
            mask &= j <= i + off + right
    return mask


def _prepare(q, k, v, scale, enable_gqa):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D (batch, heads, seqlen, head_dim)")
    hq, hkv = q.shape[1], k.shape[1]
    if hq != hkv:
        if not enable_gqa or hkv == 0 or hq % hkv:
            raise ValueError(f"q has {hq} heads and k/v {hkv}: needs enable_gqa and Hq % Hkv == 0")
        # q head h reads kv head h // (hq // hkv)
        k = k.repeat_interleave(hq // hkv, dim=1)
        v = v.repeat_interleave(hq // hkv, dim=1)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return k, v, scale


def attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    *,
    enable_gqa: bool = False,
    window: tuple[int, int] | None = None,
    alignment: str = "top_left",
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 attention on the given inputs, with fused_attention's arguments.

    q: (batch, heads_q, seqlen_q, head_dim); k, v: (batch, heads_kv, seqlen_k,
    head_dim). Returns (out, lse), float64, shapes (batch, heads_q, seqlen_q,
    head_dim) and (batch, heads_q, seqlen_q); a row that sees no key has out 0
    and lse -inf.
    """
    k, v, scale = _prepare(q, k, v, scale, enable_gqa)
    s = torch.matmul(q.double(), k.double().transpose(-1, -2)) * scale
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    mask = visible_mask(q.shape[2], k.shape[2], causal, window, alignment, q.device)
    s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    # exp(s - lse) is the softmax; in a row with no visible key lse is -inf and
    # subtracting 0 instead keeps every weight exp(-inf) = 0, not NaN.
    p = torch.exp(s - torch.where(torch.isneginf(lse), 0.0, lse).unsqueeze(-1))
    return torch.matmul(p, v.double()), lse


def attention_lowp(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    *,
    enable_gqa: bool = False,
    window: tuple[int, int] | None = None,
    alignment: str = "top_left",
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same attention in the inputs' dtype, the way plain PyTorch computes it.

    Follows SDPA's math backend with reduced-precision reductions allowed: q and k
    each scaled by sqrt(scale), score matmul, softcap, explicit -inf mask and
    softmax all in the input dtype (torch's softmax accumulates in float32 and
    rounds its output), rows with no visible key set to 0 (as _safe_softmax does),
    then the value matmul. Returns (out in q's dtype, lse float32 of those scores).
    """
    k, v, scale = _prepare(q, k, v, scale, enable_gqa)
    root = math.sqrt(scale)
    s = torch.matmul(q * root, (k * root).transpose(-1, -2))
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    mask = visible_mask(q.shape[2], k.shape[2], causal, window, alignment, q.device)
    s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, dim=-1).masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return torch.matmul(p, v), torch.logsumexp(s.float(), dim=-1)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


@dataclass(frozen=True)
class Check:
    """Result of `compare`. ok is the verdict; str(check) says why."""

    ok: bool
    dtype: torch.dtype
    err: float  # max |out - attention_ref|
    lowp_err: float  # max |attention_lowp - attention_ref|
    bound: float  # 2 * lowp_err + OUT_FLOOR[dtype]
    lse_err: float | None  # the same three for the lse (None: no lse given)
    lowp_lse_err: float | None
    lse_bound: float | None
    empty_rows: int  # rows of (batch, heads_q, seqlen_q) that see no key
    problems: tuple[str, ...]  # every failed condition, in words

    def __str__(self) -> str:
        name = str(self.dtype).replace("torch.", "")
        text = (
            f"max err {self.err:.3e} vs bound {self.bound:.3e} "
            f"(2 x torch {name} err {self.lowp_err:.3e} + {OUT_FLOOR[self.dtype]:g})"
        )
        if self.lse_err is not None:
            text += (
                f"; lse max err {self.lse_err:.3e} vs bound {self.lse_bound:.3e} "
                f"(2 x torch {name} lse err {self.lowp_lse_err:.3e} + floor)"
            )
        text += f"; {self.empty_rows} rows see no key"
        if self.problems:
            text += "; FAILED: " + "; ".join(self.problems)
        return text


def compare(
    out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    lse: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
    *,
    enable_gqa: bool = False,
    window: tuple[int, int] | None = None,
    alignment: str = "top_left",
    softcap: float | None = None,
) -> Check:
    """Checks a kernel result (out, and lse if given) for inputs q, k, v and
    fused_attention's arguments against `attention_ref`, by the module's rule:

    - out: no NaN/inf; max |out - ref| <= 2 * max |attention_lowp - ref| + OUT_FLOOR.
    - lse: -inf exactly in the rows that see no key, finite elsewhere, and there
      max |lse - ref| <= 2 * (the baseline's lse error) + LSE_FLOOR_REL * max(1, |lse|).
    - rows that see no key: out exactly 0.
    """
    if q.dtype not in OUT_FLOOR:
        raise ValueError(f"compare: inputs must be float16 or bfloat16, got {q.dtype}")
    kw = {"enable_gqa": enable_gqa, "window": window, "alignment": alignment, "softcap": softcap}
    ref, ref_lse = attention_ref(q, k, v, causal, scale, **kw)
    low, low_lse = attention_lowp(q, k, v, causal, scale, **kw)
    problems = []
    if out.shape != ref.shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(ref.shape)}")
    if not torch.isfinite(out).all():
        problems.append(
            f"out has {out.isnan().sum().item()} NaN and {out.isinf().sum().item()} inf "
            "(an unwritten element or a bad mask)"
        )
    if not torch.isfinite(low).all():
        problems.append("the low-precision baseline itself has NaN/inf; the rule is void")
    empty = torch.isneginf(ref_lse)
    if not out[empty].eq(0).all():
        problems.append("rows that see no key are not exactly 0")
    err, lowp_err = _max_abs(out, ref), _max_abs(low, ref)
    bound = 2 * lowp_err + OUT_FLOOR[q.dtype]
    if not err <= bound:  # also catches NaN
        problems.append("out error over the bound")

    lse_err = lowp_lse_err = lse_bound = None
    if lse is not None:
        if lse.shape != ref_lse.shape or lse.dtype != torch.float32:
            raise ValueError(
                f"lse is {lse.dtype} {tuple(lse.shape)}, expected float32 {tuple(ref_lse.shape)}"
            )
        if lse.isnan().any() or torch.isposinf(lse).any():
            problems.append("lse has NaN or +inf")
        if not torch.equal(torch.isneginf(lse), empty):
            problems.append("lse is -inf exactly where rows see no key: not so")
        seen = ~empty
        lse_err = _max_abs(lse[seen], ref_lse[seen])
        lowp_lse_err = _max_abs(low_lse[seen], ref_lse[seen])
        biggest = ref_lse[seen].abs().max().item() if seen.any() else 0.0
        lse_bound = 2 * lowp_lse_err + LSE_FLOOR_REL * max(1.0, biggest)
        if not lse_err <= lse_bound:
            problems.append("lse error over the bound")
    return Check(
        ok=not problems,
        dtype=q.dtype,
        err=err,
        lowp_err=lowp_err,
        bound=bound,
        lse_err=lse_err,
        lowp_lse_err=lowp_lse_err,
        lse_bound=lse_bound,
        empty_rows=int(empty.sum().item()),
        problems=tuple(problems),
    )


# ---- gradients (the backward pass; issue 10) ---------------------------------
#
# The same FlashAttention-2 criterion for dq, dk and dv: each kernel gradient's
# max abs error against the float64 gradients must be at most twice that of the
# same attention differentiated by PyTorch in the input dtype, plus a floor.
# Gradients have no natural unit scale (they grow with seqlen and |dout|), so
# the floor is relative to the largest float64 gradient element of the three
# (dq, dk and dv together), at the same fraction of an ulp at 1.0 as OUT_FLOOR.
# Of the three, not of each: where every query sees exactly one key (Sk = 1, a
# window of width 1, the first row under causal), dq and dk are exactly 0 in
# exact arithmetic (dS = P (dP - D) with P = 1 and D = dP) and also in PyTorch's
# own low-precision math, while a kernel that forms D = rowsum(dO * O) in a
# separate pass, as FlashAttention-2 does, leaves fp32 rounding (~1e-7 relative
# to dP) there. A per-gradient floor would be 0 and demand exact cancellation
# (H200 run of 09b1c9e: errors 1e-7..2e-5 against bounds of exactly 0).
GRAD_FLOOR_REL = {torch.float16: 2e-4, torch.bfloat16: 1e-3}


def _softmax_rows(s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax over the last dim of s with -inf where ~mask, and exact zeros (with
    zero gradients, never NaN) in rows that see no key."""
    empty = ~mask.any(dim=-1, keepdim=True)
    s = s.masked_fill(~mask, float("-inf")).masked_fill(empty, 0.0)
    return torch.softmax(s, dim=-1).masked_fill(empty, 0.0)


def _lse_rows(s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """logsumexp over the last dim of s where mask, as a differentiable term: 0
    (with zero gradients) in rows that see no key, where the kernel's lse is -inf
    and no gradient can flow."""
    empty = ~mask.any(dim=-1, keepdim=True)
    s = s.masked_fill(~mask, float("-inf")).masked_fill(empty, 0.0)
    return torch.logsumexp(s, dim=-1).masked_fill(empty.squeeze(-1), 0.0)


def attention_grads_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dout: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    *,
    enable_gqa: bool = False,
    window: tuple[int, int] | None = None,
    alignment: str = "top_left",
    softcap: float | None = None,
    lowp: bool = False,
    dlse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) of fused_attention(q, k, v, ...) for the output gradient dout,
    by autograd: in float64 through `attention_ref`'s math, or with lowp=True in
    the inputs' dtype through `attention_lowp`'s arithmetic (what plain PyTorch
    attention gives a model in float16 / bfloat16: the yardstick of
    `compare_grads`). Shapes of q, k, v (dk, dv summed over the query heads that
    share a kv head under GQA); zero in the rows of dq that see no key and the
    rows of dk, dv that no query sees.

    dlse: a gradient on the lse too, (batch, heads_q, seqlen_q) (return_lse=True
    with the lse in the loss); the lse is taken in float64, or with lowp=True in
    float32 from the input-dtype scores as `attention_lowp` does. Rows that see
    no key take no lse gradient (their lse is -inf)."""
    cast = (lambda t: t) if lowp else torch.Tensor.double
    leaves = [cast(t.detach()).clone().requires_grad_(True) for t in (q, k, v)]
    qq, kk, vv = leaves
    kr, vr, scale = _prepare(qq, kk, vv, scale, enable_gqa)
    if lowp:
        # attention_lowp's arithmetic: q and k each scaled by sqrt(scale).
        root = math.sqrt(scale)
        s = torch.matmul(qq * root, (kr * root).transpose(-1, -2))
    else:
        s = torch.matmul(qq, kr.transpose(-1, -2)) * scale
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    mask = visible_mask(q.shape[2], k.shape[2], causal, window, alignment, q.device)
    out = torch.matmul(_softmax_rows(s, mask), vr)
    if dlse is None:
        return torch.autograd.grad(out, leaves, cast(dout))
    lse = _lse_rows(s.float() if lowp else s, mask)
    return torch.autograd.grad((out, lse), leaves, (cast(dout), dlse.to(lse.dtype)))


@dataclass(frozen=True)
class GradCheck:
    """Result of `compare_grads`: per gradient (dq, dk, dv) the kernel's error, the
    low-precision baseline's and the bound. ok is the verdict; str() says why."""

    ok: bool
    dtype: torch.dtype
    errs: tuple[float, float, float]
    lowp_errs: tuple[float, float, float]
    bounds: tuple[float, float, float]
    problems: tuple[str, ...]

    def __str__(self) -> str:
        parts = [
            f"{name} err {e:.3e} vs bound {b:.3e} (2 x torch {lo:.3e} + floor)"
            for name, e, lo, b in zip(("dq", "dk", "dv"), self.errs, self.lowp_errs, self.bounds)
        ]
        text = "; ".join(parts)
        if self.problems:
            text += "; FAILED: " + "; ".join(self.problems)
        return text


def compare_grads(
    dq: torch.Tensor,
    dk: torch.Tensor,
    dv: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dout: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    *,
    enable_gqa: bool = False,
    window: tuple[int, int] | None = None,
    alignment: str = "top_left",
    softcap: float | None = None,
    dlse: torch.Tensor | None = None,
) -> GradCheck:
    """Checks kernel gradients against `attention_grads_ref` by the rule above:
    no NaN/inf; for each of dq, dk, dv: max |grad - ref| <= 2 * max |lowp - ref| +
    GRAD_FLOOR_REL * (max |ref| over dq, dk and dv); rows of dq whose query sees no key, and rows of
    dk and dv whose key no query sees, exactly 0. dlse: the lse's gradient, when
    the loss used it (see `attention_grads_ref`)."""
    if q.dtype not in GRAD_FLOOR_REL:
        raise ValueError(f"compare_grads: inputs must be float16 or bfloat16, got {q.dtype}")
    kw = {"enable_gqa": enable_gqa, "window": window, "alignment": alignment, "softcap": softcap}
    kw["dlse"] = dlse
    refs = attention_grads_ref(q, k, v, dout, causal, scale, **kw)
    lows = attention_grads_ref(q, k, v, dout, causal, scale, lowp=True, **kw)
    problems = []
    mask = visible_mask(q.shape[2], k.shape[2], causal, window, alignment, q.device)
    unseen_q = ~mask.any(dim=-1)  # (seqlen_q,)
    unseen_k = ~mask.any(dim=0)  # (seqlen_k,)
    errs, lowp_errs, bounds = [], [], []
    biggest = max((r.abs().max().item() for r in refs if r.numel()), default=0.0)
    for name, got, ref, low in zip(("dq", "dk", "dv"), (dq, dk, dv), refs, lows):
        if got.shape != ref.shape:
            raise ValueError(f"{name} has shape {tuple(got.shape)}, expected {tuple(ref.shape)}")
        if not torch.isfinite(got).all():
            problems.append(
                f"{name} has {got.isnan().sum().item()} NaN and {got.isinf().sum().item()} inf"
            )
        if not torch.isfinite(low).all():
            problems.append(f"the low-precision baseline's {name} has NaN/inf; the rule is void")
        unseen = unseen_q if name == "dq" else unseen_k
        if not got[:, :, unseen].eq(0).all():
            problems.append(f"{name} is not exactly 0 in the rows that take part in no pair")
        err, lowp_err = _max_abs(got, ref), _max_abs(low, ref)
        bound = 2 * lowp_err + GRAD_FLOOR_REL[q.dtype] * biggest
        if not err <= bound:  # also catches NaN
            problems.append(f"{name} error over the bound")
        errs.append(err)
        lowp_errs.append(lowp_err)
        bounds.append(bound)
    return GradCheck(
        ok=not problems,
        dtype=q.dtype,
        errs=tuple(errs),
        lowp_errs=tuple(lowp_errs),
        bounds=tuple(bounds),
        problems=tuple(problems),
    )
