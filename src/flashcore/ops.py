"""Typed Python entry points: argument marshalling, dispatch to torch.ops.flashcore,
fake (meta) implementations for torch.compile, and autograd for training.

The argument rules live in one place, the compiled extension (host/checks.cpp):
the op checks every call, and when it refuses one its tagged message is re-raised
here as the matching ValueError / TypeError / NotImplementedError. Fake
implementations (torch.compile traces with tensors that have no data) run the same
checks through the extension's C entry points.

Training (docs/design/backward.md §8): the no-grad ops ``fwd`` / ``fwd_lse`` carry
no autograd kernel, so inference pays nothing for autograd. A call that needs a
gradient goes to ``fwd_train`` (the same forward, also returning the lse the
backward needs), whose registered autograd formula calls ``bwd``; ``bwd``'s own
formula refuses double backward.
"""

from __future__ import annotations

import ctypes
import math
import re
from typing import Any

import torch

from . import _loader
from ._version import __version__

# Public description of what the kernels accept (the rules are in C++).
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
ALIGNMENTS = ("top_left", "bottom_right")

# Forced kernel config (index into the extension's catalog), -1 = the heuristic.
# Set only by flashcore._debug.forced_config.
_FORCED_CONFIG = -1
# Forced backward config (index into the backward catalog), -1 = the heuristic.
# Set only by flashcore._debug.forced_bwd_config; read when the forward runs.
_FORCED_BWD_CONFIG = -1
# Forced GQA group split of the backward (parts per group, a divisor of
# heads_q / heads_kv), -1 = the heuristic. Set only by
# flashcore._debug.forced_bwd_gqa_split; read when the forward runs.
_FORCED_BWD_GQA_SPLIT = -1

_ERROR_TAG = re.compile(r"\[flashcore:(ValueError|TypeError|NotImplementedError)\] ([^\n]*)")
_ERROR_TYPES = {
    "ValueError": ValueError,
    "TypeError": TypeError,
    "NotImplementedError": NotImplementedError,
}
# What a C contract entry point's return code means (host/checks.h ArgError).
_KINDS = {1: ValueError, 2: TypeError, 3: NotImplementedError}
# c10::ScalarType codes, for describing tensors to the C entry point.
_DTYPE_CODES = {
    torch.uint8: 0,
    torch.int8: 1,
    torch.int16: 2,
    torch.int32: 3,
    torch.int64: 4,
    torch.float16: 5,
    torch.float32: 6,
    torch.float64: 7,
    torch.complex64: 9,
    torch.complex128: 10,
    torch.bool: 11,
    torch.bfloat16: 15,
}


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


def _require_library() -> None:
    if _loader.LOAD_ERROR is not None:
        raise RuntimeError(f"flashcore: {_loader.LOAD_ERROR}")


# ---- the contract, through the extension's C entry point ----------------------


def _hint(x: Any) -> int:
    """A concrete int for a size that may be symbolic (torch.compile dynamic
    shapes): its example value. The op checks the real value again at run time."""
    if isinstance(x, torch.SymInt):
        return int(x.node.hint) if x.node.hint is not None else 1
    return int(x)


def _describe(t: torch.Tensor) -> ctypes.Array:
    """The 9 int64 the C entry point reads: is_cuda, device, dtype, ndim, sizes[4],
    last_stride."""
    ndim = t.dim()
    sizes = [_hint(s) for s in t.shape[:4]] + [0] * (4 - min(ndim, 4))
    last_stride = _hint(t.stride(-1)) if ndim else 1
    is_cuda = t.device.type == "cuda"
    device = (t.device.index or 0) if is_cuda else -1
    vals = [int(is_cuda), device, _DTYPE_CODES.get(t.dtype, 99), ndim, *sizes, last_stride]
    return (ctypes.c_int64 * 9)(*vals)


def _not_a_tensor(named: tuple) -> TypeError | None:
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            return TypeError(
                f"fused_attention: {name} must be a torch.Tensor, got {type(t).__name__}"
            )
    return None


def _contract_result(kind: int, msg: ctypes.Array, tensors: tuple) -> Exception | None:
    """The exception a C contract entry point's (kind, message) stands for."""
    if kind == 0:
        return None
    text = msg.value.decode()
    if kind == 1 and "must be a CUDA tensor" in text:
        device = next(t.device for t in tensors if t.device.type != "cuda")
        text += f", got device '{device}'"
        if not torch.cuda.is_available():
            text += " (no CUDA GPU is available on this machine)"
    return _KINDS.get(kind, ValueError)(text)


def _contract_error(q, k, v, scale, causal, wl, wr, bottom_right, softcap, gqa, config):
    """The ValueError / TypeError the contract raises for these arguments, or None."""
    err = _not_a_tensor((("q", q), ("k", k), ("v", v)))
    if err is not None:
        return err
    lib = _loader.c_api()
    msg = ctypes.create_string_buffer(1024)
    kind = lib.flashcore_check_fwd_args(
        _describe(q), _describe(k), _describe(v), float(scale), int(causal), int(wl), int(wr),
        int(bottom_right), float(softcap), int(gqa), int(config), msg, len(msg),
    )  # fmt: skip
    return _contract_result(kind, msg, (q, k, v))


def _train_contract_error(
    q, k, v, scale, causal, wl, wr, bottom_right, softcap, gqa, deterministic, config
):
    """fwd_train's contract (host/checks.cpp check_fwd_train_args): the forward's;
    both backward modes exist, so ``deterministic`` refuses nothing."""
    err = _not_a_tensor((("q", q), ("k", k), ("v", v)))
    if err is not None:
        return err
    lib = _loader.c_api()
    msg = ctypes.create_string_buffer(1024)
    kind = lib.flashcore_check_fwd_train_args(
        _describe(q), _describe(k), _describe(v), float(scale), int(causal), int(wl), int(wr),
        int(bottom_right), float(softcap), int(gqa), int(deterministic), int(config), msg,
        len(msg),
    )  # fmt: skip
    return _contract_result(kind, msg, (q, k, v))


def _bwd_contract_error(
    dout, q, k, v, out, lse, dlse, scale, causal, wl, wr, bottom_right, softcap, gqa,
    deterministic, config, gqa_split=-1,
):  # fmt: skip
    """bwd's contract (host/checks.cpp check_bwd_args), or None."""
    named = (("dout", dout), ("q", q), ("k", k), ("v", v), ("out", out), ("lse", lse))
    if dlse is not None:
        named += (("dlse", dlse),)
    err = _not_a_tensor(named)
    if err is not None:
        return err
    lib = _loader.c_api()
    msg = ctypes.create_string_buffer(1024)
    kind = lib.flashcore_check_bwd_args(
        _describe(dout), _describe(q), _describe(k), _describe(v), _describe(out),
        _describe(lse), None if dlse is None else _describe(dlse), int(lse.is_contiguous()),
        int(dlse is None or dlse.is_contiguous()), float(scale), int(causal), int(wl), int(wr),
        int(bottom_right), float(softcap), int(gqa), int(deterministic), int(config),
        int(gqa_split), msg, len(msg),
    )  # fmt: skip
    return _contract_result(kind, msg, tuple(t for _, t in named))


def _reraise(exc: BaseException, args: tuple) -> None:
    """Turns a failed op call into the contract's ValueError / TypeError."""
    m = _ERROR_TAG.search(str(exc))
    if m:
        raise _ERROR_TYPES[m.group(1)](m.group(2)) from None
    err = _contract_error(*args)  # e.g. CPU tensors: the dispatcher refused first
    if err is not None:
        raise err from None
    raise exc


# ---- fake implementations (torch.compile) --------------------------------------


if _loader.LOAD_ERROR is None:
    _fwd = torch.ops.flashcore.fwd.default
    _fwd_lse = torch.ops.flashcore.fwd_lse.default

    @torch.library.register_fake("flashcore::fwd")
    def _fwd_fake(q, k, v, scale, is_causal, wl, wr, bottom_right, softcap, gqa, config):
        err = _contract_error(q, k, v, scale, is_causal, wl, wr, bottom_right, softcap, gqa, config)
        if err is not None:
            raise err
        return q.new_empty(q.shape)

    @torch.library.register_fake("flashcore::fwd_lse")
    def _fwd_lse_fake(q, k, v, scale, is_causal, wl, wr, bottom_right, softcap, gqa, config):
        err = _contract_error(q, k, v, scale, is_causal, wl, wr, bottom_right, softcap, gqa, config)
        if err is not None:
            raise err
        return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)

    # fwd / fwd_lse have no autograd kernel on purpose: a Python autograd kernel
    # runs on every call (grad mode or not) and costs microseconds of host time.
    # fused_attention sends calls that need a gradient to fwd_train instead.

    _fwd_train = torch.ops.flashcore.fwd_train.default
    _bwd = torch.ops.flashcore.bwd.default

    @torch.library.register_fake("flashcore::fwd_train")
    def _fwd_train_fake(q, k, v, scale, is_causal, wl, wr, bottom_right, softcap, gqa, det, config):
        err = _train_contract_error(
            q, k, v, scale, is_causal, wl, wr, bottom_right, softcap, gqa, det, config
        )
        if err is not None:
            raise err
        return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)

    @torch.library.register_fake("flashcore::bwd")
    def _bwd_fake(dout, q, k, v, out, lse, dlse, scale, is_causal, wl, wr, bottom_right, softcap,
                  gqa, det, config, gqa_split=-1):  # fmt: skip
        err = _bwd_contract_error(
            dout, q, k, v, out, lse, dlse, scale, is_causal, wl, wr, bottom_right, softcap, gqa,
            det, config, gqa_split,
        )  # fmt: skip
        if err is not None:
            raise err
        return _grad_like(q), _grad_like(k), _grad_like(v)

    def _fwd_train_setup_context(ctx, inputs, output):
        q, k, v, scale, is_causal, wl, wr, bottom_right, softcap, gqa, det, _config = inputs
        out, lse = output
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scalars = (scale, is_causal, wl, wr, bottom_right, softcap, gqa, det)
        ctx.bwd_config = _FORCED_BWD_CONFIG
        ctx.bwd_gqa_split = _FORCED_BWD_GQA_SPLIT
        # An unused output's gradient stays None: no zero-filled dout or dlse.
        ctx.set_materialize_grads(False)

    def _fwd_train_backward(ctx, dout, dlse):
        q, k, v, out, lse = ctx.saved_tensors
        if dout is None:  # a loss of lse alone
            dout = torch.zeros_like(out)
        elif dout.stride(-1) != 1:  # e.g. the expanded gradient of out.sum()
            dout = dout.contiguous()
        if dlse is not None and not dlse.is_contiguous():
            dlse = dlse.contiguous()
        try:
            dq, dk, dv = _bwd(
                dout, q, k, v, out, lse, dlse, *ctx.scalars, ctx.bwd_config, ctx.bwd_gqa_split
            )
        except RuntimeError as exc:  # the op's tagged refusal, as its Python type
            m = _ERROR_TAG.search(str(exc))
            if m:
                raise _ERROR_TYPES[m.group(1)](m.group(2)) from None
            raise
        return (dq, dk, dv) + (None,) * 9

    torch.library.register_autograd(
        "flashcore::fwd_train", _fwd_train_backward, setup_context=_fwd_train_setup_context
    )

    def _bwd_backward(ctx, *grads):
        raise RuntimeError(
            "fused_attention: double backward (differentiating flashcore's backward pass, "
            "e.g. a gradient penalty through torch.autograd.grad(..., create_graph=True)) "
            "is not supported"
        )

    torch.library.register_autograd("flashcore::bwd", _bwd_backward)


def _grad_like(t: torch.Tensor) -> torch.Tensor:
    """A gradient buffer like t, as the bwd op allocates it (api/ops.cpp grad_like):
    aten's empty_like (a dense input's strides; a non-overlapping input's dim
    order, packed densely; else contiguous), contiguous if that left the last dim
    strided."""
    g = torch.empty_like(t)
    return g if g.stride(-1) == 1 else t.new_empty(t.shape)


def _deterministic_arg(deterministic: Any) -> bool:
    """The backward mode a training call asks for. None follows
    torch.use_deterministic_algorithms: on (with or without warn_only), it means
    the deterministic backward, which needs no warning."""
    if deterministic is None:
        return torch.are_deterministic_algorithms_enabled()
    if type(deterministic) is not bool:
        raise TypeError(
            "fused_attention: deterministic must be a bool or None, got "
            f"{type(deterministic).__name__}"
        )
    return deterministic


# ---- argument marshalling (types; the value rules are the contract's) -----------


def _scale_arg(scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(
            f"fused_attention: scale must be a float or None, got {type(scale).__name__}"
        )
    return float(scale)


def _softcap_arg(softcap: Any) -> float:
    if isinstance(softcap, bool) or not isinstance(softcap, (int, float)):
        raise TypeError(
            f"fused_attention: softcap must be a float or None, got {type(softcap).__name__}"
        )
    return float(softcap)


def _window_arg(window: Any) -> tuple[int, int]:
    ok = isinstance(window, (tuple, list)) and len(window) == 2
    ok = ok and all(isinstance(w, int) and not isinstance(w, bool) for w in window)
    if not ok:
        raise TypeError(
            "fused_attention: window must be None or a pair of ints (left, right), -1 for "
            f"unbounded, got {window!r}"
        )
    return int(window[0]), int(window[1])


def _alignment_arg(alignment: Any) -> bool:
    if alignment == "top_left":
        return False
    if alignment == "bottom_right":
        return True
    raise ValueError(
        f"fused_attention: alignment must be 'top_left' or 'bottom_right', got {alignment!r}"
    )


def fused_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    return_lse: bool = False,
    *,
    enable_gqa: bool = False,
    window: tuple[int, int] | None = None,
    alignment: str = "top_left",
    softcap: float | None = None,
    deterministic: bool | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(q @ k^T * scale) @ v in one fused CUDA kernel, like
    ``F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale,
    enable_gqa=enable_gqa)``, plus sliding windows, bottom-right alignment and softcap.

    Args:
        q: (batch, heads_q, seqlen_q, head_dim) float16 or bfloat16 CUDA tensor;
            head_dim any multiple of 8 from 8 to 256.
        k, v: (batch, heads_kv, seqlen_k, head_dim), same dtype and device as q.
            Any strides are accepted without a copy as long as the last dimension
            is contiguous (e.g. ``x.view(B, S, H, D).transpose(1, 2)``).
        causal: if True, query i attends to keys j <= i + offset: aligned top-left
            by default (SDPA's ``is_causal``: with seqlen_q != seqlen_k, row i
            still sees keys 0..i); see ``alignment``.
        scale: multiplier of q @ k^T; default 1/sqrt(head_dim). Must be finite, > 0.
        return_lse: also return the per-row log-sum-exp of the scaled scores.
        enable_gqa: grouped-query / multi-query attention (SDPA's meaning): k and v
            have heads_kv heads, heads_q % heads_kv == 0, and query head h reads kv
            head h // (heads_q // heads_kv). k and v are never repeated in memory.
            Without it the head counts must match.
        window: (left, right) sliding-window (local) attention, flash-attn's
            ``window_size``: query i sees keys j with
            i + offset - left <= j <= i + offset + right; -1 means unbounded on that
            side. With causal=True the two masks intersect. Key blocks wholly
            outside every row's window are skipped, not computed.
        alignment: "top_left" (offset 0, the default) or "bottom_right" (offset
            seqlen_k - seqlen_q: the last query row lines up with the last key, as
            in KV-cache decode and chunked prefill; flash-attn's and SDPA's
            ``causal_lower_right``).
        softcap: if > 0, scores become softcap * tanh(scale * q.k / softcap) before
            the softmax (Gemma 2, Grok); None or 0 means off.
        deterministic: the backward pass's mode, read only when a gradient is
            needed. False: the default backward accumulates dq with atomic adds,
            so dq can differ in its last bits from run to run (dk and dv do
            not). True: dq, dk and dv are bitwise identical from run to run (dq
            is computed by its own kernel, query block by query block, without
            atomics; it redoes two of the backward's GEMMs, so the backward
            takes longer: 1.20-1.35x on an H200). None (the
            default) follows ``torch.use_deterministic_algorithms``: enabled,
            with or without ``warn_only``, means True.

    Returns:
        out: new contiguous (batch, heads_q, seqlen_q, head_dim) tensor of q's dtype;
        with return_lse=True, ``(out, lse)`` where lse is (batch, heads_q, seqlen_q)
        float32, natural log. A query row that sees no key at all (possible with
        windows, or bottom-right causal with seqlen_q > seqlen_k) gets zeros in out
        and -inf in lse.

    Training: when grad mode is on and q, k or v requires grad, the call records
    a backward (``loss.backward()`` gives q, k and v their gradients, zero for
    rows that take part in no visible pair); with return_lse=True the lse is
    differentiable too. It needs a backward kernel for the head dim and GPU:
    every head dim on compute capability 8.0 and 9.0 (A100, H100/H200), up to
    128 on GPUs with 99 KB of shared memory per block (8.6, 8.9); otherwise
    the training forward raises ValueError naming the head dim. Double
    backward is not supported (RuntimeError when differentiating through the
    gradients).
    Without grad the call records nothing and costs nothing extra.

    Softmax and accumulation run in float32. GPUs of compute capability 8.0 or
    newer.

    Raises:
        TypeError: a non-tensor input, unsupported dtype, q/k/v dtypes differ, or a
            scale / softcap / window of the wrong type.
        ValueError: not on CUDA, different devices, not 4-D, unsupported head_dim,
            head dims or batch differ, head counts differ without enable_gqa (or
            heads_q not a multiple of heads_kv with it), k/v seqlens differ,
            seqlen_k == 0, last dimension not contiguous, a non-finite or
            non-positive scale, window values below -1, a negative or non-finite
            softcap, or an unknown alignment.
        RuntimeError: the compiled extension failed to load; the GPU's
            architecture has no kernel in this build; or double backward.
    """
    # Hot path: marshalling only. The op checks every rule in C++; if it (or the
    # dispatcher) refuses the call, _reraise words the problem.
    try:
        scale_f = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    except (AttributeError, IndexError):
        scale_f = 1.0  # not a tensor: reported by the contract check below
    if type(scale_f) is not float:
        scale_f = _scale_arg(scale_f)
    if type(causal) is not bool:
        causal = bool(causal)
    wl, wr = (-1, -1) if window is None else _window_arg(window)
    bottom_right = _alignment_arg(alignment)
    softcap_f = 0.0 if softcap is None else softcap
    if type(softcap_f) is not float:
        softcap_f = _softcap_arg(softcap_f)
    if type(enable_gqa) is not bool:
        enable_gqa = bool(enable_gqa)
    args = (q, k, v, scale_f, causal, wl, wr, bottom_right, softcap_f, enable_gqa, _FORCED_CONFIG)
    try:
        needs_grad = torch.is_grad_enabled() and (
            q.requires_grad or k.requires_grad or v.requires_grad
        )
    except AttributeError:  # not tensors
        _reraise(TypeError("not a tensor"), args)
        raise
    if needs_grad:
        return _train(args, return_lse, deterministic)
    _require_library()
    try:
        if return_lse:
            return _fwd_lse(*args)
        return _fwd(*args)
    except (RuntimeError, TypeError, ValueError) as exc:  # NotImplementedError is a RuntimeError
        _reraise(exc, args)
        raise


def _train(args: tuple, return_lse: bool, deterministic: Any):
    """fused_attention's path for calls that need a gradient: fwd_train, whose
    autograd formula runs the backward."""
    det = _deterministic_arg(deterministic)
    _require_library()
    try:
        out, lse = _fwd_train(*args[:10], det, args[10])
    except (RuntimeError, TypeError, ValueError) as exc:
        _reraise(exc, args)
        raise
    return (out, lse) if return_lse else out
