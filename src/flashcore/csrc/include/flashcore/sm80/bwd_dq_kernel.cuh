// The deterministic backward's dQ kernel (docs/design/backward.md, section 4):
// dQ computed query-major, without atomics, so that dq, like dk and dv, is
// bitwise identical from run to run.
//
// In deterministic mode the backward runs four kernels on the caller's stream:
//   1. bwd_preprocess_kernel (kZeroDqAccum false: no dq_accum exists),
//   2. bwd_kernel with kComputeDq false: dK and dV exactly as in the default
//      mode (their sums already run in a fixed order), no dQ partials,
//   3. bwd_dq_kernel (this file): dq, written directly in q's dtype,
//   and no postprocess (nothing to convert). 2 and 3 only read what 1 wrote.
//
// One block per (query block m of kBlockM rows, query head h, batch b); warp w
// owns query rows [16w, 16w + 16) of the block. Q and dO of the block, and
// each thread's lambda and D' (bwd_kernel.cuh's units), are read once; then
// the key blocks n of kBlockN keys that query block m sees (mask.cuh KeyRange,
// the forward's range logic) are visited in ascending order, K and V of kv
// head h / q_per_kv double-buffered. Per key block, per warp:
//   dP = dO V^T, S = Q K^T (16 rows x kBlockN keys, fp32), softcap (keeping
//   1 - t^2), mask where the tile needs it, P = exp2(s * scale_log2 - lambda),
//   dS = P (dP - D') [(1 - t^2)], then acc_dq += dS K with dS rounded to the
//   16-bit type in registers (the main kernel rounds its shared dS tile the
//   same way before its dQ GEMM).
// Epilogue: dq = scale * acc_dq in q's dtype, rows < seqlen_q, columns <
// head_dim, dq's strides. A block that sees no key stores exact zeros; rows
// past seqlen_q (zero-filled Q and dO, lambda = +inf) and rows that see no key
// (every score masked, lambda = 0) contribute P = 0, never NaN.
//
// Deterministic by construction: every sum of a dq element runs in one thread
// (its mma accumulator) over the key blocks in a fixed ascending order, with
// a fixed tile shape; nothing depends on block scheduling.
//
// Cost: this kernel redoes the S and dP GEMMs and adds the dQ GEMM that the
// main kernel drops, so the deterministic backward does 5 + 2 of the default's
// 5 GEMM-equivalents, about 1.4x its FLOPs, and saves the fp32 atomics and the
// postprocess. Predicted 1.4-1.6x the default's time; measured on an H200
// (benchmarks/NOTES.md v12): 1.20-1.35x.
#pragma once

#include <cstdint>

#include "flashcore/gmem.cuh"
#include "flashcore/mask.cuh"
#include "flashcore/numeric.cuh"
#include "flashcore/params.h"
#include "flashcore/smem_layout.cuh"
#include "flashcore/softmax.cuh"
#include "flashcore/sm80/bwd_kernel.cuh"  // stage_acc_tile, store_grad_tile
#include "flashcore/sm80/bwd_traits.h"
#include "flashcore/sm80/fwd_kernel.cuh"  // arch_smem_limit
#include "flashcore/sm80/ptx.cuh"
#include "flashcore/sm80/warp_gemm.cuh"

namespace flashcore {

// kHasMask: causal / window (mask.cuh); kSoftcap; kAligned16: q, k, v and dout
// rows are 16-byte aligned (TileLoader). dq_aligned16: dq rows are 16-byte
// aligned (16-byte stores). Traits: BwdDqTraits (bwd_traits.h).
template <typename Elem, typename Traits, bool kHasMask, bool kSoftcap, bool kAligned16>
__global__ void __launch_bounds__(Traits::kNThreads, Traits::kMinBlocksPerSm)
    bwd_dq_kernel(const BwdParams params, bool dq_aligned16) {
  if constexpr (Traits::kSmemBytes <= arch_smem_limit()) {
    constexpr int kBlockM = Traits::kBlockM;
    constexpr int kBlockN = Traits::kBlockN;
    constexpr int kNThreads = Traits::kNThreads;
    constexpr int kNT = Traits::kNTilesS;    // n8 key tiles of S / dP per warp
    constexpr int kNTO = Traits::kNTilesO;   // n8 head-dim tiles of dQ per warp
    using Layout = TileLayout<Traits>;

    extern __shared__ __align__(128) char smem[];
    char* smem_q = smem;
    char* smem_do = smem + Traits::kSmemOffDo;
    char* smem_k = smem + Traits::kSmemOffK;  // [stage]
    char* smem_v = smem + Traits::kSmemOffV;  // [stage]

    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int quad_row = lane / 4;
    const int quad_col = 2 * (lane % 4);
    const int row0 = warp * 16;  // this warp's first query row in the block

    // Flattened grid: the query blocks of one (b, h) are adjacent (they share
    // K and V in L2), highest first: under a causal mask those see the most
    // key blocks, so the longest blocks start first.
    const int num_m = (params.seqlen_q + kBlockM - 1) / kBlockM;
    const int m_block = num_m - 1 - static_cast<int>(blockIdx.x) % num_m;
    const int bh = static_cast<int>(blockIdx.x) / num_m;
    const int b = bh / params.heads_q;
    const int h = bh % params.heads_q;
    const int h_kv = h / params.q_per_kv;
    const int m0 = m_block * kBlockM;
    const int dchunks = params.head_dim / 8;

    const KeyRange<kBlockM, kBlockN, kHasMask> range(params, m0);
    const int num_n = range.n_end > range.n_begin ? range.n_end - range.n_begin : 0;

    const uint16_t* q_base = static_cast<const uint16_t*>(params.q) +
                             b * params.q_batch_stride + h * params.q_head_stride;
    const uint16_t* do_base = static_cast<const uint16_t*>(params.dout) +
                              b * params.do_batch_stride + h * params.do_head_stride;
    const uint16_t* k_base = static_cast<const uint16_t*>(params.k) +
                             b * params.k_batch_stride + h_kv * params.k_head_stride;
    const uint16_t* v_base = static_cast<const uint16_t*>(params.v) +
                             b * params.v_batch_stride + h_kv * params.v_head_stride;

    using QLoader = TileLoader<Traits, kBlockM, kNThreads, kAligned16>;
    using KVLoader = TileLoader<Traits, kBlockN, kNThreads, kAligned16>;
    auto load_kv = [&](int n_block, int stage) {
      KVLoader(k_base, params.k_row_stride, dchunks, tid)
          .load(smem_k + stage * Traits::kSmemKBytes, n_block * kBlockN, params.seqlen_k);
      KVLoader(v_base, params.v_row_stride, dchunks, tid)
          .load(smem_v + stage * Traits::kSmemKBytes, n_block * kBlockN, params.seqlen_k);
    };

    // Prologue: Q, dO and the first key block's K and V in one cp.async group.
    if (num_n > 0) {
      QLoader(q_base, params.q_row_stride, dchunks, tid).load(smem_q, m0, params.seqlen_q);
      QLoader(do_base, params.do_row_stride, dchunks, tid).load(smem_do, m0, params.seqlen_q);
      load_kv(range.n_begin, 0);
    }
    cp_async_commit();

    // lambda and D' of this thread's rows (row0 + quad_row + 8r); rows <
    // seqlen_q_rounded always exist (padded rows: +inf and 0).
    const int64_t row_base =
        static_cast<int64_t>(bh) * params.seqlen_q_rounded + m0 + row0 + quad_row;
    float lam[2], dps[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      lam[r] = params.lse_log2[row_base + r * 8];
      dps[r] = params.dpsum[row_base + r * 8];
    }

    float acc_dq[1][kNTO][4];  // dQ: (16 rows m16) x (head dim n8), fp32, unscaled
#pragma unroll
    for (int j = 0; j < kNTO; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_dq[0][j][e] = 0.f;

    for (int it = 0; it < num_n; ++it) {
      const int n_block = range.n_begin + it;
      const int stage = it & 1;
      // This key block's K and V (and, first, Q and dO) have landed for every
      // thread, and every warp is done with the previous key block: its
      // buffers (the other stage) may be refilled.
      cp_async_wait<0>();
      __syncthreads();
      if (it + 1 < num_n) load_kv(n_block + 1, stage ^ 1);
      cp_async_commit();

      const uint32_t sk = smem_u32(smem_k + stage * Traits::kSmemKBytes);
      const uint32_t sv = smem_u32(smem_v + stage * Traits::kSmemKBytes);

      // dP = dO V^T, then S = Q K^T: (1 m16 query tile) x (kNT n8 key tiles).
      float dp[1][kNT][4];
      float s[1][kNT][4];
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) dp[0][j][e] = s[0][j][e] = 0.f;
      gemm_ss<Elem, Layout, Layout, 1, kNT, Traits::kKStepsQK, false, false>(
          dp, smem_u32(smem_do), row0, 0, sv, 0, 0, lane);
      gemm_ss<Elem, Layout, Layout, 1, kNT, Traits::kKStepsQK, false, false>(
          s, smem_u32(smem_q), row0, 0, sk, 0, 0, lane);

      // dp becomes (dP - D') [(1 - t^2)]: the main kernel's steps, in its order.
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          dp[0][j][e] -= dps[e / 2];
          if constexpr (kSoftcap) {
            const float t = accurate_tanh(s[0][j][e] * params.softcap_scale);
            s[0][j][e] = params.softcap * t;
            dp[0][j][e] *= 1.f - t * t;
          }
        }

      // Mask only the tiles that cross the key tail or a window boundary
      // (block-uniform test).
      if (range.needs_mask(params, n_block)) {
        mask_scores<kNT, kHasMask>(s[0], params, m0 + row0 + quad_row, n_block * kBlockN,
                                   quad_col);
      }

      // P = exp2(s * scale_log2 - lambda); masked scores give 0. dS = P dp.
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p = fast_exp2(fmaf(s[0][j][e], params.scale_log2, -lam[e / 2]));
          dp[0][j][e] *= p;
        }

      // acc_dq += dS K: dS's accumulator layout is the A-fragment layout
      // (gemm_pv packs it to 16-bit), K is key-major like the forward's V.
      gemm_pv<Elem, Traits>(acc_dq, dp, sk, lane);
    }

    // Epilogue: every warp is past its last GEMM (and every cp.async has
    // landed) before the Q buffer takes the 16-bit dq tile.
    cp_async_wait<0>();
    __syncthreads();
    stage_acc_tile<Elem, Layout, 1, kNTO>(acc_dq, params.scale, smem_q, row0, 0, lane);
    __syncthreads();
    uint16_t* dq_base = static_cast<uint16_t*>(params.dq) + b * params.dq_batch_stride +
                        h * params.dq_head_stride;
    store_grad_tile<Traits, kBlockM, kNThreads>(dq_base, params.dq_row_stride, smem_q, m0,
                                                params.seqlen_q, dchunks, tid, dq_aligned16);
  }
}

}  // namespace flashcore
