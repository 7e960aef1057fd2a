"""Debug and test hooks: the compiled kernel-config catalog, the config the
heuristic picks, and an override that forces a config (so the GPU tests and the
sanitizer cases run every compiled config on one GPU, including those only
another architecture's heuristic would pick). Not a stable API.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import torch

from . import _loader, ops


@lru_cache(maxsize=1)
def configs() -> list[dict[str, Any]]:
    """Every compiled forward config, in catalog order: name, head_dim (tile width:
    serves any head_dim up to it), block_m, block_n, warps, key_groups,
    smem_bytes, pdl, sm90 (the Hopper wgmma/TMA family: compute capability 9.0
    and TMA-ready inputs only), persistent (at most one block per SM, each
    taking query tiles from a counter), tail_split (persistent, and without a
    mask splits the last wave's tiles along keys: sm90_tail_split)."""
    lib = _loader.c_api()
    out = []
    for i in range(lib.flashcore_num_fwd_configs()):
        name = ctypes.create_string_buffer(64)
        vals = (ctypes.c_int64 * 10)()
        lib.flashcore_fwd_config_desc(i, name, len(name), vals)
        keys = (
            "head_dim",
            "block_m",
            "block_n",
            "warps",
            "key_groups",
            "smem_bytes",
            "pdl",
            "sm90",
            "persistent",
            "tail_split",
        )
        entry: dict[str, Any] = {"name": name.value.decode()}
        entry.update(zip(keys, (int(x) for x in vals)))
        entry["pdl"] = bool(entry["pdl"])
        entry["sm90"] = bool(entry["sm90"])
        entry["persistent"] = bool(entry["persistent"])
        entry["tail_split"] = bool(entry["tail_split"])
        out.append(entry)
    return out


def _index(name: str) -> int:
    for i, c in enumerate(configs()):
        if c["name"] == name:
            return i
    known = ", ".join(c["name"] for c in configs())
    raise ValueError(f"unknown kernel config {name!r}; compiled: {known}")


def device_desc(device: Any = None) -> dict[str, int]:
    """The numbers the heuristic reads for a CUDA device."""
    props = torch.cuda.get_device_properties(device if device is not None else 0)
    return {
        "sm_count": props.multi_processor_count,
        "cc_major": props.major,
        "cc_minor": props.minor,
        "smem_optin": props.shared_memory_per_block_optin // 1024 * 1024,
    }


def fits(name: str, device: Any = None) -> bool:
    """Whether the GPU allows config `name`'s shared memory per block."""
    return configs()[_index(name)]["smem_bytes"] <= device_desc(device)["smem_optin"]


def heuristic(
    batch: int,
    heads_q: int,
    seqlen_q: int,
    seqlen_k: int,
    head_dim: int,
    *,
    sm_count: int,
    cc_major: int,
    cc_minor: int = 0,
    smem_optin: int,
    tma_ok: bool = True,
    masked: bool = False,
    softcap: bool = False,
) -> str | None:
    """The config the dispatch heuristic picks for this shape on a device with these
    numbers (a pure function: no GPU needed). None when no config fits. tma_ok:
    whether q, k and v suit TMA (see tma_ok()); masked: whether the call masks
    any (query, key) pair (causal or a window; see masked()); softcap: whether
    the call applies a logit softcap."""
    i = _loader.c_api().flashcore_choose_fwd_config(
        batch,
        heads_q,
        seqlen_q,
        seqlen_k,
        head_dim,
        sm_count,
        cc_major,
        cc_minor,
        smem_optin,
        int(tma_ok),
        int(masked),
        int(softcap),
    )
    return configs()[i]["name"] if i >= 0 else None


def tma_ok(*tensors: torch.Tensor) -> bool:
    """Whether the Hopper family can read these tensors with TMA: 16-byte aligned
    data, and every stride of a dim of size > 1 a nonzero multiple of 8 elements
    (api/ops.cpp applies the same rule)."""
    return all(
        t.data_ptr() % 16 == 0
        and all(t.stride(i) % 8 == 0 and t.stride(i) != 0 for i in range(3) if t.shape[i] > 1)
        for t in tensors
    )


def masked(
    seqlen_q: int, seqlen_k: int, causal: bool = False, window: Any = None, **_: Any
) -> bool:
    """Whether a fused_attention call with these arguments masks any (query, key)
    pair: causal, or a window side shorter than max(seqlen_q, seqlen_k) (the rule
    api/ops.cpp applies after clamping the window)."""
    unbounded = max(seqlen_q, seqlen_k)
    left, right = (-1, -1) if window is None else ops._window_arg(window)
    left = unbounded if left < 0 else min(left, unbounded)
    right = unbounded if right < 0 else min(right, unbounded)
    if causal:
        right = min(right, 0)
    return left < unbounded or right < unbounded


def chosen_config(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kw: Any) -> str | None:
    """The config a fused_attention call on these tensors (and its causal / window /
    softcap arguments, in kw) runs on their GPU. The choice depends on the shapes,
    TMA readiness, whether anything is masked and whether softcap is on, not on
    the dtype."""
    b, hq, sq, d = q.shape
    sk = k.shape[2]
    return heuristic(
        b,
        hq,
        sq,
        sk,
        d,
        **device_desc(q.device),
        tma_ok=tma_ok(q, k, v),
        masked=masked(sq, sk, **kw),
        softcap=bool(kw.get("softcap")),
    )


@lru_cache(maxsize=1)
def bwd_configs() -> list[dict[str, Any]]:
    """Every compiled backward config, in catalog order (host/bwd_configs.h):
    name, head_dim (tile width: serves any head_dim up to it), block_m, block_n,
    warps, smem_bytes, sm90 (the Hopper wgmma/TMA family: compute capability 9.0,
    TMA-ready inputs, the default mode; the heuristic picks them where its grid
    fills the GPU, see bwd_heuristic, with the GQA split bwd_gqa_split_heuristic
    gives, none with softcap)."""
    lib = _loader.c_api()
    out = []
    for i in range(lib.flashcore_num_bwd_configs()):
        name = ctypes.create_string_buffer(64)
        vals = (ctypes.c_int64 * 6)()
        lib.flashcore_bwd_config_desc(i, name, len(name), vals)
        keys = ("head_dim", "block_m", "block_n", "warps", "smem_bytes", "sm90")
        entry: dict[str, Any] = {"name": name.value.decode()}
        entry.update(zip(keys, (int(x) for x in vals)))
        entry["sm90"] = bool(entry["sm90"])
        out.append(entry)
    return out


def _bwd_index(name: str) -> int:
    for i, c in enumerate(bwd_configs()):
        if c["name"] == name:
            return i
    known = ", ".join(c["name"] for c in bwd_configs())
    raise ValueError(f"unknown backward config {name!r}; compiled: {known}")


def bwd_heuristic(
    batch: int,
    heads_q: int,
    seqlen_q: int,
    seqlen_k: int,
    head_dim: int,
    *,
    sm_count: int,
    cc_major: int,
    cc_minor: int = 0,
    smem_optin: int,
    heads_kv: int | None = None,
    tma_ok: bool = True,
    deterministic: bool = False,
    gqa_split: int = -1,
) -> str | None:
    """The backward config the backward heuristic (host/heuristics.h
    choose_bwd_config) picks for this call on a device with these numbers, or
    None when no backward config serves it (a pure function: no GPU needed).

    The Hopper config of the tile width (sm90_bwd_d64 for head_dim <= 64,
    sm90_bwd_d128 up to 128) when the build has sm_90a, the device is compute
    capability 9.0 with its shared memory, tma_ok, not deterministic, no
    gqa_split over 1 is forced, and batch * heads_kv * ceil(seqlen_k / 128) is
    at least 48% of sm_count (the GPT training step's 64 blocks on 132 SMs, the
    smallest grid measured faster); else the narrowest mma.sync config that
    fits.

    heads_kv: k's and v's heads (default heads_q: no GQA). tma_ok: whether every
    tensor the backward reads (q, k, v, out, dout) suits TMA (see tma_ok()).
    deterministic: the backward's mode. gqa_split: a split forced by
    forced_bwd_gqa_split (-1: none)."""
    i = _loader.c_api().flashcore_choose_bwd_config(
        batch, heads_q, heads_q if heads_kv is None else heads_kv, seqlen_q, seqlen_k,
        head_dim, sm_count, cc_major, cc_minor, smem_optin, int(tma_ok), int(deterministic),
        gqa_split,
    )  # fmt: skip
    return bwd_configs()[i]["name"] if i >= 0 else None


def chosen_bwd_config(
    q: torch.Tensor,
    k: torch.Tensor,
    deterministic: bool = False,
    *,
    v: torch.Tensor | None = None,
    dout: torch.Tensor | None = None,
    gqa_split: int = -1,
) -> str | None:
    """The backward config a training call on these tensors runs on their GPU, in
    this mode and with this forced GQA split (-1: none). TMA readiness is read
    from q, k and, where given, v and dout (v defaults to k's layout; out is the
    forward's own, contiguous; a dout with a strided last dim is made contiguous
    by the autograd backward)."""
    b, hq, sq, d = q.shape
    tensors = (q, k) + tuple(t for t in (v, dout) if t is not None)
    return bwd_heuristic(
        b,
        hq,
        sq,
        k.shape[2],
        d,
        **device_desc(q.device),
        heads_kv=k.shape[1],
        tma_ok=tma_ok(*tensors),
        deterministic=deterministic,
        gqa_split=gqa_split,
    )


def bwd_gqa_split_heuristic(
    batch: int,
    heads_q: int,
    heads_kv: int,
    seqlen_q: int,
    seqlen_k: int,
    head_dim: int,
    name: str,
    *,
    sm_count: int,
    cc_major: int,
    cc_minor: int = 0,
    smem_optin: int,
    softcap: bool = False,
) -> int:
    """How many parts the backward splits each GQA group's query heads into
    (host/heuristics.h choose_bwd_gqa_split) for this shape, backward config
    `name` and a device with these numbers: the divisor G of heads_q / heads_kv
    with the least ceil(batch * heads_kv * key blocks * G / sm_count) / G (waves
    of one block per SM, each part 1/G of the work), the smallest on ties; 1
    without GQA, and 1 for a Hopper config with softcap (no split build). A pure
    function: no GPU needed."""
    return int(
        _loader.c_api().flashcore_choose_bwd_gqa_split(
            batch, heads_q, heads_kv, seqlen_q, seqlen_k, head_dim, sm_count, cc_major,
            cc_minor, smem_optin, _bwd_index(name), int(bool(softcap)),
        )
    )  # fmt: skip


def chosen_bwd_gqa_split(
    q: torch.Tensor,
    k: torch.Tensor,
    deterministic: bool = False,
    *,
    v: torch.Tensor | None = None,
    dout: torch.Tensor | None = None,
    softcap: float = 0.0,
) -> int:
    """The GQA group split a training call on these tensors (with this logit
    softcap) runs on their GPU, for the config chosen_bwd_config (same
    arguments) names, without a forced_bwd_gqa_split override."""
    b, hq, sq, d = q.shape
    name = chosen_bwd_config(q, k, deterministic, v=v, dout=dout)
    if name is None:
        raise ValueError(f"no backward config serves head_dim {d} on {q.device}")
    return bwd_gqa_split_heuristic(
        b, hq, k.shape[1], sq, k.shape[2], d, name, **device_desc(q.device), softcap=softcap > 0
    )


def bwd_workspace_elems(
    batch: int,
    heads_q: int,
    heads_kv: int,
    seqlen_q: int,
    seqlen_k: int,
    head_dim: int,
    name: str,
    gqa_split: int = 1,
) -> int:
    """float32 elements of the one workspace block the bwd op allocates for this
    shape, backward config and GQA group split (after dq, dk and dv: the GPU
    tests poison it). gqa_split > 1 adds the fp32 dK / dV partials."""
    return int(
        _loader.c_api().flashcore_bwd_workspace_elems(
            batch, heads_q, heads_kv, seqlen_q, seqlen_k, head_dim, _bwd_index(name), gqa_split
        )
    )


@contextlib.contextmanager
def forced_bwd_config(name: str) -> Iterator[None]:
    """The backward of every training call whose forward runs inside uses
    backward config `name` (the forward reads the override, so the backward may
    run after the block; the op raises ValueError when the head_dim is wider than
    the config's tile or the GPU lacks its shared memory). A Hopper-family config
    (``sm90`` in bwd_configs()) also raises ValueError off compute capability 9.0,
    in a build without sm_90a, on inputs TMA cannot read (see tma_ok()), in
    deterministic mode and with a forced GQA split other than 1. The heuristic
    picks one only for calls that none of these refuse (bwd_heuristic); the
    others run an mma.sync config instead of raising."""
    index = _bwd_index(name)
    previous = ops._FORCED_BWD_CONFIG
    ops._FORCED_BWD_CONFIG = index
    try:
        yield
    finally:
        ops._FORCED_BWD_CONFIG = previous


@contextlib.contextmanager
def forced_bwd_gqa_split(parts: int) -> Iterator[None]:
    """The backward of every training call whose forward runs inside splits each
    GQA group's query heads into `parts` parts (1: one thread block per key
    block and kv head walks the whole group; > 1: fp32 dK / dV partials and an
    ordered reduce). The forward reads the override, so the backward may run
    after the block; the op raises ValueError when `parts` does not divide
    heads_q / heads_kv. A split over 1 keeps the heuristic on the mma.sync
    configs (the Hopper family has none)."""
    if type(parts) is not int or parts < 1:
        raise ValueError(f"forced_bwd_gqa_split: parts must be an int >= 1, got {parts!r}")
    previous = ops._FORCED_BWD_GQA_SPLIT
    ops._FORCED_BWD_GQA_SPLIT = parts
    try:
        yield
    finally:
        ops._FORCED_BWD_GQA_SPLIT = previous


@contextlib.contextmanager
def forced_config(name: str) -> Iterator[None]:
    """Every fused_attention call inside runs kernel config `name` (the op raises
    ValueError when the head_dim is wider than the config's tile or the GPU lacks
    its shared memory)."""
    index = _index(name)
    previous = ops._FORCED_CONFIG
    ops._FORCED_CONFIG = index
    try:
        yield
    finally:
        ops._FORCED_CONFIG = previous


def sm90_tile_order(
    num_bh: int, num_m_blocks: int, group: int, lpt: bool = True
) -> list[tuple[int, int]]:
    """The Hopper forward's query tiles in the order its tile counter hands them
    out (include/flashcore/sm90/tile_order.h, the C++ map itself): (flattened
    (batch, head) pair, query block) for t = 0 .. num_bh * num_m_blocks - 1.
    lpt=False: the head-major order of every kernel but the persistent masked
    ones; lpt=True: their cross-head longest-first order over groups of `group`
    pairs (the last group may be smaller)."""
    lib = _loader.c_api()
    out = (ctypes.c_int * 2)()
    order = []
    for t in range(num_bh * num_m_blocks):
        if lib.flashcore_sm90_tile_index(t, num_m_blocks, num_bh, group, int(lpt), out) != 0:
            raise ValueError(
                f"sm90_tile_order: bad arguments num_bh={num_bh}, "
                f"num_m_blocks={num_m_blocks}, group={group}"
            )
        order.append((out[0], out[1]))
    return order


def sm90_lpt_group(
    batch: int, heads_q: int, heads_kv: int, seqlen_k: int, head_dim: int, *, l2_bytes: int
) -> int:
    """The (batch, head) group the persistent Hopper launch orders longest-first
    across under a mask, for a device with `l2_bytes` of L2: every pair when
    their K/V fits in half the L2, else the largest power of two of pairs that
    does (at least 1)."""
    return int(
        _loader.c_api().flashcore_sm90_lpt_group(
            batch * heads_q, heads_q // heads_kv, seqlen_k, head_dim, l2_bytes
        )
    )


def sm90_tail_split(
    tiles: int, sm_count: int, key_tiles: int
) -> tuple[int, int, int, list[tuple[int, int]]]:
    """The tail split of the persistent Hopper kernels without a mask
    (include/flashcore/sm90/tile_order.h, the C++ plan itself) for `tiles`
    query tiles of `key_tiles` key tiles on `sm_count` SMs: (first split task,
    parts, tasks, each part's key tiles [begin, end)); parts 1 and no ranges
    when the last wave is not split."""
    out = (ctypes.c_int * (3 + 2 * 64))()
    _loader.c_api().flashcore_sm90_tail_split(tiles, sm_count, key_tiles, out)
    parts = out[1]
    ranges = [(out[3 + 2 * i], out[4 + 2 * i]) for i in range(parts)] if parts > 1 else []
    return out[0], parts, out[2], ranges


@contextlib.contextmanager
def sm90_persistent_masked() -> Iterator[None]:
    """Inside, the forward heuristic picks the Hopper family's persistent twin
    (sm90_d64_p, sm90_d64_w3_p, sm90_d128_p) for every causal and windowed call
    it gives that family, also past the query-tile bounds where it otherwise
    picks the one-block-per-tile build (64 tiles of 128 rows, 86 of 192); those
    kernels hand out tiles longest-first across heads (sm90_tile_order). For the
    A/B (benchmarks/NOTES.md v15, v17). Process-wide, also seen by heuristic() and
    chosen_config(). A forced_config wins over it."""
    lib = _loader.c_api()
    previous = lib.flashcore_set_sm90_persistent_masked(1)
    try:
        yield
    finally:
        lib.flashcore_set_sm90_persistent_masked(previous)
