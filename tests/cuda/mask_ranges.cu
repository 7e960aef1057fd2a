// Host-side brute-force check of mask.cuh's tile ranges (built and run by
// tests/test_masks.py; no GPU): for random problems with every mask kind,
//   - KeyRange(m) is exactly the key tiles holding a visible pair for query tile m,
//   - QueryRange(n) is exactly the query tiles holding one for key tile n,
//   - both tiles' needs_mask are true exactly when the tile holds a pair
//     (real row, key < kBlockN past n0) that is not visible,
//   - mask_scores_t (the Hopper backward's S^T = K Q^T tiles: rows keys,
//     columns queries), applied as every consumer thread of the sm90 backward
//     applies it to its fragment (warpgroup w of 64 keys, warp, lane), masks
//     exactly the pairs that are not visible, in every tile it is called on,
//   - tile_visible_cols, over every key tile and every 64-row warpgroup of a
//     query tile: no key at or past the count it gives is visible to any of
//     the rows, and (window left edge unbounded) the last key before it is.
// The parameters are filled as api/ops.cpp fills them. Prints the number of
// tiles checked, or the first mismatch, and exits 1 on any.
#include <cstdio>
#include <cstdlib>
#include <random>

#include "flashcore/mask.cuh"

namespace {

using flashcore::FwdParams;

bool visible(const FwdParams& p, bool has_mask, int i, int j) {
  if (j >= p.seqlen_k) return false;
  if (!has_mask) return true;
  return i + p.key_offset - p.window_left <= j && j <= i + p.key_offset + p.window_right;
}

FwdParams make(int sq, int sk, bool causal, int wl, int wr, bool bottom_right) {
  FwdParams p{};
  p.seqlen_q = sq;
  p.seqlen_k = sk;
  const int unbounded = sq > sk ? sq : sk;
  int right = wr < 0 ? unbounded : (wr < unbounded ? wr : unbounded);
  if (causal && right > 0) right = 0;
  p.window_left = wl < 0 ? unbounded : (wl < unbounded ? wl : unbounded);
  p.window_right = right;
  p.key_offset = bottom_right ? sk - sq : 0;
  return p;
}

long checked = 0;

template <int BM, int BN, bool kHasMask>
bool check(const FwdParams& p) {
  const int m_tiles = (p.seqlen_q + BM - 1) / BM;
  const int n_tiles = (p.seqlen_k + BN - 1) / BN;
  for (int m = 0; m < m_tiles; ++m) {
    const flashcore::KeyRange<BM, BN, kHasMask> kr(p, m * BM);
    for (int n = 0; n < n_tiles; ++n) {
      const flashcore::QueryRange<BM, BN, kHasMask> qr(p, n * BN);
      bool any = false, hidden = false;
      for (int i = m * BM; i < m * BM + BM && i < p.seqlen_q; ++i) {
        for (int j = n * BN; j < n * BN + BN; ++j) {
          if (visible(p, kHasMask, i, j)) {
            any = true;
          } else {
            hidden = true;
          }
        }
      }
      // The unmasked kernels visit every tile (their only hidden keys are the tail).
      const bool in_kr = n >= kr.n_begin && n < kr.n_end;
      const bool in_qr = m >= qr.m_begin && m < qr.m_end;
      const bool expect = kHasMask ? any : true;
      if (in_kr != expect || in_qr != expect ||
          (expect && (kr.needs_mask(p, n) != hidden || qr.needs_mask(p, m) != hidden))) {
        std::printf(
            "MISMATCH BM=%d BN=%d mask=%d sq=%d sk=%d off=%d wl=%d wr=%d tile (%d,%d): pair %d "
            "hidden %d, KeyRange [%d,%d) needs %d, QueryRange [%d,%d) needs %d\n",
            BM, BN, kHasMask, p.seqlen_q, p.seqlen_k, p.key_offset, p.window_left,
            p.window_right, m, n, any, hidden, kr.n_begin, kr.n_end, kr.needs_mask(p, n),
            qr.m_begin, qr.m_end, qr.needs_mask(p, m));
        return false;
      }
      ++checked;
    }
  }
  return true;
}

template <int BM, int BN>
bool check_both(const FwdParams& p, bool has_mask) {
  return has_mask ? check<BM, BN, true>(p) : check<BM, BN, false>(p);
}

long cols_checked = 0;

// tile_visible_cols for each 64-row warpgroup of each BM-row query tile and
// each BN-key tile (the Hopper forward's first key step, sm90/fwd_kernel.cuh).
template <int BM, int BN, bool kHasMask>
bool check_cols(const FwdParams& p) {
  const int unbounded = p.seqlen_q > p.seqlen_k ? p.seqlen_q : p.seqlen_k;
  const int n_tiles = (p.seqlen_k + BN - 1) / BN;
  for (int r0 = 0; r0 < (p.seqlen_q + BM - 1) / BM * BM; r0 += 64) {
    const int r1 = (r0 + 63 < p.seqlen_q ? r0 + 63 : p.seqlen_q - 1);
    for (int n = 0; n < n_tiles; ++n) {
      const int n0 = n * BN;
      const int cols = flashcore::tile_visible_cols<kHasMask>(p, r0, r1, n0, BN);
      bool ok = cols >= 0 && cols <= BN;
      for (int i = r0; ok && i <= r1; ++i) {
        for (int j = n0 + cols; j < n0 + BN; ++j) ok = ok && !visible(p, kHasMask, i, j);
      }
      if (ok && cols > 0 && p.window_left >= unbounded) {
        ok = visible(p, kHasMask, r1, n0 + cols - 1);
      }
      if (!ok) {
        std::printf(
            "MISMATCH tile_visible_cols BN=%d mask=%d sq=%d sk=%d off=%d wl=%d wr=%d rows "
            "[%d,%d] keys from %d: %d\n",
            BN, kHasMask, p.seqlen_q, p.seqlen_k, p.key_offset, p.window_left, p.window_right,
            r0, r1, n0, cols);
        return false;
      }
      ++cols_checked;
    }
  }
  return true;
}

template <int BM, int BN>
bool check_cols_both(const FwdParams& p, bool has_mask) {
  return has_mask ? check_cols<BM, BN, true>(p) : check_cols<BM, BN, false>(p);
}

long elements = 0;

// The sm90 backward's element mask (sm90/bwd_kernel.cuh): key blocks of 128
// over two warpgroups of 64 keys, query blocks of BM; thread (w, warp, lane)
// holds keys n0 + 64w + 16 warp + lane / 4 (+ 8) and, per n8 tile j, queries
// m0 + 8j + 2 (lane % 4) (+ 1): fragment e is key + 8 (e / 2), query + e % 2.
template <int BM, bool kHasMask>
bool check_t(const FwdParams& p) {
  constexpr int BN = 128;
  const int n_tiles = (p.seqlen_k + BN - 1) / BN;
  for (int n = 0; n < n_tiles; ++n) {
    const flashcore::QueryRange<BM, BN, kHasMask> qr(p, n * BN);
    for (int m = qr.m_begin; m < qr.m_end; ++m) {
      if (!qr.needs_mask(p, m)) continue;  // exact (check above): every pair visible
      for (int tid = 0; tid < 256; ++tid) {
        const int w = tid / 128, warp = (tid % 128) / 32, lane = tid % 32;
        const int key = n * BN + 64 * w + 16 * warp + lane / 4;
        float s[BM / 8][4] = {};
        flashcore::mask_scores_t<BM / 8, kHasMask>(s, p, key, m * BM, 2 * (lane % 4));
        for (int j = 0; j < BM / 8; ++j) {
          for (int e = 0; e < 4; ++e) {
            const int i = m * BM + 8 * j + 2 * (lane % 4) + e % 2;
            const int jk = key + 8 * (e / 2);
            const bool masked = s[j][e] == -INFINITY;
            if (masked == visible(p, kHasMask, i, jk)) {
              std::printf(
                  "MISMATCH mask_scores_t BM=%d mask=%d sq=%d sk=%d off=%d wl=%d wr=%d: query "
                  "%d key %d masked %d\n",
                  BM, kHasMask, p.seqlen_q, p.seqlen_k, p.key_offset, p.window_left,
                  p.window_right, i, jk, masked);
              return false;
            }
            ++elements;
          }
        }
      }
    }
  }
  return true;
}

template <int BM>
bool check_t_both(const FwdParams& p, bool has_mask) {
  return has_mask ? check_t<BM, true>(p) : check_t<BM, false>(p);
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 3000; ++trial) {
    const int sq = pick(1, 400), sk = pick(1, 400);
    const bool causal = pick(0, 1), bottom_right = pick(0, 1);
    const int wl = pick(0, 2) ? -1 : pick(0, 300);
    const int wr = pick(0, 2) ? -1 : pick(0, 300);
    const FwdParams p = make(sq, sk, causal, wl, wr, bottom_right);
    // As launch_variant decides: the masked kernel when some bound cuts in.
    const int unbounded = sq > sk ? sq : sk;
    const bool has_mask = p.window_left < unbounded || p.window_right < unbounded;
    if (!check_both<64, 64>(p, has_mask) || !check_both<128, 128>(p, has_mask) ||
        !check_both<128, 64>(p, has_mask) || !check_both<64, 128>(p, has_mask) ||
        !check_both<128, 32>(p, true)) {
      return 1;
    }
    if (trial < 600 && (!check_t_both<64>(p, has_mask) || !check_t_both<128>(p, has_mask))) {
      return 1;
    }
    if (!check_cols_both<128, 128>(p, has_mask) || !check_cols_both<192, 128>(p, has_mask)) {
      return 1;
    }
  }
  std::printf("ok: %ld tiles, %ld transposed-mask elements, %ld visible-column counts\n",
              checked, elements, cols_checked);
  return 0;
}
