// Merge of partial softmax states (m, l, O) held by different warps in the
// mma accumulator layout: the key-group configs' end-of-loop combine. Each
// group leaves its state in shared memory in register order, so a thread reads
// exactly the values of its own rows and columns from every group; the
// combine runs in a fixed group order, so results are bitwise reproducible.
#pragma once

#include <cmath>

#include "flashcore/sm80/ptx.cuh"

namespace flashcore {

// Key-group merge, first half: each thread writes its row max, partial row
// sum and O fragments to its group's exchange buffer, layout [value][thread]
// (conflict-free), in register order.
template <typename Traits, typename Softmax>
__device__ __forceinline__ void merge_store(
    float* xchg, int gtid, const float (&acc_o)[Traits::kMTiles][Traits::kNTilesO][4],
    const Softmax (&softmax)[Traits::kMTiles]) {
  constexpr int kStride = Traits::kGroupThreads;
  int i = 0;
#pragma unroll
  for (int mt = 0; mt < Traits::kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r, i += 2) {
      xchg[i * kStride + gtid] = softmax[mt].m_i[r];
      xchg[(i + 1) * kStride + gtid] = softmax[mt].l_i[r];
    }
#pragma unroll
    for (int j = 0; j < Traits::kNTilesO; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e, ++i) xchg[i * kStride + gtid] = acc_o[mt][j][e];
  }
}

// Key-group merge, second half, split by columns: once every group stored its
// state (merge_store), group `group` combines n8 tiles group * kPer .. of O
// from all groups, in group order (fixed, so bitwise reproducible), into acc,
// rescaled to the joint row max; every group computes the joint row max and
// sum, which its normalization needs.
template <typename Traits, typename Softmax>
__device__ __forceinline__ void merge_split(
    const float* bufs, int group, int gtid,
    float (&acc)[Traits::kMTiles][Traits::kNTilesO / Traits::kKeyGroups][4],
    Softmax (&softmax)[Traits::kMTiles], float scale_log2) {
  constexpr int kG = Traits::kKeyGroups;
  constexpr int kPer = Traits::kNTilesO / kG;
  constexpr int kStride = Traits::kGroupThreads;
  constexpr int kGroupFloats = Traits::kSmemGroupKVBytes / 4;
  constexpr int kPerMTile = 4 + Traits::kNTilesO * 4;  // merge_store's layout: m, l of 2 rows, O
#pragma unroll
  for (int mt = 0; mt < Traits::kMTiles; ++mt) {
    const int base = mt * kPerMTile;
    float alpha[2][kG];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float m_g[kG], l_g[kG];
#pragma unroll
      for (int g = 0; g < kG; ++g) {
        m_g[g] = bufs[g * kGroupFloats + (base + 2 * r) * kStride + gtid];
        l_g[g] = bufs[g * kGroupFloats + (base + 2 * r + 1) * kStride + gtid];
      }
      float m_new = m_g[0];
#pragma unroll
      for (int g = 1; g < kG; ++g) m_new = fmaxf(m_new, m_g[g]);
      // All -inf (no visible key in any group): weights 0, not NaN.
      const float m_scaled = m_new == -INFINITY ? 0.f : m_new * scale_log2;
      float l_new = 0.f;
#pragma unroll
      for (int g = 0; g < kG; ++g) {
        alpha[r][g] = fast_exp2(m_g[g] * scale_log2 - m_scaled);
        l_new = fmaf(l_g[g], alpha[r][g], l_new);
      }
      softmax[mt].m_i[r] = m_new;
      softmax[mt].l_i[r] = l_new;
    }
#pragma unroll
    for (int jj = 0; jj < kPer; ++jj) {
      const int j = group * kPer + jj;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int idx = (base + 4 + j * 4 + e) * kStride + gtid;
        float o = 0.f;
#pragma unroll
        for (int g = 0; g < kG; ++g) o = fmaf(bufs[g * kGroupFloats + idx], alpha[e / 2][g], o);
        acc[mt][jj][e] = o;
      }
    }
  }
}

}  // namespace flashcore
