"""flashcore: a fused attention forward kernel for PyTorch.

from flashcore import fused_attention
out = fused_attention(q, k, v, causal=False, scale=None)
out = scaled_dot_product_attention(q, k, v, is_causal=True)  # SDPA's signature
"""

from ._version import __version__
from .ops import build_info, fused_attention
from .sdpa import call_counts, reset_call_counts, scaled_dot_product_attention

__all__ = [
    "__version__",
    "build_info",
    "call_counts",
    "fused_attention",
    "reset_call_counts",
    "scaled_dot_product_attention",
]
