"""flashcore: a fused attention forward kernel for PyTorch.

from flashcore import fused_attention
out = fused_attention(q, k, v, causal=False, scale=None)
"""

from ._version import __version__
from .ops import build_info, fused_attention

__all__ = ["__version__", "build_info", "fused_attention"]
