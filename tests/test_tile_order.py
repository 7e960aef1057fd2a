"""CPU tests of the Hopper forward's tile order (include/flashcore/sm90/tile_order.h):
the cross-head longest-first (LPT) map the persistent kernels use under a mask,
checked against a Python model of it and for being a bijection; the head group
the launch picks from the L2 size; and the debug switch that lets the heuristic
pick the persistent twins for masked calls (benchmarks/NOTES.md v15)."""

import itertools

import pytest

from flashcore import _debug

MiB = 1024 * 1024
H200_L2 = 50 * MiB  # cudaDevAttrL2CacheSize of H100 SXM and H200


def lpt_model(num_bh: int, num_m_blocks: int, group: int) -> list[tuple[int, int]]:
    """The LPT order written from its definition: groups of `group` consecutive
    (batch, head) pairs (the last one holds the rest); within a group, the last
    query block of every pair, then the one before, and so on, pairs ascending."""
    order = []
    for first in range(0, num_bh, group):
        pairs = range(first, min(first + group, num_bh))
        for m in reversed(range(num_m_blocks)):
            order.extend((bh, m) for bh in pairs)
    return order


def head_major_model(num_bh: int, num_m_blocks: int) -> list[tuple[int, int]]:
    return [(bh, m) for bh in range(num_bh) for m in reversed(range(num_m_blocks))]


# (pairs, query blocks, group): full groups, a ragged last group, one pair, one
# block, a group wider than the pairs, group 1.
SHAPES = [
    (8, 5, 4),
    (10, 3, 4),
    (10, 3, 3),
    (1, 7, 4),
    (5, 1, 2),
    (6, 4, 16),
    (7, 6, 1),
    (50, 5, 32),
    (32, 128, 4),
    (33, 16, 8),
]


@pytest.mark.parametrize("num_bh, num_m_blocks, group", SHAPES)
def test_lpt_map_is_the_model(num_bh, num_m_blocks, group):
    got = _debug.sm90_tile_order(num_bh, num_m_blocks, group)
    assert got == lpt_model(num_bh, num_m_blocks, group)


@pytest.mark.parametrize("num_bh, num_m_blocks, group", SHAPES)
def test_lpt_map_is_a_bijection(num_bh, num_m_blocks, group):
    got = _debug.sm90_tile_order(num_bh, num_m_blocks, group)
    every = {(bh, m) for bh in range(num_bh) for m in range(num_m_blocks)}
    assert len(got) == len(every) and set(got) == every


@pytest.mark.parametrize("num_bh, num_m_blocks, group", SHAPES)
def test_lpt_runs_longest_first_across_the_heads_of_a_group(num_bh, num_m_blocks, group):
    got = _debug.sm90_tile_order(num_bh, num_m_blocks, group)
    t = 0
    for first in range(0, num_bh, group):
        n = min(group, num_bh - first)
        tiles = got[t : t + n * num_m_blocks]
        t += n * num_m_blocks
        # The group's own pairs only, consecutive in t.
        assert {bh for bh, _ in tiles} == set(range(first, first + n))
        # Under a causal mask (top-left) a tile's work grows with its query
        # block: ranks never go to a longer tile.
        blocks = [m for _, m in tiles]
        assert blocks == sorted(blocks, reverse=True)
        # Every pair of the group gets its block m before any pair gets m - 1.
        for r in range(0, len(tiles), n):
            assert len({m for _, m in tiles[r : r + n]}) == 1
            assert [bh for bh, _ in tiles[r : r + n]] == list(range(first, first + n))
    assert t == len(got)


@pytest.mark.parametrize("num_bh, num_m_blocks", [(8, 5), (10, 3), (1, 1)])
def test_group_one_and_head_major_are_todays_order(num_bh, num_m_blocks):
    model = head_major_model(num_bh, num_m_blocks)
    assert _debug.sm90_tile_order(num_bh, num_m_blocks, 1, lpt=False) == model
    assert _debug.sm90_tile_order(num_bh, num_m_blocks, 1) == model


def test_tile_order_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"sm90_tile_order: bad arguments"):
        _debug.sm90_tile_order(4, 3, 0)


@pytest.mark.parametrize(
    "shape, d, group",
    [
        # K+V per head 2 * 16384 * 64 * 2 = 4 MiB: 4 heads in half of 50 MiB.
        ((2, 16, 16, 16384), 64, 4),
        # 8 MiB per head: 2.
        ((2, 16, 16, 16384), 128, 2),
        # 1 MiB per head at (8,16,4096) D64: 16 of 128 pairs.
        ((8, 16, 16, 4096), 64, 16),
        # Every pair fits: one group of all of them (not a power of two needed).
        ((2, 24, 24, 2048), 64, 48),
        ((3, 5, 5, 1024), 64, 15),
        # GQA: 4 query heads per kv head, so 8 query heads touch 2 kv heads.
        ((2, 32, 8, 16384), 64, 16),
        # Tiny K/V, many pairs: capped at 2**14 (FwdParams' 16-bit field).
        ((4096, 8, 8, 1), 64, 16384),
        ((3, 7000, 7000, 1), 64, 16384),
        # One head's K/V over half the L2: the head-major order.
        ((1, 4, 4, 131072), 128, 1),
        # The GPU test case with a ragged last group (tests/test_fwd.py
        # SM90_CASES "lpt_ragged_groups"): 32 + 18 pairs at D64, 16 x 3 + 2 at D128.
        ((2, 25, 25, 2100), 64, 32),
        ((2, 25, 25, 2100), 128, 16),
    ],
)
def test_lpt_group_fits_half_the_l2(shape, d, group):
    b, hq, hkv, sk = shape
    assert _debug.sm90_lpt_group(b, hq, hkv, sk, d, l2_bytes=H200_L2) == group
    kv_head = 2 * sk * d * 2
    q_per_kv = hq // hkv
    assert ((group - 1) // q_per_kv + 1) * kv_head <= H200_L2 // 2 or group == 1


@pytest.mark.parametrize(
    "longest, d, plain, persistent",
    [
        # past 64 query tiles of 128 (rows = min(Sq, Sk) < 1536: two warpgroups)
        ((4, 16, 16384, 1024), 64, "sm90_d64", "sm90_d64_p"),
        ((2, 16, 16384, 16384), 128, "sm90_d128", "sm90_d128_p"),
        # past 86 query tiles of 192 (three warpgroups)
        ((1, 16, 32768, 32768), 64, "sm90_d64_w3", "sm90_d64_w3_p"),
    ],
)
def test_persistent_masked_switch(longest, d, plain, persistent):
    dev = {"sm_count": 132, "cc_major": 9, "cc_minor": 0, "smem_optin": 227 * 1024}
    if not _debug.heuristic(*longest, d, **dev).startswith("sm90"):
        pytest.skip("this build has no Hopper family (sm_90a)")
    # Past its query-tile bound a masked call keeps the one-block-per-tile
    # build; the switch takes the persistent one there too.
    assert _debug.heuristic(*longest, d, **dev, masked=True) == plain
    short = (4, 16, 2048, 2048)
    short_masked = _debug.heuristic(*short, d, **dev, masked=True)
    unmasked = _debug.heuristic(*longest, d, **dev, masked=False)
    with _debug.sm90_persistent_masked():
        assert _debug.heuristic(*longest, d, **dev, masked=True) == persistent
        # Below the bound the persistent twin was the pick already; unmasked
        # calls do not change.
        assert _debug.heuristic(*short, d, **dev, masked=True) == short_masked
        assert short_masked.endswith("_p")
        assert _debug.heuristic(*longest, d, **dev, masked=False) == unmasked
        # Only the Hopper pick changes: small grids keep the mma.sync configs.
        small = _debug.heuristic(1, 8, 1024, 1024, d, **dev, masked=True)
        assert not small.startswith("sm90")
    # The default is back after the block.
    assert _debug.heuristic(*longest, d, **dev, masked=True) == plain


# (tiles, SMs, key tiles): head dim 64's three warpgroups at (4,16,2048) on an
# H200 (704 tiles of 192 rows, 44 in the last wave: 3 parts), at (8,16,4096),
# a full last wave, fewer tiles than SMs, short rows, one tile.
@pytest.mark.parametrize(
    "tiles, sm_count, key_tiles, expected",
    [
        (704, 132, 16, (660, 3, 792)),
        (2816, 132, 32, (2772, 3, 2904)),
        (2752, 132, 128, (2752, 1, 2752)),  # 112 in the last wave: no split
        (264, 132, 16, (264, 1, 264)),
        (44, 132, 16, (0, 3, 132)),
        (20, 132, 64, (0, 4, 80)),  # at most 4 parts
        (704, 132, 8, (660, 2, 748)),  # a part spans at least 4 key tiles
        (704, 132, 7, (704, 1, 704)),
        (1, 132, 1, (1, 1, 1)),
    ],
)
def test_tail_split_plan(tiles, sm_count, key_tiles, expected):
    first, parts, tasks, ranges = _debug.sm90_tail_split(tiles, sm_count, key_tiles)
    assert (first, parts, tasks) == expected
    if parts == 1:
        assert ranges == []
        return
    rest = tiles - first
    # Whole tiles fill whole waves; the split tasks fit in one.
    assert first % sm_count == 0 and 0 < rest < sm_count and rest * parts <= sm_count
    assert tasks == first + rest * parts
    # The parts cover the key tiles once, in order, near-equal and >= 4 each.
    assert ranges[0][0] == 0 and ranges[-1][1] == key_tiles
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    lengths = [e - b for b, e in ranges]
    assert min(lengths) >= 4 and max(lengths) - min(lengths) <= 1
    assert lengths == sorted(lengths, reverse=True)
