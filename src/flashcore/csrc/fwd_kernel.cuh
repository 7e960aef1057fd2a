// Forward attention, FlashAttention-2 style, on mma.sync tensor cores.
//
// One thread block owns kBlockM query rows of one (batch, head). Each warp owns
// kRowsPerWarp of those rows for the whole kernel: its Q fragments stay in
// registers, S = Q K^T and the online softmax state live in its registers, and
// P is fed back to the tensor cores straight from registers. S and P never
// touch shared or global memory.
//
// The key range is walked from the last tile to the first, so the only tiles
// that need masking (the Sk tail and the causal diagonal) come first and the
// rest of the loop runs mask-free. K/V tiles are double-buffered: tile n-1 is in
// flight while tile n is computed, with one barrier per tile.
//
// Key groups (Traits::kKeyGroups > 1): when batch * heads * query tiles is too
// small to fill the GPU, each query tile gets 2 or 4 groups of warps that walk
// interleaved key tiles with their own K/V buffers and barriers, and merge their
// softmax states in shared memory at the end, each group combining and writing
// a slice of O's columns: more warps per SM and a shorter serial chain of key
// tiles per warp, in a fixed merge order (bitwise reproducible).
//
// On sm_90 the kernel lets a dependent kernel launched with PDL be scheduled
// as soon as it starts (griddepcontrol.launch_dependents); that kernel's
// griddepcontrol.wait still holds it until this grid is done.
#pragma once

#include <cuda_fp16.h>
#include <cstdint>

#include "kernel_traits.h"
#include "params.h"
#include "primitives.cuh"
#include "softmax.cuh"

namespace flashcore {

// Copies rows [row0, row0 + kRows) of a (seqlen, 64) fp16 matrix into a swizzled
// shared tile; rows at or past `nrows` become zeros (V's zero tail keeps
// P * V free of garbage; K's tail is masked to -inf anyway).
template <int kRows, int kNThreads>
__device__ __forceinline__ void load_tile(char* smem, const __half* base, int64_t row_stride,
                                          int row0, int nrows, bool aligned16, int tid) {
  constexpr int kRowStep = kNThreads / 8;  // rows covered by one pass of the block
  static_assert(kNThreads % 8 == 0 && kRows % kRowStep == 0,
                "tile rows must split evenly across passes of the block");
  // Thread tid moves 16-byte chunk tid % 8 of rows tid / 8 + i * kRowStep: 8
  // consecutive threads fetch one 128-byte row (coalesced). kRowStep is a
  // multiple of 8, so every pass sees the same swizzle and only adds an offset.
  const int r = tid / 8;
  const int c = tid % 8;
  const uint32_t dst = smem_u32(smem) + swizzle_offset(r, c);
  const __half* src = base + (row0 + r) * row_stride + c * 8;
  const int64_t step = kRowStep * row_stride;
  const int rows_left = nrows - row0 - r;
  if (aligned16) {
#pragma unroll
    for (int i = 0; i < kRows / kRowStep; ++i, src += step) {
      const bool valid = i * kRowStep < rows_left;
      cp_async_16(dst + i * kRowStep * 128, valid ? src : base, valid ? 16 : 0);
    }
  } else {
    // Rows that are not 16-byte aligned (odd strides or storage offsets):
    // element-wise loads, same zero fill, plain shared stores.
    char* dst_generic = smem + swizzle_offset(r, c);
#pragma unroll
    for (int i = 0; i < kRows / kRowStep; ++i, src += step) {
      const bool valid = i * kRowStep < rows_left;
      __align__(16) __half tmp[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) tmp[e] = valid ? src[e] : __float2half(0.f);
      *reinterpret_cast<uint4*>(dst_generic + i * kRowStep * 128) =
          *reinterpret_cast<const uint4*>(tmp);
    }
  }
}

// Epilogue: normalize, stage the fp16 tile in the Q buffer (no longer read
// there), then write 16-byte coalesced rows. The thread holds n8 tiles
// col_tile0 .. col_tile0 + kNCols - 1 of O for its warp's rows. kBlockWide
// (key groups): the groups stage disjoint column slices of the same rows, and
// the whole block copies the tile out after a barrier. Otherwise each warp
// stages and copies its own rows, all columns.
template <typename Traits, int kNCols, bool kBlockWide, typename Softmax>
__device__ __forceinline__ void write_output(float (&acc_o)[Traits::kMTiles][kNCols][4],
                                             const Softmax (&softmax)[Traits::kMTiles],
                                             char* smem_q, const FwdParams& params,
                                             __half* o_base, int64_t lse_row0, int m0,
                                             int warp_row0, int col_tile0, bool write_lse,
                                             int lane, int tid) {
  constexpr int kMTiles = Traits::kMTiles;
  const int quad_row = lane / 4;
  const int quad_col = 2 * (lane % 4);
  // The Q rows about to be overwritten were last read by this warp's ldmatrix
  // (block-wide: the caller's barrier ordered every warp's reads already).
  if constexpr (!kBlockWide) __syncwarp();
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float l = quad_sum(softmax[mt].l_i[r]);
      // Every real query row sees at least key 0, so l > 0 there; rows past
      // seqlen_q are never stored, the guard only keeps them finite.
      const float inv_l = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
      for (int j = 0; j < kNCols; ++j) {
        acc_o[mt][j][2 * r] *= inv_l;
        acc_o[mt][j][2 * r + 1] *= inv_l;
      }
      const int row_in_tile = warp_row0 + mt * 16 + quad_row + r * 8;
      const int qrow = m0 + row_in_tile;
      if (write_lse && params.lse != nullptr && lane % 4 == 0 && qrow < params.seqlen_q) {
        // natural-log LSE of scale * s: (m * scale_log2 + log2 l) * ln 2
        const float m = softmax[mt].m_i[r];
        params.lse[lse_row0 + qrow] =
            l > 0.f ? (m * params.scale_log2 + __log2f(l)) * 0.6931471805599453f : -INFINITY;
      }
#pragma unroll
      for (int j = 0; j < kNCols; ++j) {
        const int col = (col_tile0 + j) * 8 + quad_col;
        *reinterpret_cast<uint32_t*>(smem_q + swizzle_offset(row_in_tile, col / 8) +
                                     (col % 8) * 2) =
            pack_half2(acc_o[mt][j][2 * r], acc_o[mt][j][2 * r + 1]);
      }
    }
  }

  // 16-byte chunks copied out: the whole tile by the block, or this warp's rows.
  constexpr int kChunks = (kBlockWide ? Traits::kBlockM : Traits::kRowsPerWarp) * 8;
  constexpr int kCopiers = kBlockWide ? Traits::kNThreads : 32;
  static_assert(kChunks % kCopiers == 0, "output chunks must split evenly");
  const int copier = kBlockWide ? tid : lane;
  const int row_base = kBlockWide ? 0 : warp_row0;
  if constexpr (kBlockWide) {
    __syncthreads();
  } else {
    __syncwarp();
  }
#pragma unroll
  for (int i = 0; i < kChunks / kCopiers; ++i) {
    const int idx = copier + i * kCopiers;
    const int r = row_base + idx / 8;
    const int c = idx % 8;
    const int qrow = m0 + r;
    if (qrow < params.seqlen_q) {
      *reinterpret_cast<uint4*>(o_base + qrow * params.o_row_stride + c * 8) =
          *reinterpret_cast<const uint4*>(smem_q + swizzle_offset(r, c));
    }
  }
}

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

template <typename Traits, bool kIsCausal>
__global__ void __launch_bounds__(Traits::kNThreads, Traits::kMinBlocksPerSm)
    fwd_kernel(const FwdParams params) {
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kMTiles = Traits::kMTiles;
  constexpr int kNTilesS = Traits::kNTilesS;
  constexpr int kNTilesO = Traits::kNTilesO;
  constexpr int kKStepsQK = Traits::kKStepsQK;
  constexpr int kKStepsPV = Traits::kKStepsPV;
  constexpr int kNThreads = Traits::kNThreads;
  constexpr int kKeyGroups = Traits::kKeyGroups;
  constexpr int kGroupThreads = Traits::kGroupThreads;

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
  // the last (longest, under causal) query tiles are scheduled first.
  const int tile = static_cast<int>(blockIdx.x);
  const int num_m_blocks = (params.seqlen_q + kBlockM - 1) / kBlockM;
  const int bh = tile / num_m_blocks;
  const int m_block = num_m_blocks - 1 - (tile % num_m_blocks);
  const int b = bh / params.heads;
  const int h = bh % params.heads;
  const int m0 = m_block * kBlockM;

  const __half* q_base = static_cast<const __half*>(params.q) + b * params.q_batch_stride +
                         h * params.q_head_stride;
  const __half* k_base = static_cast<const __half*>(params.k) + b * params.k_batch_stride +
                         h * params.k_head_stride;
  const __half* v_base = static_cast<const __half*>(params.v) + b * params.v_batch_stride +
                         h * params.v_head_stride;

  const int num_n_blocks_total = (params.seqlen_k + kBlockN - 1) / kBlockN;
  // Causal: query row i sees keys j <= i, so this block needs keys < m0 + kBlockM;
  // key tiles entirely above the diagonal are never loaded or computed.
  const int num_n_blocks =
      kIsCausal ? min(num_n_blocks_total, (m0 + kBlockM + kBlockN - 1) / kBlockN)
                : num_n_blocks_total;
  // Key group g takes tiles last - g, last - g - kKeyGroups, ..., >= 0 (with
  // fewer key tiles than groups, the last groups have none).
  const int n_first = num_n_blocks - 1 - group;

  auto load_k = [&](int n_block, int stage) {
    load_tile<kBlockN, kGroupThreads>(smem_kv + stage * kStageBytes, k_base, params.k_row_stride,
                                      n_block * kBlockN, params.seqlen_k, params.aligned16, gtid);
  };
  auto load_v = [&](int n_block, int stage) {
    load_tile<kBlockN, kGroupThreads>(smem_kv + stage * kStageBytes + Traits::kSmemKBytes, v_base,
                                      params.v_row_stride, n_block * kBlockN, params.seqlen_k,
                                      params.aligned16, gtid);
  };

  // A dependent kernel launched with PDL may now be scheduled; it still waits
  // for this grid to finish before touching memory.
  allow_next_grid_launch();
  // Everything above is index math; the first global read comes next.
  wait_for_previous_grid();

  // Prologue. One key group: Q and the first K/V tile in one cp.async group.
  // Two key groups: Q, then each group's first K tile, then its first V tile,
  // so Q K^T can start while V is still landing (per-warp latency is what
  // bounds the tiny grids this config runs). Splitting K from V also in the
  // single-group configs measured 2-5% slower at large causal shapes and 8% at
  // (2,8,1024) on H100 (benchmarks/NOTES.md, v3).
  constexpr bool kSplitPrologue = kKeyGroups > 1;
  load_tile<kBlockM, kNThreads>(smem_q, q_base + static_cast<int64_t>(m0) * params.q_row_stride,
                                params.q_row_stride, 0, params.seqlen_q - m0, params.aligned16,
                                tid);
  if constexpr (kSplitPrologue) cp_async_commit();  // Q alone: published block-wide below
  if (n_first >= 0) load_k(n_first, 0);
  if constexpr (kSplitPrologue) cp_async_commit();
  if (n_first >= 0) load_v(n_first, 0);
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
    // compute-sanitizer's racecheck reports its group-to-group reads as hazards.
    // Done before the key loop: after it, it slowed the causal loop's code.
    auto syncs = [&](int g) {
      const int n = num_n_blocks - 1 - g;
      return n >= 0 ? n / kKeyGroups + 2 : 0;  // tiles + 1
    };
    for (int i = syncs(group); i < syncs(0); ++i) group_sync();
  }

  // Row r of this warp's tile is query row m0 + warp_row0 + r.
  const int warp_row0 = (warp % Traits::kGroupWarps) * Traits::kRowsPerWarp;
  // In mma accumulator layout a thread holds rows lane/4 and lane/4 + 8 of each
  // m16 tile, and columns 2*(lane%4), +1 of each n8 tile.
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

  // Softmax instruction order (softmax.cuh), by measurement on H100: the
  // two-pass order made the 64-row four-group config 5% faster at (1,8,1024)
  // non-causal and 8% slower causal, and was neutral to +-2% in the other
  // configs (benchmarks/NOTES.md, v6); so only that config's non-causal kernel
  // uses it.
  constexpr bool kTwoPassSoftmax = !kIsCausal && kKeyGroups == 4 && kMTiles == 2;

  uint32_t q_frag[kMTiles][kKStepsQK][4];  // A fragments of this warp's Q rows

  for (int n_block = n_first, iter = 0; n_block >= 0; n_block -= kKeyGroups, ++iter) {
    const int stage = iter & 1;
    // K of tile n_block has landed (with a split prologue, V may still be in
    // flight on the first pass). The barrier also means every warp of the group
    // finished the previous tile, so its stage may be refilled.
    if (kSplitPrologue && iter == 0) {
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    group_sync();
    const int n_next = n_block - kKeyGroups;
    if (n_next >= 0) {
      load_k(n_next, stage ^ 1);
      load_v(n_next, stage ^ 1);
    }
    cp_async_commit();

    const char* smem_k = smem_kv + stage * kStageBytes;
    const char* smem_v = smem_k + Traits::kSmemKBytes;

    if (iter == 0 || Traits::kReloadQ) {
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int kd = 0; kd < kKStepsQK; ++kd) {
          const int row = warp_row0 + mt * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
          const int chunk = 2 * kd + lane / 16;
          ldmatrix_x4(smem_u32(smem_q) + swizzle_offset(row, chunk), q_frag[mt][kd][0],
                      q_frag[mt][kd][1], q_frag[mt][kd][2], q_frag[mt][kd][3]);
        }
      }
    }

    // S = Q K^T for this warp's rows: (kMTiles m16) x (kNTilesS n8), fp32.
    float s[kMTiles][kNTilesS][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int j = 0; j < kNTilesS; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][j][e] = 0.f;

#pragma unroll
    for (int kd = 0; kd < kKStepsQK; ++kd) {
#pragma unroll
      for (int jp = 0; jp < kNTilesS / 2; ++jp) {
        // One ldmatrix.x4 = B fragments of key n8 tiles 2jp and 2jp+1 at this k16 step.
        uint32_t b00, b01, b10, b11;
        const int row = jp * 16 + (lane % 8) + (lane / 16) * 8;
        const int chunk = 2 * kd + (lane / 8) % 2;
        ldmatrix_x4(smem_u32(smem_k) + swizzle_offset(row, chunk), b00, b01, b10, b11);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          mma_m16n8k16(s[mt][2 * jp], q_frag[mt][kd], b00, b01);
          mma_m16n8k16(s[mt][2 * jp + 1], q_frag[mt][kd], b10, b11);
        }
      }
    }

    // Mask only where a tile crosses the Sk tail or the causal diagonal.
    const int n0 = n_block * kBlockN;
    const bool tail_tile = n0 + kBlockN > params.seqlen_k;
    const bool diag_tile = kIsCausal && n0 + kBlockN - 1 > m0;
    if (tail_tile || diag_tile) {
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          // Columns of this tile at or past `limit` are masked for this row:
          // the Sk tail, and under causal every key past the row's own index.
          const int qrow = m0 + warp_row0 + mt * 16 + quad_row + r * 8;
          const int limit = (kIsCausal ? min(params.seqlen_k, qrow + 1) : params.seqlen_k) - n0;
#pragma unroll
          for (int j = 0; j < kNTilesS; ++j) {
            const int col = j * 8 + quad_col;
            if (col >= limit) s[mt][j][2 * r] = -INFINITY;
            if (col + 1 >= limit) s[mt][j][2 * r + 1] = -INFINITY;
          }
        }
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

    // O += P V. The accumulator layout of S n8 tiles (2kk, 2kk+1) is exactly the
    // A-fragment layout of a 16x16 P tile, so P goes to fp16 in registers.
#pragma unroll
    for (int kk = 0; kk < kKStepsPV; ++kk) {
      uint32_t p_frag[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        p_frag[mt][0] = pack_half2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        p_frag[mt][1] = pack_half2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        p_frag[mt][2] = pack_half2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        p_frag[mt][3] = pack_half2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int jp = 0; jp < kNTilesO / 2; ++jp) {
        // B fragments of head-dim n8 tiles 2jp, 2jp+1 over keys 16kk..16kk+15.
        uint32_t b00, b01, b10, b11;
        const int row = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
        const int chunk = 2 * jp + lane / 16;
        ldmatrix_x4_trans(smem_u32(smem_v) + swizzle_offset(row, chunk), b00, b01, b10, b11);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          mma_m16n8k16(acc_o[mt][2 * jp], p_frag[mt], b00, b01);
          mma_m16n8k16(acc_o[mt][2 * jp + 1], p_frag[mt], b10, b11);
        }
      }
    }
  }

  __half* o_base = static_cast<__half*>(params.o) + b * params.o_batch_stride +
                   h * params.o_head_stride;
  const int64_t lse_row0 = static_cast<int64_t>(bh) * params.seqlen_q;

  if constexpr (kKeyGroups > 1) {
    // Block-wide barrier: every warp is past its key loop (and its cp.async
    // groups) before the K/V buffers are reused for the exchange.
    cp_async_wait<0>();
    __syncthreads();
    char* group_bufs = smem_q + Traits::kSmemQBytes;
    // Every group leaves its softmax state and O fragments in its own (now
    // idle) K/V buffers, in register order, so a thread reads exactly the
    // values of its own rows and columns from each group. Then each group
    // merges one slice of O's columns and the block writes the tile.
    merge_store<Traits>(reinterpret_cast<float*>(group_bufs + group * Traits::kSmemGroupKVBytes),
                        gtid, acc_o, softmax);
    __syncthreads();
    constexpr int kPer = kNTilesO / kKeyGroups;
    float acc_slice[kMTiles][kPer][4];
    merge_split<Traits>(reinterpret_cast<const float*>(group_bufs), group, gtid, acc_slice,
                        softmax, params.scale_log2);
    write_output<Traits, kPer, /*kBlockWide=*/true>(acc_slice, softmax, smem_q, params, o_base,
                                                    lse_row0, m0, warp_row0, group * kPer,
                                                    /*write_lse=*/group == 0, lane, tid);
  } else {
    write_output<Traits, kNTilesO, /*kBlockWide=*/false>(acc_o, softmax, smem_q, params, o_base,
                                                         lse_row0, m0, warp_row0, 0,
                                                         /*write_lse=*/true, lane, tid);
  }
}

}  // namespace flashcore
