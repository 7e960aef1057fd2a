"""A drop-in for ``torch.nn.functional.scaled_dot_product_attention``.

``flashcore.scaled_dot_product_attention`` has SDPA's signature and semantics. A
call runs on flashcore's kernel when flashcore can compute exactly what SDPA
would (no mask, no dropout, a supported dtype, head dim and GPU; when a gradient
is needed, a head dim the backward covers; under
``torch.use_deterministic_algorithms(True)`` its deterministic backward);
any other call is handed to PyTorch's own SDPA unchanged, so
``F.scaled_dot_product_attention = flashcore.scaled_dot_product_attention`` keeps
every caller working. Each eager call is counted, a fallback by its reason
(``call_counts()``; calls inside a torch.compile'd graph are not counted),
and each reason is logged once at INFO level on the "flashcore" logger.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

import torch

from .ops import SUPPORTED_DTYPES, fused_attention

_log = logging.getLogger("flashcore")

# PyTorch's own SDPA, bound at import: the fallback must not reach a patched
# torch.nn.functional.scaled_dot_product_attention (which may be this module's).
_torch_sdpa = torch._C._nn.scaled_dot_product_attention

_counts: Counter[str] = Counter()
_logged: set[str] = set()

MAX_HEAD_DIM = 256
# The widest head dim flashcore's backward serves on GPUs with 144 KB or more
# of shared memory per block (compute capability 8.0 / 9.0; 99 KB GPUs stop at
# 128): the Python mirror of host/heuristics.h choose_bwd_config, used while
# torch.compile traces (C is not callable there) for a device not yet seen in
# eager mode. Pinned to the heuristic by tests/test_autograd_api.py.
MAX_BWD_HEAD_DIM = 256


def call_counts() -> dict[str, int]:
    """Calls served so far: ``"flashcore"`` and one entry per fallback reason."""
    return dict(_counts)


def reset_call_counts() -> None:
    """Zero the counters of ``call_counts()`` (and log each reason once again)."""
    _counts.clear()
    _logged.clear()


def record(reason: str | None) -> None:
    """Count a call: ``None`` = served by flashcore, else a fallback reason
    (logged at INFO the first time it is seen)."""
    if reason is None:
        _counts["flashcore"] += 1
        return
    _counts[reason] += 1
    if reason not in _logged:
        _logged.add(reason)
        _log.info("flashcore: falling back to PyTorch SDPA (%s); counted in call_counts()", reason)


# Device index -> compute capability >= 8.0, read once per device in eager mode.
_capable: dict[int, bool] = {}


def _device_supported(index: int) -> bool:
    if index not in _capable:
        if torch.compiler.is_compiling():
            # Not read while tracing; fused_attention itself rejects an
            # unsupported GPU with a clear error.
            return True
        _capable[index] = torch.cuda.get_device_capability(index) >= (8, 0)
    return _capable[index]


# (device index, head dim) -> whether flashcore's backward serves it there (the
# heuristic through flashcore._debug, read once per pair in eager mode).
_bwd_served: dict[tuple[int, int], bool] = {}


def _bwd_supported(index: int, head_dim: int) -> bool:
    key = (index, head_dim)
    if key not in _bwd_served:
        if torch.compiler.is_compiling():
            # Not read while tracing: the Python mirror of the heuristic. Where
            # it is wrong (a GPU without the configs' shared memory),
            # fused_attention raises a clear ValueError at the forward.
            return head_dim <= MAX_BWD_HEAD_DIM
        from . import _debug

        dev = _debug.device_desc(index)
        _bwd_served[key] = _debug.bwd_heuristic(1, 1, 1, 1, head_dim, **dev) is not None
    return _bwd_served[key]


def unsupported_reason(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, enable_gqa: bool
) -> str | None:
    """Why flashcore's kernel cannot take these tensors as they are, or None.

    Only metadata is read (no device sync), so the check is cheap and traceable
    by torch.compile. Anything flashcore would reject with an error, or could only
    serve after a copy, is a reason to hand the call to SDPA instead."""
    if not (
        isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor)
    ):
        return "non-tensor input"
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return "not 4-D (batch, heads, seq, head_dim)"
    if not (q.is_cuda and k.is_cuda and v.is_cuda) or not (q.device == k.device == v.device):
        return "not on one CUDA device"
    if q.dtype not in SUPPORTED_DTYPES or not (q.dtype == k.dtype == v.dtype):
        return "dtype not float16/bfloat16 for all of q, k, v"
    d = q.shape[-1]
    if k.shape[-1] != d or v.shape[-1] != d or d % 8 != 0 or not 8 <= d <= MAX_HEAD_DIM:
        return "head dim not one multiple of 8 in 8..256 for q, k and v"
    if q.shape[0] != k.shape[0] or k.shape[:3] != v.shape[:3]:
        return "batch or key shapes differ (broadcasting)"
    hq, hkv = q.shape[1], k.shape[1]
    if hq != hkv and not (enable_gqa and hkv > 0 and hq % hkv == 0):
        return "head counts that SDPA itself rejects"
    if k.shape[2] == 0:
        return "no keys"
    if q.stride(-1) != 1 or k.stride(-1) != 1 or v.stride(-1) != 1:
        return "last dimension not contiguous"
    index = q.device.index if q.device.index is not None else 0
    if not _device_supported(index):
        return "GPU older than compute capability 8.0"
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    if needs_grad and not _bwd_supported(index, d):
        return "autograd with a head dim or GPU flashcore's backward does not serve"
    return None


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """``torch.nn.functional.scaled_dot_product_attention``, on flashcore when it can.

    Same signature, defaults and results: ``is_causal`` is SDPA's top-left causal
    mask, ``scale`` defaults to 1/sqrt(head_dim), ``enable_gqa`` is SDPA's grouped
    query attention. flashcore serves the call when there is no ``attn_mask``,
    ``dropout_p == 0``, q, k and v are 4-D float16/bfloat16 tensors on one GPU of
    compute capability 8.0 or newer with one head dim (a multiple of 8 up to 256)
    and contiguous last dimensions. Training calls (an input needs a gradient)
    run on flashcore too, with its backward, where that backward serves the head
    dim on the GPU (every head dim on compute capability 8.0 and 9.0, up to 128
    on GPUs with 99 KB of shared memory per block); under
    ``torch.use_deterministic_algorithms(True)`` (``warn_only`` or not) that
    backward runs in its deterministic mode (``fused_attention``'s
    ``deterministic=None``), so its gradients are bitwise reproducible.
    Everything else (masks, dropout, other dtypes, CPU tensors, training beyond
    the backward's coverage) runs on PyTorch's SDPA exactly as if flashcore were
    not there. ``call_counts()`` says how many
    calls went where.
    """
    if attn_mask is not None:
        reason = "attn_mask given"
    elif dropout_p != 0.0:
        reason = "dropout"
    elif scale is not None and not (
        isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0
    ):
        reason = "scale not a finite positive number"
    else:
        reason = unsupported_reason(query, key, value, enable_gqa=bool(enable_gqa))
    if not torch.compiler.is_compiling():
        record(reason)
    if reason is None:
        return fused_attention(
            query, key, value, causal=bool(is_causal), scale=scale, enable_gqa=bool(enable_gqa)
        )
    return _torch_sdpa(
        query,
        key,
        value,
        attn_mask=attn_mask,
        dropout_p=dropout_p,
        is_causal=is_causal,
        scale=scale,
        enable_gqa=enable_gqa,
    )
