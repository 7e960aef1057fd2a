// Which keys a block of query rows sees, and the per-element mask of the tiles
// that straddle a boundary. One rule for every mask kind (params.h):
//   query row i sees key j  <=>  j < seqlen_k  and, in the masked kernels,
//   i + key_offset - window_left <= j <= i + key_offset + window_right.
// Causal is window_right = 0 (window_left unbounded unless a window is given);
// key_offset is 0 (top-left) or seqlen_k - seqlen_q (bottom-right).
#pragma once

#include <cmath>

#include "flashcore/params.h"

namespace flashcore {

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

  __device__ __forceinline__ KeyRange(const FwdParams& p, int m0) {
    m_first = m0;
    m_last = min(m0 + kBlockM, p.seqlen_q) - 1;
    const int num_tiles = (p.seqlen_k + kBlockN - 1) / kBlockN;
    if constexpr (kHasMask) {
      const int key_lo = max(0, m_first + p.key_offset - p.window_left);
      const int key_hi = min(p.seqlen_k - 1, m_last + p.key_offset + p.window_right);
      n_begin = key_lo / kBlockN;
      n_end = key_hi < key_lo ? n_begin : key_hi / kBlockN + 1;
    } else {
      n_begin = 0;
      n_end = num_tiles;
    }
  }

  // Whether key tile n_block needs per-element masking: it crosses the key
  // tail, or some (row, key) pair in it lies outside that row's window.
  __device__ __forceinline__ bool needs_mask(const FwdParams& p, int n_block) const {
    const int n0 = n_block * kBlockN;
    bool mask = n0 + kBlockN > p.seqlen_k;
    if constexpr (kHasMask) {
      mask |= n0 < m_last + p.key_offset - p.window_left;
      mask |= n0 + kBlockN - 1 > m_first + p.key_offset + p.window_right;
    }
    return mask;
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

}  // namespace flashcore
