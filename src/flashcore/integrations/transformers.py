"""Hugging Face transformers: ``attn_implementation="fcore"``.

    import flashcore.integrations.transformers as fct
    fct.register()
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="fcore")

The name is "fcore", not "flashcore": transformers treats every
attn_implementation whose name contains "flash" as a flash-attn kernel (it tries
to load it from the Hub and switches the model to flash-attn code paths), so a
name with "flash" in it cannot work. ``NAME`` holds it.

``register()`` adds "fcore" to transformers' attention registry
(``AttentionInterface``) and to its mask registry (``AttentionMaskInterface``).
The mask function builds no mask at all when the batch has no padding and the
keys end where the queries end (prefill, KV-cache decode, chunked prefill with
a dynamic cache): the attention function then derives the mask from the layer
itself (causal, aligned bottom-right; the layer's sliding window) and runs
flashcore's kernel with GQA, scaling and softcap as the model asks. Whatever
flashcore cannot serve (a padding mask, packed or otherwise patterned masks, a
static cache, dropout in training, autograd with a head dim the backward does
not cover or under deterministic algorithms, an unsupported dtype or head dim,
attention biases) gets transformers' SDPA mask and runs on PyTorch's SDPA, or
on an exact eager path when the layer uses softcap, which SDPA lacks. Each
fallback is counted by reason in ``flashcore.call_counts()`` and logged
once.

transformers is imported only here, so ``import flashcore`` never imports it.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import sdpa as _sdpa
from ..ops import fused_attention

# Must not contain "flash" (see the module docstring).
NAME = "fcore"


def _can_skip_mask(
    q_length: int,
    kv_length: int,
    q_offset: Any,
    kv_offset: Any,
    attention_mask: torch.Tensor | None,
    kwargs: dict[str, Any],
) -> bool:
    """Whether the mask transformers asks for is exactly "causal (or not),
    bottom-right aligned, with the layer's own window": no padding, no extra
    pattern, and the last query's position is the last key's."""
    if not kwargs.get("allow_is_causal_skip", True):
        return False  # or/and masks, packed sequences, block masks, static-cache decode
    if not kwargs.get("allow_is_bidirectional_skip", True):
        return False
    if not (isinstance(q_offset, int) and isinstance(kv_offset, int)):
        return False  # a static cache (tensor offsets): its keys include empty slots
    if q_offset + q_length != kv_offset + kv_length:
        return False
    if attention_mask is None:
        return True
    if attention_mask.dim() != 2:
        return False  # a prepared 4-D mask is returned as-is upstream; never here
    mask = attention_mask[:, -kv_length:]
    return mask.shape[1] == kv_length and bool(mask.all())


def flashcore_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: Any = 0,
    kv_offset: Any = 0,
    mask_function: Any = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> torch.Tensor | None:
    """transformers mask-interface function: None when flashcore needs no mask
    (see the module docstring), else SDPA's mask for the fallback."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    if _can_skip_mask(q_length, kv_length, q_offset, kv_offset, attention_mask, kwargs):
        return None
    # SDPA may skip the mask where its own top-left is_causal covers it, but the
    # attention below reads None as bottom-right: make SDPA build it.
    kwargs["allow_is_causal_skip"] = False
    kwargs["allow_is_bidirectional_skip"] = False
    return sdpa_mask(
        batch_size=batch_size,
        q_length=q_length,
        kv_length=kv_length,
        q_offset=q_offset,
        kv_offset=kv_offset,
        mask_function=mask_function if mask_function is not None else causal_mask_function,
        attention_mask=attention_mask,
        **kwargs,
    )


def _layer_mask(
    q_length: int, kv_length: int, causal: bool, sliding_window: int | None, device: torch.device
) -> torch.Tensor | None:
    """The boolean (1, 1, q_length, kv_length) mask that a None mask stands for here:
    causal aligned bottom-right, within the layer's sliding window (None when
    every key is visible)."""
    if not causal and not sliding_window:
        return None
    rows = torch.arange(q_length, device=device)[:, None] + (kv_length - q_length)
    cols = torch.arange(kv_length, device=device)[None, :]
    visible = cols <= rows if causal else torch.ones_like(cols <= rows)
    if sliding_window:
        visible = visible & (cols > rows - sliding_window)
    return visible[None, None]


def _eager_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    scaling: float | None,
    softcap: float,
) -> torch.Tensor:
    """Attention with softcap for the fallback (SDPA has none): scores in float32,
    masked by `attention_mask` (boolean, True = visible, or additive); returns
    (batch, heads, q_len, head_dim) in the input dtype."""
    hq, hkv = query.shape[1], key.shape[1]
    if hq != hkv:
        key = key.repeat_interleave(hq // hkv, dim=1)
        value = value.repeat_interleave(hq // hkv, dim=1)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scale
    scores = softcap * torch.tanh(scores / softcap)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask.float()
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    if dropout and module.training:
        probs = torch.nn.functional.dropout(probs, p=dropout)
    return torch.matmul(probs, value.float()).to(query.dtype)


def flashcore_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    softcap: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention-interface function: (batch, heads, seq, head_dim)
    q/k/v in, (batch, q_len, heads, head_dim) out, no attention weights."""
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if attention_mask is not None:
        reason = "attention mask (padding or a patterned mask)"
    elif dropout and module.training:
        reason = "dropout in training mode"
    elif kwargs.get("position_bias") is not None:
        reason = "position bias"
    elif sliding_window is not None and not causal:
        reason = "bidirectional sliding window"
    elif scaling is not None and not scaling > 0:
        reason = "scaling not positive"
    else:
        reason = _sdpa.unsupported_reason(query, key, value, enable_gqa=True)
    if not torch.compiler.is_compiling():
        _sdpa.record(reason)

    if reason is None:
        window = None
        if sliding_window is not None and sliding_window > 0:
            # transformers' sliding window: key j visible from query i iff
            # i - sliding_window < j <= i.
            window = (sliding_window - 1, 0)
        out = fused_attention(
            query,
            key,
            value,
            causal=bool(causal),
            scale=scaling,
            enable_gqa=query.shape[1] != key.shape[1],
            window=window,
            alignment="bottom_right",
            softcap=softcap if softcap else None,
        )
    else:
        if attention_mask is None:
            # The mask function built nothing: the layer's own pattern, bottom-right.
            attention_mask = _layer_mask(
                query.shape[2], key.shape[2], bool(causal), sliding_window, query.device
            )
        if softcap:
            out = _eager_attention(
                module, query, key, value, attention_mask, dropout, scaling, softcap
            )
        else:
            from transformers.integrations.sdpa_attention import sdpa_attention_forward

            return sdpa_attention_forward(
                module,
                query,
                key,
                value,
                attention_mask,
                dropout=dropout,
                scaling=scaling,
                is_causal=False if attention_mask is not None else is_causal,
                **kwargs,
            )
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make ``attn_implementation="fcore"`` (``NAME``) available to transformers models
    (idempotent; needs transformers installed)."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface
    except ImportError as exc:
        raise ImportError(
            "flashcore.integrations.transformers.register() needs the transformers package "
            "(pip install transformers)"
        ) from exc
    AttentionInterface.register(NAME, flashcore_attention_forward)
    AttentionMaskInterface.register(NAME, flashcore_mask)


def is_registered() -> bool:
    """Whether ``NAME`` is in transformers' attention and mask registries."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    return (
        AttentionInterface._global_mapping.get(NAME) is flashcore_attention_forward
        and AttentionMaskInterface._global_mapping.get(NAME) is flashcore_mask
    )
