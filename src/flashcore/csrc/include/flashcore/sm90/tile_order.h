// The order in which the Hopper forward hands out query tiles, as plain
// integer maps shared by the kernel (sm90/fwd_kernel.cuh), the launch (which
// picks the head group) and the C entry point the CPU tests call
// (host/c_api.cpp). No CUDA headers: host/c_api.cpp is plain C++.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FLASHCORE_TILE_ORDER_FN __host__ __device__ __forceinline__
#else
#define FLASHCORE_TILE_ORDER_FN inline
#endif

namespace flashcore {
namespace sm90 {

// A query tile: flattened (batch, query head) pair bh and query block m_block.
struct TileIndex {
  int bh;
  int m_block;
};

// The grid order of every kernel without a mask, and of the one-block-per-tile
// kernels with one: the tiles of one (batch, head) adjacent, so blocks running
// together share its K/V in L2, and within a head the last query blocks first
// (under a causal mask the longest).
FLASHCORE_TILE_ORDER_FN TileIndex tile_index_head_major(int t, int num_m_blocks) {
  return {t / num_m_blocks, num_m_blocks - 1 - t % num_m_blocks};
}

// The flattened index of tile i in the head-major order (its inverse).
FLASHCORE_TILE_ORDER_FN int head_major_tile(TileIndex i, int num_m_blocks) {
  return i.bh * num_m_blocks + num_m_blocks - 1 - i.m_block;
}

// Longest-processing-time-first across heads, for the persistent kernels under
// a mask, where a tile's cost grows with its query block and the atomic counter
// hands tiles to whichever block asks next (benchmarks/NOTES.md v10: with the
// head-major order, a long tile claimed late lengthens the grid's tail).
// The (batch, head) pairs are cut into groups of `group` consecutive pairs (the
// last group holds the rest, possibly fewer). A group's tiles are consecutive
// in t; inside it, rank r is query block num_m_blocks - 1 - r / n of pair
// r % n (n: the group's size), so the last query block of every pair in the
// group comes first, then the one before, and so on. The launch sizes the
// group so its K/V fits in L2 (lpt_group_size). group 1 is the head-major
// order.
FLASHCORE_TILE_ORDER_FN TileIndex tile_index_lpt(int t, int num_m_blocks, int num_bh, int group) {
  const int span = group * num_m_blocks;  // tiles of one full group
  const int g = t / span;
  const int r = t - g * span;
  const int first = g * group;
  const int rest = num_bh - first;
  const int n = rest < group ? rest : group;  // this group's pairs
  return {first + r % n, num_m_blocks - 1 - r / n};
}

// The LPT head group: all num_bh (batch, head) pairs when their K/V fits, else
// the largest power of two of pairs (at most kMaxLptGroup) whose K and V (2 * seqlen_k * head_dim elements of 2 bytes per kv
// head) take at most half of the L2, so the other half keeps Q, O and the
// neighbouring group's K/V. Pairs of one batch share a kv head per q_per_kv
// query heads (GQA); a run of g pairs touches at most (g - 1) / q_per_kv + 1
// kv heads. At least 1 (one head's K/V larger than half the L2: the
// head-major order).
// A group this large already spreads each wave of at most one block per SM
// over the same query block of many heads; the cap keeps it in FwdParams'
// 16-bit field.
constexpr int kMaxLptGroup = 1 << 14;

inline int lpt_group_size(int64_t num_bh, int q_per_kv, int64_t seqlen_k, int head_dim,
                          int64_t l2_bytes) {
  const int64_t kv_head_bytes = 2 * seqlen_k * head_dim * 2;
  const int64_t budget = l2_bytes / 2;
  if (q_per_kv < 1) q_per_kv = 1;
  auto fits = [&](int64_t g) { return ((g - 1) / q_per_kv + 1) * kv_head_bytes <= budget; };
  if (num_bh <= 1) return 1;
  if (num_bh <= kMaxLptGroup && fits(num_bh)) return static_cast<int>(num_bh);
  int64_t g = 1;
  while (2 * g <= num_bh && 2 * g <= kMaxLptGroup && fits(2 * g)) g *= 2;
  return static_cast<int>(g);
}

// The tail split (v28) of the persistent kernels without a mask, whose query
// tiles all cost the same: with T tiles on G blocks the last wave holds only
// T % G of them, and the rest of the GPU idles while they run. Instead the
// whole tiles fill floor(T / G) waves and each tile of the rest is cut into
// `parts` key ranges, one task each, so the last wave holds (T % G) * parts
// tasks of 1 / parts the work (at most G). Each task's warps write their
// partial O and row statistics to the scheduler buffer; the warp that
// finishes a tile's rows last merges them and writes the output
// (sm90/fwd_kernel.cuh). Tasks [0, first_task) are whole tiles, then tile
// first_task + i / parts, key range i % parts.
struct TailSplit {
  int first_task;
  int parts;  // 1: no split
  int num_tasks;
};

// A part spans at least kMinTailKeyTiles key tiles (each pays a tile's start,
// end and merge), at most kMaxTailParts parts.
constexpr int kMaxTailParts = 4;
constexpr int kMinTailKeyTiles = 4;

FLASHCORE_TILE_ORDER_FN TailSplit tail_split_plan(int tiles, int sm_count, int key_tiles) {
  TailSplit plan{tiles, 1, tiles};
  if (sm_count <= 0 || tiles <= 0) return plan;
  const int rest = tiles % sm_count;
  if (rest == 0) return plan;
  int parts = sm_count / rest;
  if (parts > kMaxTailParts) parts = kMaxTailParts;
  if (parts > key_tiles / kMinTailKeyTiles) parts = key_tiles / kMinTailKeyTiles;
  if (parts < 2) return plan;
  plan.first_task = tiles - rest;
  plan.parts = parts;
  plan.num_tasks = plan.first_task + rest * parts;
  return plan;
}

// The plan of one call of a kernel that can split (`capable`: persistent,
// no mask, the epilogue from registers) with `tiles` query tiles; no split
// otherwise. The launch and api/ops.cpp (which sizes the scheduler buffer by
// it) both call this.
inline TailSplit fwd_tail_split(bool capable, int64_t tiles, int sm_count, int64_t seqlen_k,
                                int block_n) {
  if (!capable || tiles <= 0 || tiles > 0x7fffffff || block_n <= 0) {
    const int t = tiles > 0 && tiles <= 0x7fffffff ? static_cast<int>(tiles) : 0;
    return TailSplit{t, 1, t};
  }
  const int64_t key_tiles = (seqlen_k + block_n - 1) / block_n;
  return tail_split_plan(static_cast<int>(tiles), sm_count,
                         key_tiles > 0x7fffffff ? 0x7fffffff : static_cast<int>(key_tiles));
}

// Key tiles [begin, end) of part `part` of a tile whose key range is
// [n_begin, n_end): consecutive near-equal shares, the longer ones first.
FLASHCORE_TILE_ORDER_FN void tail_part_range(int n_begin, int n_end, int parts, int part,
                                             int* begin, int* end) {
  const int n = n_end - n_begin;
  const int base = n / parts;
  const int extra = n % parts;
  *begin = n_begin + part * base + (part < extra ? part : extra);
  *end = *begin + base + (part < extra ? 1 : 0);
}

// The persistent kernels' scheduler buffer (api/ops.cpp allocates it per call):
// int [0] the task counter; with a tail split then one arrival counter per
// split tile and consumer warp (the launch zeroes [0, counts_end)), and from
// byte ws_offset (16-byte aligned) one partial result per split task and
// consumer warp: per lane, kNTilesO float4 of O and one float4 (m0, m1, l0, l1).
// (A block hands its next task to its consumers in shared memory: q_task in
// sm90/fwd_kernel.cuh.)
struct SchedLayout {
  int64_t counts_begin;  // in ints
  int64_t counts_end;    // in ints
  int64_t ws_offset;     // in bytes
  int64_t bytes;
};

inline SchedLayout sched_layout(const TailSplit& plan, int consumer_warps, int tile_head_dim) {
  const int64_t split_tasks = plan.parts > 1 ? plan.num_tasks - plan.first_task : 0;
  const int64_t split_tiles = plan.parts > 1 ? split_tasks / plan.parts : 0;
  SchedLayout l;
  l.counts_begin = 1;
  l.counts_end = l.counts_begin + split_tiles * consumer_warps;
  l.ws_offset = (l.counts_end * 4 + 15) / 16 * 16;
  l.bytes = l.ws_offset + split_tasks * consumer_warps * (tile_head_dim / 8 + 1) * 32 * 16;
  return l;
}

}  // namespace sm90
}  // namespace flashcore
