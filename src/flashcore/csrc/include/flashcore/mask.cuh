// Which keys a block of query rows sees, and the per-element mask of the tiles
// that straddle a boundary. One rule for every mask kind (params.h):
//   query row i sees key j  <=>  j < seqlen_k  and, in the masked kernels,
//   i + key_offset - window_left <= j <= i + key_offset + window_right.
// Causal is window_right = 0 (window_left unbounded unless a window is given);
// key_offset is 0 (top-left) or seqlen_k - seqlen_q (bottom-right).
#pragma once

#include <cmath>

#include "flashcore/params.h"

// The range and tile-mask helpers are host-callable too (tests/cuda/mask_ranges.cu
// checks them against brute force on the CPU).
#if defined(__CUDACC__)
#define FLASHCORE_HD __host__ __device__ __forceinline__
#else
#define FLASHCORE_HD inline
#endif

namespace flashcore {

// min / max that compile to exactly the device built-ins in device code (the
// forward kernels' SASS is unchanged by the host path) and to plain compares
// on the host.
FLASHCORE_HD int imin(int a, int b) {
#if defined(__CUDA_ARCH__)
  return min(a, b);
#else
  return a < b ? a : b;
#endif
}
FLASHCORE_HD int imax(int a, int b) {
#if defined(__CUDA_ARCH__)
  return max(a, b);
#else
  return a > b ? a : b;
#endif
}

// Whether the tile of query rows [m_first, m_last] (real rows only) and keys
// [n0, n0 + kBlockN) needs per-element masking: it crosses the key tail, or some
// (row, key) pair in it lies outside that row's window. Exact (not just safe):
// false means every pair of the tile is visible.
template <int kBlockN, bool kHasMask>
FLASHCORE_HD bool tile_needs_mask(const FwdParams& p, int m_first, int m_last, int n0) {
  bool mask = n0 + kBlockN > p.seqlen_k;
  if constexpr (kHasMask) {
    mask |= n0 < m_last + p.key_offset - p.window_left;
    mask |= n0 + kBlockN - 1 > m_first + p.key_offset + p.window_right;
  }
  return mask;
}

// The key tiles [n_begin, n_end) a query block [m0, m0 + block_m) must visit;
// tiles wholly outside every row's window are skipped, not masked. Empty
// (n_end <= n_begin) when no row of the block sees any key.
template <int kBlockM, int kBlockN, bool kHasMask>
struct KeyRange {
  int n_begin;
  int n_end;
  // First and last real query row of the block (rows past seqlen_q are
  // computed but never stored, so they do not widen the range).
  int m_first;
  int m_last;

  FLASHCORE_HD KeyRange(const FwdParams& p, int m0) {
    m_first = m0;
    m_last = imin(m0 + kBlockM, p.seqlen_q) - 1;
    const int num_tiles = (p.seqlen_k + kBlockN - 1) / kBlockN;
    if constexpr (kHasMask) {
      const int key_lo = imax(0, m_first + p.key_offset - p.window_left);
      const int key_hi = imin(p.seqlen_k - 1, m_last + p.key_offset + p.window_right);
      n_begin = key_lo / kBlockN;
      n_end = key_hi < key_lo ? n_begin : key_hi / kBlockN + 1;
    } else {
      n_begin = 0;
      n_end = num_tiles;
    }
  }

  // Whether key tile n_block needs per-element masking: it crosses the key
  // tail, or some (row, key) pair in it lies outside that row's window.
  // tile_needs_mask's predicate, written out: through the helper, nvcc
  // scheduled the masked forward kernels differently (same instruction count)
  // from the ones measured on the GPU (v9); tests/cuda/mask_ranges.cu checks
  // both forms against brute force.
  FLASHCORE_HD bool needs_mask(const FwdParams& p, int n_block) const {
    const int n0 = n_block * kBlockN;
    bool mask = n0 + kBlockN > p.seqlen_k;
    if constexpr (kHasMask) {
      mask |= n0 < m_last + p.key_offset - p.window_left;
      mask |= n0 + kBlockN - 1 > m_first + p.key_offset + p.window_right;
    }
    return mask;
  }
};

// How many leading keys of the tile [n0, n0 + block_n) rows [r_first, r_last]
// can see at most, in 0 .. block_n: keys from n0 + the result on are visible
// to none of those rows (past the tail, or right of every row's window). An
// upper bound, not exact (a window's left edge is not looked at); 0 when
// r_last < r_first (no real row). The Hopper forward asks it of each consumer
// warpgroup's 64 rows for the block's first key tile (sm90/fwd_kernel.cuh).
template <bool kHasMask>
FLASHCORE_HD int tile_visible_cols(const FwdParams& p, int r_first, int r_last, int n0,
                                   int block_n) {
  if (r_last < r_first) return 0;
  int hi = p.seqlen_k - 1;
  if constexpr (kHasMask) hi = imin(hi, r_last + p.key_offset + p.window_right);
  return imax(0, imin(block_n, hi - n0 + 1));
}

// The transpose, for the backward (docs/design/backward.md, section 3): the
// query tiles [m_begin, m_end) that key block [n0, n0 + kBlockN) must visit.
// Query i sees key j iff j - off - wr <= i <= j - off + wl (and j < seqlen_k),
// so the block's queries are [n0 - off - wr, n_last - off + wl] clipped to
// [0, seqlen_q). Empty (m_end <= m_begin) when no query sees any of its keys.
// m is in this range iff n is in KeyRange(m) with the same tile sizes.
template <int kBlockM, int kBlockN, bool kHasMask>
struct QueryRange {
  int m_begin;
  int m_end;
  int n_first;  // first and last real key of the block
  int n_last;

  FLASHCORE_HD QueryRange(const FwdParams& p, int n0) {
    n_first = n0;
    n_last = imin(n0 + kBlockN, p.seqlen_k) - 1;
    const int num_tiles = (p.seqlen_q + kBlockM - 1) / kBlockM;
    if constexpr (kHasMask) {
      const int q_lo = imax(0, n_first - p.key_offset - p.window_right);
      const int q_hi = imin(p.seqlen_q - 1, n_last - p.key_offset + p.window_left);
      m_begin = q_lo / kBlockM;
      m_end = q_hi < q_lo ? m_begin : q_hi / kBlockM + 1;
    } else {
      m_begin = 0;
      m_end = num_tiles;
    }
  }

  // Whether query tile m_block of this key block needs per-element masking.
  FLASHCORE_HD bool needs_mask(const FwdParams& p, int m_block) const {
    const int m0 = m_block * kBlockM;
    return tile_needs_mask<kBlockN, kHasMask>(p, m0, imin(m0 + kBlockM, p.seqlen_q) - 1,
                                              n_first);
  }
};

// Sets to -inf the scores of one m16 tile's two rows (qrow, qrow + 8 in the
// mma accumulator layout: thread holds columns 2*(lane%4), +1 of each n8 tile)
// whose key is outside the row's visible range. n0: first key of the tile.
template <int kNTilesS, bool kHasMask>
__device__ __forceinline__ void mask_scores(float (&s)[kNTilesS][4], const FwdParams& p,
                                            int qrow, int n0, int quad_col) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = qrow + r * 8;
    // Visible columns of this tile for the row: [lo, hi] relative to n0.
    int hi = p.seqlen_k - 1 - n0;
    int lo = 0;
    if constexpr (kHasMask) {
      hi = min(hi, row + p.key_offset + p.window_right - n0);
      lo = row + p.key_offset - p.window_left - n0;
    }
#pragma unroll
    for (int j = 0; j < kNTilesS; ++j) {
      const int col = j * 8 + quad_col;
      if (col > hi || (kHasMask && col < lo)) s[j][2 * r] = -INFINITY;
      if (col + 1 > hi || (kHasMask && col + 1 < lo)) s[j][2 * r + 1] = -INFINITY;
    }
  }
}

// mask_scores for a transposed score tile (the Hopper backward's S^T = K Q^T:
// rows are keys, columns queries), same fragment layout: the two key rows
// (key, key + 8) and, per n8 tile, query columns q0 + 8j + quad_col, +1.
// A key past seqlen_k is masked for every query; otherwise query i sees key j
// iff j - key_offset - window_right <= i <= j - key_offset + window_left (the
// row rule of mask_scores solved for i). Queries past seqlen_q are left as
// they are: their lse_log2 is +inf, so P = 0 there whatever the score.
// Host-callable too: tests/cuda/mask_ranges.cu checks it element by element
// against brute force, through the fragment layout of every consumer thread.
template <int kNTilesS, bool kHasMask>
FLASHCORE_HD void mask_scores_t(float (&s)[kNTilesS][4], const FwdParams& p, int key, int q0,
                                int quad_col) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = key + r * 8;
    // Visible columns of this tile for the key: [lo, hi] relative to q0; an
    // empty range (hi < lo) for a key past the tail.
    int lo = 0;
    int hi = row < p.seqlen_k ? kNTilesS * 8 : -1;
    if constexpr (kHasMask) {
      lo = row - p.key_offset - p.window_right - q0;
      hi = imin(hi, row - p.key_offset + p.window_left - q0);
    }
#pragma unroll
    for (int j = 0; j < kNTilesS; ++j) {
      const int col = j * 8 + quad_col;
      if (col > hi || (kHasMask && col < lo)) s[j][2 * r] = -INFINITY;
      if (col + 1 > hi || (kHasMask && col + 1 < lo)) s[j][2 * r + 1] = -INFINITY;
    }
  }
}

}  // namespace flashcore
