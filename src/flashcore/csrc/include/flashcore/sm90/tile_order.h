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

}  // namespace sm90
}  // namespace flashcore
