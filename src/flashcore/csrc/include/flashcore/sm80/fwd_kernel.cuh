// Forward attention, FlashAttention-2 style, on mma.sync tensor cores (sm_80+).
//
// One thread block owns kBlockM query rows of one (batch, query head). Each
// warp owns kRowsPerWarp of those rows for the whole kernel: S = Q K^T and the
// online softmax state live in its registers, and P is fed back to the tensor
// cores straight from registers. S and P never touch shared or global memory.
//
// The visible key tiles (mask.cuh: all of them, or those a causal/window mask
// leaves) are walked from the last to the first, so the tiles that need
// per-element masking (the key tail, the diagonal band) come first and the
// rest of the loop runs mask-free. K/V tiles are double-buffered: tile n-1 is
// in flight while tile n is computed, with one barrier per tile.
//
// Key groups (Traits::kKeyGroups > 1): when batch * heads * query tiles is too
// small to fill the GPU, each query tile gets 2 or 4 groups of warps that walk
// interleaved key tiles with their own K/V buffers and barriers, and merge their
// softmax states in shared memory at the end (state.cuh), each group combining
// and writing a slice of O's columns: more warps per SM and a shorter serial
// chain of key tiles per warp.
//
// On sm_90 the kernel lets a dependent kernel launched with PDL be scheduled
// as soon as it starts (griddepcontrol.launch_dependents); that kernel's
// griddepcontrol.wait still holds it until this grid is done.
#pragma once

#include <cstdint>

#include "flashcore/gmem.cuh"
#include "flashcore/mask.cuh"
#include "flashcore/numeric.cuh"
#include "flashcore/params.h"
#include "flashcore/smem_layout.cuh"
#include "flashcore/softmax.cuh"
#include "flashcore/state.cuh"
#include "flashcore/sm80/ptx.cuh"
#include "flashcore/sm80/warp_gemm.cuh"

namespace flashcore {

// Largest dynamic shared memory per block of the architecture being compiled
// (0 on the host pass). A config over it is compiled with an empty body for
// that architecture: the host never launches it there (the heuristic and the
// forced-config check both compare against the device's opt-in limit, which
// equals this number), and the build skips its code.
__host__ __device__ constexpr int arch_smem_limit() {
#if defined(__CUDA_ARCH__)
#if __CUDA_ARCH__ == 860 || __CUDA_ARCH__ == 890 || __CUDA_ARCH__ == 1200
  return 99 * 1024;
#elif __CUDA_ARCH__ == 800 || __CUDA_ARCH__ == 870
  return 163 * 1024;
#else
  return 227 * 1024;
#endif
#else
  return 0;
#endif
}

// Epilogue: normalize, stage the 16-bit tile in the Q buffer (no longer read
// there), then write 16-byte coalesced rows. The thread holds n8 tiles
// col_tile0 .. col_tile0 + kNCols - 1 of O for its warp's rows. kBlockWide
// (key groups): the groups stage disjoint column slices of the same rows, and
// the whole block copies the tile out after a barrier. Otherwise each warp
// stages and copies its own rows, all columns.
template <typename Elem, typename Traits, int kNCols, bool kBlockWide, typename Softmax>
__device__ __forceinline__ void write_output(float (&acc_o)[Traits::kMTiles][kNCols][4],
                                             const Softmax (&softmax)[Traits::kMTiles],
                                             char* smem_q, const FwdParams& params,
                                             uint16_t* o_base, int64_t lse_row0, int m0,
                                             int warp_row0, int col_tile0, bool write_lse,
                                             int lane, int tid) {
  using Layout = TileLayout<Traits>;
  const int quad_row = lane / 4;
  const int quad_col = 2 * (lane % 4);
  // The Q rows about to be overwritten were last read by this warp's ldmatrix
  // (block-wide: the caller's barrier ordered every warp's reads already).
  if constexpr (!kBlockWide) __syncwarp();
#pragma unroll
  for (int mt = 0; mt < Traits::kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float l = quad_sum(softmax[mt].l_i[r]);
      // A row that saw no key (masked out entirely, or past seqlen_q) has
      // l == 0: its output is zeros and its lse -inf, never 0/0.
      const float inv_l = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
      for (int j = 0; j < kNCols; ++j) {
        acc_o[mt][j][2 * r] *= inv_l;
        acc_o[mt][j][2 * r + 1] *= inv_l;
      }
      const int row_in_tile = warp_row0 + mt * 16 + quad_row + r * 8;
      const int qrow = m0 + row_in_tile;
      if (write_lse && params.lse != nullptr && lane % 4 == 0 && qrow < params.seqlen_q) {
        // natural-log LSE of the scaled scores: (m * scale_log2 + log2 l) * ln 2
        const float m = softmax[mt].m_i[r];
        params.lse[lse_row0 + qrow] =
            l > 0.f ? (m * params.scale_log2 + __log2f(l)) * 0.6931471805599453f : -INFINITY;
      }
#pragma unroll
      for (int j = 0; j < kNCols; ++j) {
        const int col = (col_tile0 + j) * 8 + quad_col;
        *reinterpret_cast<uint32_t*>(smem_q + Layout::offset(row_in_tile, col / 8) +
                                     (col % 8) * 2) =
            Numeric<Elem>::pack2(acc_o[mt][j][2 * r], acc_o[mt][j][2 * r + 1]);
      }
    }
  }

  const int dchunks = params.head_dim / 8;
  if constexpr (kBlockWide) {
    __syncthreads();
    store_tile<Traits, Traits::kBlockM, Traits::kNThreads>(o_base, params.o_row_stride, smem_q, 0,
                                                           m0, params.seqlen_q, dchunks, tid);
  } else {
    __syncwarp();
    store_tile<Traits, Traits::kRowsPerWarp, 32>(o_base, params.o_row_stride, smem_q, warp_row0,
                                                 m0, params.seqlen_q, dchunks, lane);
  }
}

// kAligned16: the rows of q, k and v are 16-byte aligned (gmem.cuh).
template <typename Elem, typename Traits, bool kHasMask, bool kSoftcap, bool kAligned16>
__global__ void __launch_bounds__(Traits::kNThreads, Traits::kMinBlocksPerSm)
    fwd_kernel(const FwdParams params) {
  if constexpr (Traits::kSmemBytes <= arch_smem_limit()) {
    constexpr int kBlockM = Traits::kBlockM;
    constexpr int kBlockN = Traits::kBlockN;
    constexpr int kMTiles = Traits::kMTiles;
    constexpr int kNTilesS = Traits::kNTilesS;
    constexpr int kNTilesO = Traits::kNTilesO;
    constexpr int kKStepsQK = Traits::kKStepsQK;
    constexpr int kNThreads = Traits::kNThreads;
    constexpr int kKeyGroups = Traits::kKeyGroups;
    constexpr int kGroupThreads = Traits::kGroupThreads;
    constexpr bool kSplitPrologue = Traits::kSplitPrologue;

    extern __shared__ __align__(128) char smem[];
    char* smem_q = smem;

    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    // Key group of this warp, and the thread's index within its group.
    const int group = warp / Traits::kGroupWarps;
    const int gtid = tid % kGroupThreads;
    // This group's K/V stages: [stage][K tile, V tile].
    char* smem_kv = smem_q + Traits::kSmemQBytes + group * Traits::kSmemGroupKVBytes;
    constexpr int kStageBytes = Traits::kSmemKBytes + Traits::kSmemVBytes;

    // Barrier over the warps that share this group's K/V buffers.
    auto group_sync = [&]() {
      if constexpr (kKeyGroups == 1) {
        __syncthreads();
      } else {
        switch (group) {  // barrier ids must be immediates
          case 0: named_barrier_sync<1, kGroupThreads>(); break;
          case 1: named_barrier_sync<2, kGroupThreads>(); break;
          case 2: named_barrier_sync<3, kGroupThreads>(); break;
          default: named_barrier_sync<4, kGroupThreads>(); break;
        }
      }
    };

    // Flattened grid (no 65535 limit on batch * heads). Query tiles of one head
    // are adjacent, so blocks that share K/V run together and share it in L2;
    // the last (longest, under a causal mask) query tiles are scheduled first.
    const int tile = static_cast<int>(blockIdx.x);
    const int num_m_blocks = (params.seqlen_q + kBlockM - 1) / kBlockM;
    const int bh = tile / num_m_blocks;
    const int m_block = num_m_blocks - 1 - (tile % num_m_blocks);
    const int b = bh / params.heads_q;
    const int h = bh % params.heads_q;
    const int h_kv = h / params.q_per_kv;
    const int m0 = m_block * kBlockM;
    const int dchunks = params.head_dim / 8;

    const uint16_t* q_base = static_cast<const uint16_t*>(params.q) +
                             b * params.q_batch_stride + h * params.q_head_stride;
    const uint16_t* k_base = static_cast<const uint16_t*>(params.k) +
                             b * params.k_batch_stride + h_kv * params.k_head_stride;
    const uint16_t* v_base = static_cast<const uint16_t*>(params.v) +
                             b * params.v_batch_stride + h_kv * params.v_head_stride;

    const KeyRange<kBlockM, kBlockN, kHasMask> range(params, m0);
    // Key group g takes tiles n_end - 1 - g, n_end - 1 - g - kKeyGroups, ...,
    // >= n_begin (with fewer key tiles than groups, the last groups have none).
    const int n_first = range.n_end - 1 - group;

    using KVLoader = TileLoader<Traits, kBlockN, kGroupThreads, kAligned16>;
    const KVLoader k_loader(k_base, params.k_row_stride, dchunks, gtid);
    const KVLoader v_loader(v_base, params.v_row_stride, dchunks, gtid);
    auto load_k = [&](int n_block, int stage) {
      k_loader.load(smem_kv + stage * kStageBytes, n_block * kBlockN, params.seqlen_k);
    };
    auto load_v = [&](int n_block, int stage) {
      v_loader.load(smem_kv + stage * kStageBytes + Traits::kSmemKBytes, n_block * kBlockN,
                    params.seqlen_k);
    };
    // Tiles below the last one hold kBlockN real keys each.
    auto load_kv_full = [&](int n_block, int stage) {
      k_loader.load_full(smem_kv + stage * kStageBytes, n_block * kBlockN);
      v_loader.load_full(smem_kv + stage * kStageBytes + Traits::kSmemKBytes, n_block * kBlockN);
    };

    // A dependent kernel launched with PDL may now be scheduled; it still waits
    // for this grid to finish before touching memory.
    allow_next_grid_launch();
    // Everything above is index math; the first global read comes next.
    wait_for_previous_grid();

    // Prologue: Q and this group's first K/V tile (split into cp.async groups
    // per Traits::kSplitPrologue).
    TileLoader<Traits, kBlockM, kNThreads, kAligned16>(q_base, params.q_row_stride, dchunks, tid)
        .load(smem_q, m0, params.seqlen_q);
    if constexpr (kSplitPrologue) cp_async_commit();  // Q alone: published block-wide below
    if (n_first >= range.n_begin) load_k(n_first, 0);
    if constexpr (kSplitPrologue) cp_async_commit();
    if (n_first >= range.n_begin) load_v(n_first, 0);
    cp_async_commit();
    if constexpr (kKeyGroups > 1) {
      // Every warp reads all of Q, but the groups' barriers cover only their
      // own warps: wait for the Q group (K and V may still fly) and publish it.
      cp_async_wait<2>();
      __syncthreads();
    }

    if constexpr (kKeyGroups > 1) {
      // Groups with fewer key tiles than group 0 first pass their own barrier as
      // often as the difference in barriers (one per tile, plus the first tile's
      // V wait), so every warp reaches the merge exchange with the same barrier
      // history. Barrier 0 alone orders the exchange; without this,
      // compute-sanitizer's racecheck reports its group-to-group reads as
      // hazards. Before the key loop: after it, it slowed the causal loop's code.
      auto syncs = [&](int g) {
        const int n = range.n_end - 1 - g - range.n_begin;
        return n >= 0 ? n / kKeyGroups + 2 : 0;  // tiles + 1
      };
      for (int i = syncs(group); i < syncs(0); ++i) group_sync();
    }

    // Row r of this warp's tile is query row m0 + warp_row0 + r.
    const int warp_row0 = (warp % Traits::kGroupWarps) * Traits::kRowsPerWarp;
    // In mma accumulator layout a thread holds rows lane/4 and lane/4 + 8 of
    // each m16 tile, and columns 2*(lane%4), +1 of each n8 tile.
    const int quad_row = lane / 4;
    const int quad_col = 2 * (lane % 4);

    float acc_o[kMTiles][kNTilesO][4];  // O accumulator: (m16 tile) x (n8 tile over D) x 4
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int j = 0; j < kNTilesO; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_o[mt][j][e] = 0.f;

    OnlineSoftmaxRows<kNTilesS, kNTilesO> softmax[kMTiles];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) softmax[mt].init();

    constexpr bool kTwoPassSoftmax = Traits::kTwoPassSoftmax && !kHasMask;

    uint32_t q_frag[kMTiles][kKStepsQK][4];  // A fragments of this warp's Q rows

    for (int n_block = n_first, iter = 0; n_block >= range.n_begin;
         n_block -= kKeyGroups, ++iter) {
      const int stage = iter & 1;
      // K of tile n_block has landed (with a split prologue, V may still be in
      // flight on the first pass). The barrier also means every warp of the
      // group finished the previous tile, so its stage may be refilled.
      if (kSplitPrologue && iter == 0) {
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      group_sync();
      const int n_next = n_block - kKeyGroups;
      // n_next < n_block <= the last key tile, so tile n_next is full.
      if (n_next >= range.n_begin) load_kv_full(n_next, stage ^ 1);
      cp_async_commit();

      const uint32_t smem_k = smem_u32(smem_kv + stage * kStageBytes);
      const uint32_t smem_v = smem_k + Traits::kSmemKBytes;

      if (iter == 0 || Traits::reload_q(kHasMask)) {
        load_q_frags<Traits>(q_frag, smem_u32(smem_q), warp_row0, lane);
      }

      // S = Q K^T for this warp's rows: (kMTiles m16) x (kNTilesS n8), fp32.
      float s[kMTiles][kNTilesS][4];
      gemm_qk<Elem, Traits>(s, q_frag, smem_k, lane);

      if constexpr (kSoftcap) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt)
          softcap_scores(s[mt], params.softcap, params.softcap_scale);
      }

      // Mask only the tiles that cross the key tail or a window boundary.
      if (range.needs_mask(params, n_block)) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          mask_scores<kNTilesS, kHasMask>(s[mt], params, m0 + warp_row0 + mt * 16 + quad_row,
                                          n_block * kBlockN, quad_col);
        }
      }

#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        softmax[mt].template update<kTwoPassSoftmax>(s[mt], acc_o[mt], params.scale_log2);
      }

      if (kSplitPrologue && iter == 0) {
        // First tile's V (the prologue's last group; the prefetch may pend).
        cp_async_wait<1>();
        group_sync();
      }

      // O += P V.
      gemm_pv<Elem, Traits>(acc_o, s, smem_v, lane);
    }

    uint16_t* o_base = static_cast<uint16_t*>(params.o) + b * params.o_batch_stride +
                       h * params.o_head_stride;
    const int64_t lse_row0 = static_cast<int64_t>(bh) * params.seqlen_q;

    if constexpr (kKeyGroups > 1) {
      // Block-wide barrier: every warp is past its key loop (and its cp.async
      // groups) before the K/V buffers are reused for the exchange.
      cp_async_wait<0>();
      __syncthreads();
      char* group_bufs = smem_q + Traits::kSmemQBytes;
      // Every group leaves its softmax state and O fragments in its own (now
      // idle) K/V buffers; then each group merges one slice of O's columns and
      // the block writes the tile.
      merge_store<Traits>(
          reinterpret_cast<float*>(group_bufs + group * Traits::kSmemGroupKVBytes), gtid, acc_o,
          softmax);
      __syncthreads();
      constexpr int kPer = kNTilesO / kKeyGroups;
      float acc_slice[kMTiles][kPer][4];
      merge_split<Traits>(reinterpret_cast<const float*>(group_bufs), group, gtid, acc_slice,
                          softmax, params.scale_log2);
      write_output<Elem, Traits, kPer, /*kBlockWide=*/true>(
          acc_slice, softmax, smem_q, params, o_base, lse_row0, m0, warp_row0, group * kPer,
          /*write_lse=*/group == 0, lane, tid);
    } else {
      if (n_first < range.n_begin) {
        // The block's rows see no key, so it skipped the loop and its barriers:
        // the Q copies (every thread's) may still be in flight into the buffer
        // the output is staged in. Block-uniform, so the barrier is safe.
        cp_async_wait<0>();
        __syncthreads();
      }
      write_output<Elem, Traits, kNTilesO, /*kBlockWide=*/false>(
          acc_o, softmax, smem_q, params, o_base, lse_row0, m0, warp_row0, 0,
          /*write_lse=*/true, lane, tid);
    }
  }
}

}  // namespace flashcore
