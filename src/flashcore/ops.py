"""Typed Python entry points: validation, dispatch to torch.ops.flashcore, fake
(meta) implementations for torch.compile, and the no-backward guard."""

from __future__ import annotations

import math
from typing import Any

import torch

from . import _loader
from ._version import __version__

HEAD_DIM = 64
SUPPORTED_DTYPES = (torch.float16,)
_SUPPORTED_DTYPES_TEXT = "torch.float16"


def build_info() -> dict[str, Any]:
    """What this installation of flashcore was built with.

    Returns a dict: version, sass_archs, ptx_arch, cuda_version (of the compiler),
    torch_target (stable-ABI version the extension targets), built_with_torch,
    library (path of the loaded extension), load_error (None when loaded).
    """
    try:
        from . import _build_config as cfg

        sass, ptx = list(cfg.SASS_ARCHS), cfg.PTX_ARCH
        cuda, target, built = cfg.CUDA_VERSION, cfg.TORCH_TARGET, cfg.BUILT_WITH_TORCH
    except ImportError:
        sass, ptx, cuda, target, built = [], None, None, None, None
    return {
        "version": __version__,
        "sass_archs": sass,
        "ptx_arch": ptx,
        "cuda_version": cuda,
        "torch_target": target,
        "built_with_torch": built,
        "library": str(_loader.LIBRARY_PATH) if _loader.LIBRARY_PATH else None,
        "load_error": _loader.LOAD_ERROR,
    }


def _ops():
    if _loader.LOAD_ERROR is not None:
        raise RuntimeError(f"flashcore: {_loader.LOAD_ERROR}")
    return torch.ops.flashcore


if _loader.LOAD_ERROR is None:
    _fwd = torch.ops.flashcore.fwd.default
    _fwd_lse = torch.ops.flashcore.fwd_lse.default

    # Fake (meta) implementations: shape/dtype inference for torch.compile. They
    # validate too, since under tracing the C++ checks do not run.
    @torch.library.register_fake("flashcore::fwd")
    def _fwd_fake(q, k, v, scale, is_causal):
        _validate(q, k, v, scale)
        return q.new_empty(q.shape)

    @torch.library.register_fake("flashcore::fwd_lse")
    def _fwd_lse_fake(q, k, v, scale, is_causal):
        _validate(q, k, v, scale)
        return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)

    # No autograd kernel is registered on purpose: a Python autograd kernel would
    # run on every call (grad mode or not) and cost microseconds of host time.
    # fused_attention refuses inputs that require grad instead.


def _check_tensor(t: Any, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"fused_attention: {name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_cuda:
        hint = "" if torch.cuda.is_available() else " (no CUDA GPU is available on this machine)"
        raise ValueError(
            f"fused_attention: {name} must be a CUDA tensor: flashcore runs on a CUDA GPU only, "
            f"got device '{t.device}'{hint}"
        )
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"fused_attention: {name}.dtype must be one of ({_SUPPORTED_DTYPES_TEXT}), "
            f"got {t.dtype}"
        )
    if t.dim() != 4:
        raise ValueError(
            f"fused_attention: {name} must be 4-D (batch, heads, seqlen, head_dim), "
            f"got {t.dim()}-D with shape {tuple(t.shape)}"
        )
    if t.shape[3] != HEAD_DIM:
        raise ValueError(
            f"fused_attention: {name}.shape[-1] (head_dim) must be {HEAD_DIM}, got {t.shape[3]}"
        )
    if t.stride(3) != 1:
        raise ValueError(
            f"fused_attention: {name}.stride(-1) must be 1 (last dimension contiguous), "
            f"got {t.stride(3)}"
        )


def _validate(q: Any, k: Any, v: Any, scale: Any) -> float:
    """Full argument check with precise errors; returns the effective scale.

    Not on the hot path: the compiled op checks the same conditions in C++ (for
    nanoseconds instead of microseconds), and fused_attention calls this only to
    turn a failed call into a clear ValueError / TypeError."""
    _check_tensor(q, "q")
    _check_tensor(k, "k")
    _check_tensor(v, "v")
    if k.device != q.device or v.device != q.device:
        raise ValueError(
            "fused_attention: q, k and v must be on the same device, "
            f"got q on {q.device}, k on {k.device}, v on {v.device}"
        )
    for dim, what in ((0, "batch"), (1, "heads")):
        if k.shape[dim] != q.shape[dim] or v.shape[dim] != q.shape[dim]:
            raise ValueError(
                f"fused_attention: q, k and v must have the same {what} size (dim {dim}), "
                f"got q {q.shape[dim]}, k {k.shape[dim]}, v {v.shape[dim]}"
            )
    if k.shape[2] != v.shape[2]:
        raise ValueError(
            f"fused_attention: k and v must have the same seqlen (dim 2), "
            f"got k {k.shape[2]} and v {v.shape[2]}"
        )
    if k.shape[2] < 1:
        raise ValueError(
            f"fused_attention: k.shape[2] (seqlen_k) must be >= 1 (softmax over no keys is "
            f"undefined), got {k.shape[2]}"
        )
    if scale is None:
        return 1.0 / math.sqrt(q.shape[3])
    return _check_scale(scale)


def _check_scale(scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(
            f"fused_attention: scale must be a float or None, got {type(scale).__name__}"
        )
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"fused_attention: scale must be finite and > 0, got {scale}")
    return float(scale)


_DEFAULT_SCALE = 1.0 / math.sqrt(HEAD_DIM)


def fused_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    return_lse: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(q @ k^T * scale) @ v in one fused CUDA kernel, like
    ``F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)``.

    Args:
        q: (batch, heads, seqlen_q, head_dim) float16 CUDA tensor.
        k, v: (batch, heads, seqlen_k, head_dim), same dtype and device as q.
            Any strides are accepted without a copy as long as the last dimension
            is contiguous (e.g. ``x.view(B, S, H, D).transpose(1, 2)``).
        causal: if True, query i attends to keys j <= i, aligned top-left (SDPA's
            ``is_causal``: with seqlen_q != seqlen_k, row i still sees keys 0..i).
        scale: multiplier of q @ k^T; default 1/sqrt(head_dim). Must be finite, > 0.
        return_lse: also return the per-row log-sum-exp of the scaled scores.

    Returns:
        out: new contiguous (batch, heads, seqlen_q, head_dim) tensor of q's dtype;
        with return_lse=True, ``(out, lse)`` where lse is (batch, heads, seqlen_q)
        float32, natural log.

    Supported: float16, head_dim 64, any batch/heads, seqlen_q >= 0, seqlen_k >= 1,
    GPUs of compute capability 8.0 or newer. Forward only.

    Raises:
        TypeError: a non-tensor input, unsupported dtype, or non-numeric scale.
        ValueError: not on CUDA, different devices, not 4-D, head_dim != 64,
            mismatched batch/heads/seqlen_k, last dimension not contiguous,
            seqlen_k == 0, or a non-finite / non-positive scale.
        RuntimeError: grad is enabled and an input requires grad (no backward
            yet); the compiled extension failed to load; or the GPU's
            architecture has no kernel in this build.
    """
    # Hot path: no Python-side validation. The op checks every condition in C++;
    # if it (or the dispatcher) refuses the call, _validate names the problem.
    if scale is None:
        scale_f = _DEFAULT_SCALE  # head_dim is 64; anything else fails the checks
    elif type(scale) is float:
        scale_f = scale
    else:
        scale_f = _check_scale(scale)
    if type(causal) is not bool:
        causal = bool(causal)
    try:
        needs_grad = torch.is_grad_enabled() and (
            q.requires_grad or k.requires_grad or v.requires_grad
        )
    except AttributeError:  # not tensors
        _validate(q, k, v, scale)
        raise
    if needs_grad:
        raise RuntimeError(
            "fused_attention: an input requires grad, but flashcore has no backward pass yet; "
            "call it under torch.no_grad() / torch.inference_mode(), or detach q, k and v"
        )
    if _loader.LOAD_ERROR is not None:
        _ops()
    try:
        if return_lse:
            return _fwd_lse(q, k, v, scale_f, causal)
        return _fwd(q, k, v, scale_f, causal)
    except (RuntimeError, TypeError, ValueError):  # NotImplementedError is a RuntimeError
        _validate(q, k, v, scale)
        raise
