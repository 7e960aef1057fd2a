"""Case grids and helpers the forward and backward GPU tests share
(tests/test_fwd.py, tests/test_bwd.py): the backward covers what the forward
covers, so both walk the same dtype x head dim grid and name cases alike."""

import zlib

import pytest
import torch

DTYPES = [torch.float16, torch.bfloat16]


@pytest.fixture(autouse=True)
def seed_from_test_id(request):
    """Fresh random inputs in every test, seeded from its id so a failure reproduces."""
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))


def dtype_id(dtype):
    return str(dtype).replace("torch.", "")


def kw_id(kw):
    parts = []
    for key, val in kw.items():
        if key == "alignment":
            parts.append("br" if val == "bottom_right" else "tl")
        elif key == "window":
            parts.append(f"w{val[0]}_{val[1]}")
        elif key == "softcap":
            parts.append(f"cap{val:g}")
        elif key == "enable_gqa":
            parts.append("gqa")
        elif val is True:
            parts.append(key)
    return "+".join(parts) or "nomask"


def randn(*shape, dtype=torch.float16, scale=1.0):
    return (torch.randn(*shape, device="cuda") * scale).to(dtype)


# dtype x head dim: three variants per head dim, the seqlen pairs (tails, Sq != Sk
# both ways, one query, one key) and the alignment rotating through the grid.
PAIRS_A = [(113, 257), (257, 113), (17, 1000), (1000, 17), (1, 300), (300, 1), (128, 128)]
VARIANTS_A = [
    ("plain", (2, 3, 3), {}),
    ("causal", (1, 4, 4), {"causal": True}),
    ("gqa_window_softcap", (2, 4, 2), {"enable_gqa": True, "window": (37, 11), "softcap": 5.0}),
]


def cases_dtype_head_dim(head_dims):
    """pytest params of (dtype, d, (batch, heads_q, heads_kv), sq, sk, kwargs)."""
    cases, n = [], 0
    for dtype in DTYPES:
        for d in head_dims:
            for name, heads, kw in VARIANTS_A:
                sq, sk = PAIRS_A[n % len(PAIRS_A)]
                if name != "plain":
                    kw = dict(kw, alignment=("top_left", "bottom_right")[n % 2])
                case = (dtype, d, heads, sq, sk, kw)
                cases.append(pytest.param(case, id=f"{dtype_id(dtype)}-d{d}-{kw_id(kw)}-{sq}x{sk}"))
                n += 1
    return cases


# Mask kinds (the backward adds a softcap-only row).
MASKS = {
    "none": {},
    "causal": {"causal": True},
    "causal_br": {"causal": True, "alignment": "bottom_right"},
    "window_left": {"window": (100, -1)},
    "window_right_br": {"window": (-1, 50), "alignment": "bottom_right"},
    "window_both": {"window": (60, 20)},
    "window_0_0_br": {"window": (0, 0), "alignment": "bottom_right"},
    "causal_window": {"causal": True, "window": (128, -1)},
    "causal_window_br": {"causal": True, "window": (33, 40), "alignment": "bottom_right"},
    "causal_br_softcap": {"causal": True, "alignment": "bottom_right", "softcap": 8.0},
}
