// Warp-level GEMMs of the mma.sync attention kernels, on tiles in shared memory
// (layout: smem_layout.cuh) and fragments in registers (mma.m16n8k16 layout).
// Each warp owns Traits::kMTiles m16 tiles of query rows.
#pragma once

#include <cstdint>

#include "flashcore/numeric.cuh"
#include "flashcore/smem_layout.cuh"
#include "flashcore/sm80/ptx.cuh"

namespace flashcore {

// A fragments of this warp's Q rows (warp_row0 ..) over the whole head dim.
template <typename Traits>
__device__ __forceinline__ void load_q_frags(
    uint32_t (&q_frag)[Traits::kMTiles][Traits::kKStepsQK][4], uint32_t smem_q, int warp_row0,
    int lane) {
  using Layout = TileLayout<Traits>;
#pragma unroll
  for (int mt = 0; mt < Traits::kMTiles; ++mt) {
#pragma unroll
    for (int kd = 0; kd < Traits::kKStepsQK; ++kd) {
      const int row = warp_row0 + mt * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
      const int chunk = 2 * kd + lane / 16;
      ldmatrix_x4(smem_q + Layout::offset(row, chunk), q_frag[mt][kd][0], q_frag[mt][kd][1],
                  q_frag[mt][kd][2], q_frag[mt][kd][3]);
    }
  }
}

// s = Q K^T for this warp's rows and the kBlockN keys of the K tile:
// (kMTiles m16) x (kNTilesS n8) fp32 accumulators, overwritten.
template <typename Elem, typename Traits>
__device__ __forceinline__ void gemm_qk(
    float (&s)[Traits::kMTiles][Traits::kNTilesS][4],
    const uint32_t (&q_frag)[Traits::kMTiles][Traits::kKStepsQK][4], uint32_t smem_k, int lane) {
  using Layout = TileLayout<Traits>;
#pragma unroll
  for (int mt = 0; mt < Traits::kMTiles; ++mt)
#pragma unroll
    for (int j = 0; j < Traits::kNTilesS; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[mt][j][e] = 0.f;

#pragma unroll
  for (int kd = 0; kd < Traits::kKStepsQK; ++kd) {
#pragma unroll
    for (int jp = 0; jp < Traits::kNTilesS / 2; ++jp) {
      // One ldmatrix.x4 = B fragments of key n8 tiles 2jp and 2jp+1 at this k16 step.
      uint32_t b00, b01, b10, b11;
      const int row = jp * 16 + (lane % 8) + (lane / 16) * 8;
      const int chunk = 2 * kd + (lane / 8) % 2;
      ldmatrix_x4(smem_k + Layout::offset(row, chunk), b00, b01, b10, b11);
#pragma unroll
      for (int mt = 0; mt < Traits::kMTiles; ++mt) {
        Numeric<Elem>::mma_m16n8k16(s[mt][2 * jp], q_frag[mt][kd], b00, b01);
        Numeric<Elem>::mma_m16n8k16(s[mt][2 * jp + 1], q_frag[mt][kd], b10, b11);
      }
    }
  }
}

// acc_o += P V, P = the probabilities in s (fp32, accumulator layout). The
// accumulator layout of S n8 tiles (2kk, 2kk+1) is exactly the A-fragment
// layout of a 16x16 P tile, so P is packed to 16-bit in registers.
template <typename Elem, typename Traits>
__device__ __forceinline__ void gemm_pv(float (&acc_o)[Traits::kMTiles][Traits::kNTilesO][4],
                                        const float (&s)[Traits::kMTiles][Traits::kNTilesS][4],
                                        uint32_t smem_v, int lane) {
  using Layout = TileLayout<Traits>;
#pragma unroll
  for (int kk = 0; kk < Traits::kKStepsPV; ++kk) {
    uint32_t p_frag[Traits::kMTiles][4];
#pragma unroll
    for (int mt = 0; mt < Traits::kMTiles; ++mt) {
      p_frag[mt][0] = Numeric<Elem>::pack2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
      p_frag[mt][1] = Numeric<Elem>::pack2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
      p_frag[mt][2] = Numeric<Elem>::pack2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
      p_frag[mt][3] = Numeric<Elem>::pack2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
    }
#pragma unroll
    for (int jp = 0; jp < Traits::kNTilesO / 2; ++jp) {
      // B fragments of head-dim n8 tiles 2jp, 2jp+1 over keys 16kk..16kk+15;
      // V is stored key-major, so ldmatrix transposes on the way in.
      uint32_t b00, b01, b10, b11;
      const int row = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
      const int chunk = 2 * jp + lane / 16;
      ldmatrix_x4_trans(smem_v + Layout::offset(row, chunk), b00, b01, b10, b11);
#pragma unroll
      for (int mt = 0; mt < Traits::kMTiles; ++mt) {
        Numeric<Elem>::mma_m16n8k16(acc_o[mt][2 * jp], p_frag[mt], b00, b01);
        Numeric<Elem>::mma_m16n8k16(acc_o[mt][2 * jp + 1], p_frag[mt], b10, b11);
      }
    }
  }
}

// acc += A B for one warp, both operands in shared memory (the backward's five
// GEMMs; docs/design/backward.md, section 6). acc: (kMTiles m16) x (kNTiles
// n8) fp32 tiles; the product's k dimension runs over kKSteps k16 steps.
//
// Operand storage, in 16-bit tiles of layouts LayoutA / LayoutB
// (TileLayout<...>, rows of 16-byte chunks):
//   A element (m, k): row m, column k (kATrans false: A stored m-major, e.g.
//     Q for S = Q K^T), or row k, column m (kATrans true: A^T stored, e.g. P
//     for dV = P^T dO); the tile's first element is (a_m0, a_k0).
//   B element (k, n): row n, column k (kBTrans false: e.g. K for S = Q K^T),
//     or row k, column n (kBTrans true: e.g. dO for dV = P^T dO, K for
//     dQ = dS K); the tile's first element is (b_k0, b_n0).
// Transposed operands go through ldmatrix.trans. Row and column offsets must
// be multiples of 16 rows and 8 columns (whole 8x8 ldmatrix matrices).
//
// The k16 loop is unrolled by 2 only: the backward kernels hold dK and dV in
// registers for their whole life, and with the loop fully unrolled ptxas
// hoisted fragment loads until the kernels spilled 140-440 bytes at the
// 255-register cap. Unrolled by 2 they spill 0-64 bytes, the same as with the
// loop rolled (ptxas -v, sm_80 and sm_90a), and the next step's ldmatrix can
// issue under this step's mma. Not yet measured on a GPU.
template <typename Elem, typename LayoutA, typename LayoutB, int kMTiles, int kNTiles,
          int kKSteps, bool kATrans, bool kBTrans>
__device__ __forceinline__ void gemm_ss(float (&acc)[kMTiles][kNTiles][4], uint32_t smem_a,
                                        int a_m0, int a_k0, uint32_t smem_b, int b_k0,
                                        int b_n0, int lane) {
  static_assert(kNTiles % 2 == 0, "B fragments come in pairs of n8 tiles (ldmatrix.x4)");
#pragma unroll 2
  for (int kk = 0; kk < kKSteps; ++kk) {
    const int ka = a_k0 + kk * 16;
    const int kb = b_k0 + kk * 16;
    // A fragments, per m16 tile: {rows 0-7, k 0-7}, {rows 8-15, k 0-7},
    // {rows 0-7, k 8-15}, {rows 8-15, k 8-15} (the mma A register order).
    uint32_t a[kMTiles][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
      const int m = a_m0 + mt * 16;
      if constexpr (kATrans) {
        // 8x8 matrix i = lane / 8 is stored as rows k (+8 for i >= 2),
        // columns m (+8 for odd i); .trans hands each thread its (m, k) pair.
        const int row = ka + (lane % 8) + (lane / 16) * 8;
        const int chunk = m / 8 + (lane / 8) % 2;
        ldmatrix_x4_trans(smem_a + LayoutA::offset(row, chunk), a[mt][0], a[mt][1], a[mt][2],
                          a[mt][3]);
      } else {
        const int row = m + (lane % 8) + ((lane / 8) % 2) * 8;
        const int chunk = ka / 8 + lane / 16;
        ldmatrix_x4(smem_a + LayoutA::offset(row, chunk), a[mt][0], a[mt][1], a[mt][2],
                    a[mt][3]);
      }
    }
#pragma unroll
    for (int jp = 0; jp < kNTiles / 2; ++jp) {
      const int n = b_n0 + jp * 16;
      // B fragments of n8 tiles 2jp (b00: k 0-7, b01: k 8-15) and 2jp+1 (b10, b11).
      uint32_t b00, b01, b10, b11;
      if constexpr (kBTrans) {
        const int row = kb + (lane % 8) + ((lane / 8) % 2) * 8;
        const int chunk = n / 8 + lane / 16;
        ldmatrix_x4_trans(smem_b + LayoutB::offset(row, chunk), b00, b01, b10, b11);
      } else {
        const int row = n + (lane % 8) + (lane / 16) * 8;
        const int chunk = kb / 8 + (lane / 8) % 2;
        ldmatrix_x4(smem_b + LayoutB::offset(row, chunk), b00, b01, b10, b11);
      }
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        Numeric<Elem>::mma_m16n8k16(acc[mt][2 * jp], a[mt], b00, b01);
        Numeric<Elem>::mma_m16n8k16(acc[mt][2 * jp + 1], a[mt], b10, b11);
      }
    }
  }
}

}  // namespace flashcore
