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

}  // namespace flashcore
