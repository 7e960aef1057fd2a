// Backward attention, FlashAttention-2 style, on mma.sync tensor cores (sm_80+):
// three kernels run in this order on the caller's stream (docs/design/backward.md),
// with a fourth after the main kernel when a GQA group is split (2b).
//
// What they compute, per (batch b, query head h, query row i, key j), in the
// units of params.h (s: the kernel's score, x = q_i . k_j):
//   s_ij  = x (softcap off), or c * t_ij with t_ij = tanh(x * softcap_scale)
//           (c = softcap, softcap_scale = scale / c): the forward's s, through
//           the same accurate_tanh and the same mask (s = -inf where query i
//           does not see key j).
//   P_ij  = exp2(s_ij * scale_log2 - lambda_i), lambda_i = lse_i * log2(e):
//           the forward's softmax probabilities (lse_i = ln sum_j exp(z_ij),
//           z = s * scale_log2 * ln 2 = scale * x, or c * t with softcap).
//   dP_ij = dO_i . V_j;  D'_i = dO_i . O_i - dlse_i.
//   dZ_ij = P_ij (dP_ij - D'_i): the gradient of the loss in the logit z,
//           lse's own gradient included (d lse_i / d z_ij = P_ij).
//   dz/dx = scale (softcap off), or c (1 - t^2) softcap_scale = scale (1 - t^2).
//   dS_ij = dZ_ij [* (1 - t_ij^2)], so that dX = scale * dS, and
//   dV_j = sum_i P_ij dO_i,  dK_j = scale sum_i dS_ij q_i,  dQ_i = scale sum_j dS_ij k_j,
//   with dK and dV summed over the query heads that share kv head h / q_per_kv.
// scale is applied once: to dK in registers before its store, and to dQ in the
// postprocess. 1 - t^2 is taken from t before the mask (at a masked entry it is
// never used, but 1 - (-inf / c)^2 would be NaN).
//
// 1. bwd_preprocess_kernel, one block per 128 rows of one (b, h), 256 threads:
//      dpsum[b, h, i]    = D'_i (fp32 from the 16-bit O and dO), 0 for i >= seqlen_q
//      lse_log2[b, h, i] = lse_i * log2(e), 0 where lse_i = -inf (a row that
//                          sees no key), +inf for i >= seqlen_q (P = 0 there)
//      dq_accum          = 0, every element of the rows of this block.
//    Rows i < seqlen_q_rounded (a multiple of 128).
// 2. bwd_kernel, one block per (key block n of kBlockN keys, group part g,
//    kv head, batch), g < gqa_split (params.h; 1 unless the group is split):
//    K and V tiles are loaded once; dK and dV accumulate in fp32 registers
//    over the part's query heads (q_per_kv / gqa_split consecutive heads of
//    the kv head's group, all of them when gqa_split is 1) and, per head, the
//    query blocks m of kBlockM rows that see key block n (mask.cuh QueryRange,
//    ascending m). Per m-step: dP = dO V^T; S = Q K^T, softcap, mask, P; dS;
//    P and dS go to shared memory as 16-bit tiles; dV += P^T dO, dK += dS^T Q,
//    and the tile's dQ partial dS K is added into dq_accum with fp32 atomics.
//    Epilogue: dK *= scale; with gqa_split 1, dK and dV in the input dtype,
//    rows < seqlen_k and columns < head_dim, with dk/dv strides; with
//    gqa_split > 1, the same rows and columns as fp32 straight from the
//    registers into part g's slice of dk_partial / dv_partial. A key block no
//    query sees stores zeros. Shared memory: K, V, Q (1 or 2 buffers), dO (1
//    or 2), P, dS; 2 or 3 block barriers per m-step (bwd_traits.h). Plain
//    launches (no PDL).
// 2b. bwd_dkv_reduce_kernel (gqa_split > 1 only), one thread per 8 columns of
//    one row of dk and dv: the sum of the gqa_split partials in ascending g,
//    in the input dtype, with dk/dv strides. The order is fixed, so dk and dv
//    are bitwise reproducible, as with one part.
// 3. bwd_postprocess_kernel, one block per (query block of kBlockM rows, h, b):
//    dq = scale * dq_accum in q's dtype, rows < seqlen_q, columns < head_dim,
//    with dq strides.
// Deterministic mode (BwdParams::deterministic; host/bwd_launch.cuh): the
// preprocess skips the zeroing (kZeroDqAccum false: no dq_accum exists), the
// main kernel skips the dQ partials (kComputeDq false), and
// bwd_dq_kernel.cuh's query-major kernel writes dq instead of the postprocess.
//
// dq_accum layout (fp32, batch x heads_q x seqlen_q_rounded x kHeadDim): the
// slice of query block m of (b, h) is the kBlockM * kHeadDim floats at
// ((b * heads_q + h) * seqlen_q_rounded + m * kBlockM) * kHeadDim, not row-major
// inside: it is in the dQ accumulator's register order (DqAccumLayout), so one
// warp-wide reduction instruction covers 128 contiguous bytes. Only the
// preprocess (zeroes all of it) and the postprocess (reads it back through the
// same mapping) depend on that; the caller only allocates it.
//
// Exact zeros, never NaN: rows past seqlen_q (zero-filled Q and dO, lambda =
// +inf, so P = 0 and dS = 0); rows that see no key (every pair of theirs in a
// visited tile is masked: s = -inf, lambda = 0, P = 0); keys past seqlen_k
// (zero-filled, masked; never stored); columns past head_dim (zero-filled).
#pragma once

#include <cstdint>

#include "flashcore/gmem.cuh"
#include "flashcore/mask.cuh"
#include "flashcore/numeric.cuh"
#include "flashcore/params.h"
#include "flashcore/smem_layout.cuh"
#include "flashcore/softmax.cuh"
#include "flashcore/sm80/fwd_kernel.cuh"  // arch_smem_limit
#include "flashcore/sm80/ptx.cuh"
#include "flashcore/sm80/warp_gemm.cuh"

namespace flashcore {

// Rows per preprocess block; seqlen_q_rounded is a multiple of it.
constexpr int kBwdPreRows = 128;
constexpr int kBwdPreThreads = 256;

// Where value v of thread tid's dQ accumulator (v = (mt * kDqNTiles + j) * 4
// + e, fragment e of n8 tile j of m16 tile mt) sits in its query block's
// dq_accum slice: in groups of kVec consecutive values, group g of thread tid
// at (g * kNThreads + tid) * kVec. A warp's reduction of one group then covers
// 32 * kVec * 4 contiguous bytes. sm_90 adds float4 groups with one vector
// atomic (atomicAdd(float4*), compute capability 9.x); older GPUs add scalars.
// The main kernel and the postprocess are compiled for the same architecture
// in one translation unit, so they agree on kVec.
template <typename Traits>
struct DqAccumLayout {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  static constexpr int kVec = 4;
#else
  static constexpr int kVec = 1;
#endif
  __device__ __forceinline__ static int index(int v, int tid) {
    return ((v / kVec) * Traits::kNThreads + tid) * kVec + v % kVec;
  }
};

// Two 16-bit elements (lo in the low half) as floats.
template <typename Elem>
__device__ __forceinline__ float2 unpack2_float(uint32_t x);
template <>
__device__ __forceinline__ float2 unpack2_float<__half>(uint32_t x) {
  return __half22float2(*reinterpret_cast<const __half2*>(&x));
}
template <>
__device__ __forceinline__ float2 unpack2_float<__nv_bfloat16>(uint32_t x) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&x));
}

// store_tile (gmem.cuh) for outputs whose rows may not be 16-byte aligned
// (odd strides or storage offsets of dq/dk/dv): the same chunks, written as
// eight 2-byte stores each.
template <typename Traits, int kRows, int kThreads>
__device__ __forceinline__ void store_tile_unaligned(uint16_t* out, int64_t row_stride,
                                                     const char* smem, int row0, int nrows,
                                                     int dchunks, int tid) {
  using Layout = TileLayout<Traits>;
  constexpr int kC = Traits::kChunksPerRow;
  static_assert((kRows * kC) % kThreads == 0, "output chunks must split evenly");
#pragma unroll
  for (int i = 0; i < kRows * kC / kThreads; ++i) {
    const int idx = tid + i * kThreads;
    const int r = idx / kC;
    const int c = idx % kC;
    const int row = row0 + r;
    if (row < nrows && c < dchunks) {
      const uint16_t* src = reinterpret_cast<const uint16_t*>(smem + Layout::offset(r, c));
      uint16_t* dst = out + row * row_stride + c * 8;
#pragma unroll
      for (int e = 0; e < 8; ++e) dst[e] = src[e];
    }
  }
}

// A staged kRows-row tile (rows relative to row0 in the tensor) to global memory.
template <typename Traits, int kRows, int kThreads>
__device__ __forceinline__ void store_grad_tile(uint16_t* out, int64_t row_stride,
                                                const char* smem, int row0, int nrows,
                                                int dchunks, int tid, bool aligned16) {
  if (aligned16) {
    store_tile<Traits, kRows, kThreads>(out, row_stride, smem, 0, row0, nrows, dchunks, tid);
  } else {
    store_tile_unaligned<Traits, kRows, kThreads>(out, row_stride, smem, row0, nrows, dchunks,
                                                  tid);
  }
}

// Stages a warp's fp32 accumulator tile (kMT m16 x kNT n8, mma accumulator
// layout, first element at tile row row0 / column col0) as 16-bit values, times
// `mul`, in a shared tile of layout Layout.
template <typename Elem, typename Layout, int kMT, int kNT>
__device__ __forceinline__ void stage_acc_tile(const float (&acc)[kMT][kNT][4], float mul,
                                               char* smem, int row0, int col0, int lane) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + mt * 16 + lane / 4 + r * 8;
#pragma unroll
      for (int j = 0; j < kNT; ++j) {
        const int col = col0 + j * 8 + 2 * (lane % 4);
        *reinterpret_cast<uint32_t*>(smem + Layout::offset(row, col / 8) + (col % 8) * 2) =
            Numeric<Elem>::pack2(acc[mt][j][2 * r] * mul, acc[mt][j][2 * r + 1] * mul);
      }
    }
}

// Stores a warp's fp32 accumulator tile (kMT m16 x kNT n8, mma accumulator
// layout, first element at row row0 / column col0 of a row-major fp32 matrix
// of `width` columns), times `mul`: the rows < nrows and columns < width.
// Each quad writes 32 contiguous bytes of a row (whole sectors).
template <int kMT, int kNT>
__device__ __forceinline__ void store_acc_partial(const float (&acc)[kMT][kNT][4], float mul,
                                                  float* out, int width, int row0, int nrows,
                                                  int col0, int lane) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + mt * 16 + lane / 4 + r * 8;
      if (row < nrows) {
#pragma unroll
        for (int j = 0; j < kNT; ++j) {
          // width is a multiple of 8 and col even: col < width covers col + 1.
          const int col = col0 + j * 8 + 2 * (lane % 4);
          if (col < width) {
            *reinterpret_cast<float2*>(out + static_cast<int64_t>(row) * width + col) =
                make_float2(acc[mt][j][2 * r] * mul, acc[mt][j][2 * r + 1] * mul);
          }
        }
      }
    }
}

// ---------------------------------------------------------------------------
// 1. Preprocess. kHeadDim: the main config's tile width (dq_accum's row
// width). kVec16: o and dout rows are 16-byte aligned (host-checked), so each
// thread reads its 8-element chunk with one 16-byte load; else 2-byte loads.
// kZeroDqAccum: zero dq_accum (false in deterministic mode, which has none).
template <typename Elem, int kHeadDim, bool kVec16, bool kZeroDqAccum>
__global__ void __launch_bounds__(kBwdPreThreads)
    bwd_preprocess_kernel(const BwdParams params) {
  constexpr int kC = kHeadDim / 8;  // threads per row, one 16-byte chunk each
  static_assert(32 % kC == 0 || kC == 32, "a row's threads must sit in one warp");
  constexpr int kRowsPerPass = kBwdPreThreads / kC;
  static_assert(kBwdPreRows % kRowsPerPass == 0, "passes must cover the block's rows");
  const int tid = threadIdx.x;
  const int num_m = params.seqlen_q_rounded / kBwdPreRows;
  const int bh = static_cast<int>(blockIdx.x) / num_m;
  const int m0 = (static_cast<int>(blockIdx.x) % num_m) * kBwdPreRows;
  const int b = bh / params.heads_q;
  const int h = bh % params.heads_q;
  const int c = tid % kC;
  const int dchunks = params.head_dim / 8;
  const uint16_t* o_base = static_cast<const uint16_t*>(params.o) + b * params.o_batch_stride +
                           h * params.o_head_stride;
  const uint16_t* do_base = static_cast<const uint16_t*>(params.dout) +
                            b * params.do_batch_stride + h * params.do_head_stride;
  const int64_t row_base = static_cast<int64_t>(bh) * params.seqlen_q_rounded;
  const int64_t lse_base = static_cast<int64_t>(bh) * params.seqlen_q;

#pragma unroll
  for (int pass = 0; pass < kBwdPreRows / kRowsPerPass; ++pass) {
    const int row = m0 + pass * kRowsPerPass + tid / kC;
    float dot = 0.f;
    if (row < params.seqlen_q && c < dchunks) {
      const uint16_t* op = o_base + row * params.o_row_stride + c * 8;
      const uint16_t* dop = do_base + row * params.do_row_stride + c * 8;
      uint32_t ov[4], dov[4];
      if constexpr (kVec16) {
        const uint4 o4 = *reinterpret_cast<const uint4*>(op);
        const uint4 d4 = *reinterpret_cast<const uint4*>(dop);
        ov[0] = o4.x, ov[1] = o4.y, ov[2] = o4.z, ov[3] = o4.w;
        dov[0] = d4.x, dov[1] = d4.y, dov[2] = d4.z, dov[3] = d4.w;
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          ov[e] = uint32_t{op[2 * e]} | (uint32_t{op[2 * e + 1]} << 16);
          dov[e] = uint32_t{dop[2 * e]} | (uint32_t{dop[2 * e + 1]} << 16);
        }
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 of = unpack2_float<Elem>(ov[e]);
        const float2 df = unpack2_float<Elem>(dov[e]);
        dot = fmaf(of.x, df.x, dot);
        dot = fmaf(of.y, df.y, dot);
      }
    }
    // Sum over the row's kC threads (consecutive lanes of one warp).
#pragma unroll
    for (int off = kC / 2; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
    if (c == 0) {
      float dpsum = 0.f;
      float lse_log2 = INFINITY;  // padded row: P = exp2(s * scale_log2 - inf) = 0
      if (row < params.seqlen_q) {
        const float lse = params.lse[lse_base + row];
        dpsum = dot - (params.dlse != nullptr ? params.dlse[lse_base + row] : 0.f);
        // lse = -inf: the row saw no key; every score it meets is masked
        // (-inf), and 0 keeps exp2(-inf - 0) = 0 instead of NaN.
        lse_log2 = lse == -INFINITY ? 0.f : lse * 1.4426950408889634f;
      }
      params.dpsum[row_base + row] = dpsum;
      params.lse_log2[row_base + row] = lse_log2;
    }
  }

  // Zero this block's rows of dq_accum (padded rows and columns included).
  if constexpr (kZeroDqAccum) {
    float4* acc = reinterpret_cast<float4*>(params.dq_accum + (row_base + m0) * kHeadDim);
    constexpr int kVecs = kBwdPreRows * kHeadDim / 4;
    static_assert(kVecs % kBwdPreThreads == 0, "dq_accum rows must split evenly");
#pragma unroll
    for (int i = 0; i < kVecs / kBwdPreThreads; ++i) {
      acc[tid + i * kBwdPreThreads] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
}

// ---------------------------------------------------------------------------
// 2. Main kernel. kHasMask: causal / window (mask.cuh); kSoftcap; kAligned16:
// q, k, v and dout rows are 16-byte aligned (gmem.cuh's TileLoader).
// kGqaSplit: params.gqa_split > 1 (fp32 partials); false compiles the
// one-part kernel, gqa_split never read. A template flag rather than a runtime
// branch: these kernels sit at the 255-register cap, where any extra runtime
// value reshuffles ptxas' allocation of the unsplit kernel (measured: spills
// appeared in some variants, vanished in others), while with the flag the
// unsplit kernels compile exactly as before the split existed.
// grads_aligned16: dk and dv rows are 16-byte aligned (16-byte stores).
// kComputeDq: add the dQ partials into dq_accum (the default mode); false in
// deterministic mode, where bwd_dq_kernel (bwd_dq_kernel.cuh) computes dq.
template <typename Elem, typename Traits, bool kHasMask, bool kSoftcap, bool kAligned16,
          bool kComputeDq, bool kGqaSplit>
__global__ void __launch_bounds__(Traits::kNThreads, Traits::kMinBlocksPerSm)
    bwd_kernel(const BwdParams params, bool grads_aligned16) {
  if constexpr (Traits::kSmemBytes <= arch_smem_limit()) {
    constexpr int kBlockM = Traits::kBlockM;
    constexpr int kBlockN = Traits::kBlockN;
    constexpr int kNThreads = Traits::kNThreads;
    constexpr int kSdpMT = Traits::kSdpMTiles;
    constexpr int kSdpNT = Traits::kSdpNTiles;
    constexpr int kDkvMT = Traits::kDkvMTiles;
    constexpr int kDkvNT = Traits::kDkvNTiles;
    constexpr int kDqMT = Traits::kDqMTiles;
    constexpr int kDqNT = Traits::kDqNTiles;
    using DLayout = TileLayout<Traits>;                   // Q, dO, K, V: head-dim rows
    using PLayout = TileLayout<typename Traits::PRows>;   // P, dS: key rows
    using Acc = DqAccumLayout<Traits>;

    extern __shared__ __align__(128) char smem[];
    char* smem_k = smem;
    char* smem_v = smem + Traits::kSmemOffV;
    char* smem_q = smem + Traits::kSmemOffQ;    // [stage]
    char* smem_do = smem + Traits::kSmemOffDo;  // [stage]
    char* smem_p = smem + Traits::kSmemOffP;
    char* smem_ds = smem + Traits::kSmemOffDs;

    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int quad_row = lane / 4;
    const int quad_col = 2 * (lane % 4);

    // Flattened grid: the key blocks of one (b, h_kv, part) are adjacent (they
    // share Q and dO in L2), lowest first: under a causal mask those visit the
    // most query blocks, so the longest blocks start first. The parts of one
    // kv head follow each other (they share K and V).
    const int num_n_blocks = (params.seqlen_k + kBlockN - 1) / kBlockN;
    const int n_block = static_cast<int>(blockIdx.x) % num_n_blocks;
    const int bh_part = static_cast<int>(blockIdx.x) / num_n_blocks;  // bh_kv * split + part
    const int bh_kv = kGqaSplit ? bh_part / params.gqa_split : bh_part;
    const int part = kGqaSplit ? bh_part - bh_kv * params.gqa_split : 0;
    const int b = bh_kv / params.heads_kv;
    const int h_kv = bh_kv % params.heads_kv;
    // The part's query heads: h_kv * q_per_kv + part * heads_per_part + [0, heads_per_part).
    const int heads_per_part =
        kGqaSplit ? params.q_per_kv / params.gqa_split : params.q_per_kv;
    const int n0 = n_block * kBlockN;
    const int dchunks = params.head_dim / 8;

    // The query blocks that see this key block: the same for every head of the
    // group (design section 3). The m-steps walk (head, m) pairs, head-major.
    const QueryRange<kBlockM, kBlockN, kHasMask> range(params, n0);
    const int num_m = range.m_end > range.m_begin ? range.m_end - range.m_begin : 0;
    const int num_steps = num_m * heads_per_part;

    const uint16_t* k_base = static_cast<const uint16_t*>(params.k) +
                             b * params.k_batch_stride + h_kv * params.k_head_stride;
    const uint16_t* v_base = static_cast<const uint16_t*>(params.v) +
                             b * params.v_batch_stride + h_kv * params.v_head_stride;

    // Query head and block of m-step `step`.
    auto step_head = [&](int step) {
      return h_kv * params.q_per_kv + part * heads_per_part + step / num_m;
    };
    auto step_m0 = [&](int step) { return (range.m_begin + step % num_m) * kBlockM; };

    using QLoader = TileLoader<Traits, kBlockM, kNThreads, kAligned16>;
    auto load_q = [&](int step, int stage) {
      const uint16_t* q_base = static_cast<const uint16_t*>(params.q) +
                               b * params.q_batch_stride + step_head(step) * params.q_head_stride;
      QLoader(q_base, params.q_row_stride, dchunks, tid)
          .load(smem_q + stage * Traits::kSmemQBytes, step_m0(step), params.seqlen_q);
    };
    auto load_do = [&](int step, int stage) {
      const uint16_t* do_base = static_cast<const uint16_t*>(params.dout) +
                                b * params.do_batch_stride +
                                step_head(step) * params.do_head_stride;
      QLoader(do_base, params.do_row_stride, dchunks, tid)
          .load(smem_do + stage * Traits::kSmemDoBytes, step_m0(step), params.seqlen_q);
    };

    // Prologue: K, V and the first m-step's Q and dO in one cp.async group.
    if (num_steps > 0) {
      using KVLoader = TileLoader<Traits, kBlockN, kNThreads, kAligned16>;
      KVLoader(k_base, params.k_row_stride, dchunks, tid).load(smem_k, n0, params.seqlen_k);
      KVLoader(v_base, params.v_row_stride, dchunks, tid).load(smem_v, n0, params.seqlen_k);
      load_q(0, 0);
      load_do(0, 0);
    }
    cp_async_commit();

    // Warp tiles of the three GEMM shapes (design section 6).
    const int sdp_row0 = (warp % Traits::kWarpsSdpM) * Traits::kSdpRows;  // query row in block
    const int sdp_col0 = (warp / Traits::kWarpsSdpM) * Traits::kSdpCols;  // key in block
    const int dkv_row0 = (warp / Traits::kWarpsDkvN) * Traits::kDkvRows;  // key in block
    const int dkv_col0 = (warp % Traits::kWarpsDkvN) * Traits::kDkvCols;  // head-dim column
    const int dq_row0 = (warp % Traits::kWarpsDqM) * Traits::kDqRows;     // query row in block
    const int dq_col0 = (warp / Traits::kWarpsDqM) * Traits::kDqCols;     // head-dim column

    float acc_dk[kDkvMT][kDkvNT][4];  // dK: (keys dkv_row0.. m16) x (head dim n8), fp32
    float acc_dv[kDkvMT][kDkvNT][4];  // dV: the same tiles
#pragma unroll
    for (int mt = 0; mt < kDkvMT; ++mt)
#pragma unroll
      for (int j = 0; j < kDkvNT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_dk[mt][j][e] = acc_dv[mt][j][e] = 0.f;

    for (int step = 0; step < num_steps; ++step) {
      const int stage = step & 1;
      const int q_stage = Traits::kQStages == 2 ? stage : 0;
      const int do_stage = Traits::kDoStages == 2 ? stage : 0;
      const int h = step_head(step);
      const int m_block = range.m_begin + step % num_m;
      const int m0 = m_block * kBlockM;
      // This step's Q and dO (and, first, K and V) have landed for every
      // thread, and every warp is done with the previous step: its Q/dO stage
      // may be refilled and the P/dS tiles overwritten.
      cp_async_wait<0>();
      __syncthreads();
      if (step + 1 < num_steps) {
        if constexpr (Traits::kQStages == 2) load_q(step + 1, stage ^ 1);
        if constexpr (Traits::kDoStages == 2) load_do(step + 1, stage ^ 1);
      }
      cp_async_commit();

      const uint32_t sq = smem_u32(smem_q + q_stage * Traits::kSmemQBytes);
      const uint32_t sdo = smem_u32(smem_do + do_stage * Traits::kSmemDoBytes);
      const int64_t row_base =
          (static_cast<int64_t>(b) * params.heads_q + h) * params.seqlen_q_rounded + m0;

      // lambda and D' of this thread's S rows (sdp_row0 + mt*16 + quad_row + 8r);
      // rows < seqlen_q_rounded always exist (padded rows: +inf and 0). Read
      // straight from global memory (L2-resident; 4 * kSdpMT loads issued
      // ahead of the dP GEMM) rather than staged in shared memory as design
      // section 6 has it: fewer moving parts for the first cut.
      float lam[kSdpMT][2], dps[kSdpMT][2];
#pragma unroll
      for (int mt = 0; mt < kSdpMT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int row = sdp_row0 + mt * 16 + quad_row + r * 8;
          lam[mt][r] = params.lse_log2[row_base + row];
          dps[mt][r] = params.dpsum[row_base + row];
        }

      // dP = dO V^T, then S = Q K^T: (kSdpMT m16 query tiles) x (kSdpNT n8 key
      // tiles) each, fp32. dP first, so that softcap's 1 - t^2 is folded into
      // dP - D' as soon as t exists instead of being held across a GEMM.
      float dp[kSdpMT][kSdpNT][4];
      float s[kSdpMT][kSdpNT][4];
#pragma unroll
      for (int mt = 0; mt < kSdpMT; ++mt)
#pragma unroll
        for (int j = 0; j < kSdpNT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) dp[mt][j][e] = s[mt][j][e] = 0.f;
      gemm_ss<Elem, DLayout, DLayout, kSdpMT, kSdpNT, Traits::kSdpKSteps, false, false>(
          dp, sdo, sdp_row0, 0, smem_u32(smem_v), 0, sdp_col0, lane);
      gemm_ss<Elem, DLayout, DLayout, kSdpMT, kSdpNT, Traits::kSdpKSteps, false, false>(
          s, sq, sdp_row0, 0, smem_u32(smem_k), 0, sdp_col0, lane);

      // dp becomes (dP - D') [(1 - t^2)]. Softcap exactly as the forward's
      // softcap_scores (same accurate_tanh, same product c * t), 1 - t^2 taken
      // before the mask.
#pragma unroll
      for (int mt = 0; mt < kSdpMT; ++mt)
#pragma unroll
        for (int j = 0; j < kSdpNT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            dp[mt][j][e] -= dps[mt][e / 2];
            if constexpr (kSoftcap) {
              const float t = accurate_tanh(s[mt][j][e] * params.softcap_scale);
              s[mt][j][e] = params.softcap * t;
              dp[mt][j][e] *= 1.f - t * t;
            }
          }

      // Mask only the tiles that cross the key tail or a window boundary
      // (block-uniform test; each warp masks its own key columns).
      if (range.needs_mask(params, m_block)) {
#pragma unroll
        for (int mt = 0; mt < kSdpMT; ++mt) {
          mask_scores<kSdpNT, kHasMask>(s[mt], params, m0 + sdp_row0 + mt * 16 + quad_row,
                                        n0 + sdp_col0, quad_col);
        }
      }

      // P = exp2(s * scale_log2 - lambda): the forward's exp_row form; masked
      // scores (-inf) give 0 for every finite or +inf lambda. dS = P dp.
#pragma unroll
      for (int mt = 0; mt < kSdpMT; ++mt)
#pragma unroll
        for (int j = 0; j < kSdpNT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            s[mt][j][e] = fast_exp2(fmaf(s[mt][j][e], params.scale_log2, -lam[mt][e / 2]));
            dp[mt][j][e] *= s[mt][j][e];
          }

      // P and dS to shared memory as 16-bit [query row][key] tiles. The
      // barrier at the top of this step ordered every read of the previous
      // step's tiles.
      stage_acc_tile<Elem, PLayout, kSdpMT, kSdpNT>(s, 1.f, smem_p, sdp_row0, sdp_col0, lane);
      stage_acc_tile<Elem, PLayout, kSdpMT, kSdpNT>(dp, 1.f, smem_ds, sdp_row0, sdp_col0, lane);
      __syncthreads();

      // dV += P^T dO and dK += dS^T Q: keys x head dim, k over the block's queries.
      gemm_ss<Elem, PLayout, DLayout, kDkvMT, kDkvNT, Traits::kDkvKSteps, true, true>(
          acc_dv, smem_u32(smem_p), dkv_row0, 0, sdo, 0, dkv_col0, lane);
      gemm_ss<Elem, PLayout, DLayout, kDkvMT, kDkvNT, Traits::kDkvKSteps, true, true>(
          acc_dk, smem_u32(smem_ds), dkv_row0, 0, sq, 0, dkv_col0, lane);
      if constexpr (Traits::kLateLoads) {
        // Single buffers: the next step's Q / dO may land once every warp's
        // dK / dV GEMM has read this one; they then load under the dQ GEMM.
        __syncthreads();
        if (step + 1 < num_steps) {
          if constexpr (Traits::kQStages == 1) load_q(step + 1, 0);
          if constexpr (Traits::kDoStages == 1) load_do(step + 1, 0);
        }
        cp_async_commit();
      }

      if constexpr (kComputeDq) {
        // dQ partial = dS K: queries x head dim, k over the block's keys; added
        // into this query block's dq_accum slice (rows < seqlen_q_rounded).
        float acc_dq[kDqMT][kDqNT][4];
#pragma unroll
        for (int mt = 0; mt < kDqMT; ++mt)
#pragma unroll
          for (int j = 0; j < kDqNT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_dq[mt][j][e] = 0.f;
        gemm_ss<Elem, PLayout, DLayout, kDqMT, kDqNT, Traits::kDqKSteps, false, true>(
            acc_dq, smem_u32(smem_ds), dq_row0, 0, smem_u32(smem_k), 0, dq_col0, lane);
        float* dq_slice = params.dq_accum + row_base * Traits::kHeadDim;
#pragma unroll
        for (int mt = 0; mt < kDqMT; ++mt)
#pragma unroll
          for (int j = 0; j < kDqNT; ++j) {
            const int v = (mt * kDqNT + j) * 4;
            if constexpr (Acc::kVec == 4) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
              atomicAdd(reinterpret_cast<float4*>(dq_slice + Acc::index(v, tid)),
                        make_float4(acc_dq[mt][j][0], acc_dq[mt][j][1], acc_dq[mt][j][2],
                                    acc_dq[mt][j][3]));
#endif
            } else {
#pragma unroll
              for (int e = 0; e < 4; ++e) {
                atomicAdd(dq_slice + Acc::index(v + e, tid), acc_dq[mt][j][e]);
              }
            }
          }
      }
    }

    // Epilogue. A split group: this part's sums go to its fp32 partial slice
    // from the registers (no shared memory, no barrier); the reduce kernel
    // adds the parts. Every row < seqlen_k and column < head_dim is written,
    // zeros included, so the reduce reads no stale workspace.
    cp_async_wait<0>();
    if constexpr (kGqaSplit) {
      const int64_t slice =
          ((static_cast<int64_t>(part) * params.batch + b) *
               params.heads_kv +
           h_kv) *
          params.seqlen_k * params.head_dim;
      store_acc_partial<kDkvMT, kDkvNT>(acc_dk, params.scale, params.dk_partial + slice,
                                        params.head_dim, n0 + dkv_row0, params.seqlen_k,
                                        dkv_col0, lane);
      store_acc_partial<kDkvMT, kDkvNT>(acc_dv, 1.f, params.dv_partial + slice,
                                        params.head_dim, n0 + dkv_row0, params.seqlen_k,
                                        dkv_col0, lane);
      return;
    }
    // Every warp is past its last GEMM (and every cp.async has landed) before
    // K and V's buffers take the 16-bit dK and dV tiles.
    __syncthreads();
    stage_acc_tile<Elem, DLayout, kDkvMT, kDkvNT>(acc_dk, params.scale, smem_k, dkv_row0,
                                                  dkv_col0, lane);
    stage_acc_tile<Elem, DLayout, kDkvMT, kDkvNT>(acc_dv, 1.f, smem_v, dkv_row0, dkv_col0, lane);
    __syncthreads();
    uint16_t* dk_base = static_cast<uint16_t*>(params.dk) + b * params.dk_batch_stride +
                        h_kv * params.dk_head_stride;
    uint16_t* dv_base = static_cast<uint16_t*>(params.dv) + b * params.dv_batch_stride +
                        h_kv * params.dv_head_stride;
    store_grad_tile<Traits, kBlockN, kNThreads>(dk_base, params.dk_row_stride, smem_k, n0,
                                                params.seqlen_k, dchunks, tid, grads_aligned16);
    store_grad_tile<Traits, kBlockN, kNThreads>(dv_base, params.dv_row_stride, smem_v, n0,
                                                params.seqlen_k, dchunks, tid, grads_aligned16);
  }
}

// ---------------------------------------------------------------------------
// 2b. dK / dV reduce over the parts of a split GQA group (params.gqa_split > 1).
// Thread i: 8 columns (one 16-byte output chunk) of one row of one (b, h_kv),
// row-major over (b, h_kv, row, chunk), so a warp reads whole 32-byte sectors
// of each partial. The partials are added in ascending part order from 0, the
// same for every call: dk and dv do not depend on scheduling. dK's partials
// already carry scale. grads_aligned16: dk and dv rows are 16-byte aligned.
constexpr int kBwdReduceThreads = 256;

template <typename Elem>
__global__ void __launch_bounds__(kBwdReduceThreads)
    bwd_dkv_reduce_kernel(const BwdParams params, bool grads_aligned16) {
  const int dchunks = params.head_dim / 8;
  const int64_t rows = static_cast<int64_t>(params.batch) * params.heads_kv * params.seqlen_k;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kBwdReduceThreads + threadIdx.x;
  if (idx >= rows * dchunks) return;
  const int64_t grow = idx / dchunks;  // (b * heads_kv + h_kv) * seqlen_k + row
  const int c = static_cast<int>(idx - grow * dchunks);
  const int row = static_cast<int>(grow % params.seqlen_k);
  const int bh = static_cast<int>(grow / params.seqlen_k);
  const int b = bh / params.heads_kv;
  const int h = bh % params.heads_kv;
  const int64_t part_stride = rows * params.head_dim;  // floats per part
  const int64_t offset = grow * params.head_dim + c * 8;

  float dk[8], dv[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) dk[e] = dv[e] = 0.f;
  for (int g = 0; g < params.gqa_split; ++g) {
    const float4* pk = reinterpret_cast<const float4*>(params.dk_partial + g * part_stride + offset);
    const float4* pv = reinterpret_cast<const float4*>(params.dv_partial + g * part_stride + offset);
    const float4 k0 = pk[0], k1 = pk[1], v0 = pv[0], v1 = pv[1];
    dk[0] += k0.x, dk[1] += k0.y, dk[2] += k0.z, dk[3] += k0.w;
    dk[4] += k1.x, dk[5] += k1.y, dk[6] += k1.z, dk[7] += k1.w;
    dv[0] += v0.x, dv[1] += v0.y, dv[2] += v0.z, dv[3] += v0.w;
    dv[4] += v1.x, dv[5] += v1.y, dv[6] += v1.z, dv[7] += v1.w;
  }

  uint32_t packed_k[4], packed_v[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    packed_k[e] = Numeric<Elem>::pack2(dk[2 * e], dk[2 * e + 1]);
    packed_v[e] = Numeric<Elem>::pack2(dv[2 * e], dv[2 * e + 1]);
  }
  uint16_t* dk_out = static_cast<uint16_t*>(params.dk) + b * params.dk_batch_stride +
                     h * params.dk_head_stride + row * params.dk_row_stride + c * 8;
  uint16_t* dv_out = static_cast<uint16_t*>(params.dv) + b * params.dv_batch_stride +
                     h * params.dv_head_stride + row * params.dv_row_stride + c * 8;
  if (grads_aligned16) {
    *reinterpret_cast<uint4*>(dk_out) =
        make_uint4(packed_k[0], packed_k[1], packed_k[2], packed_k[3]);
    *reinterpret_cast<uint4*>(dv_out) =
        make_uint4(packed_v[0], packed_v[1], packed_v[2], packed_v[3]);
  } else {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      dk_out[2 * e] = static_cast<uint16_t>(packed_k[e] & 0xffffu);
      dk_out[2 * e + 1] = static_cast<uint16_t>(packed_k[e] >> 16);
      dv_out[2 * e] = static_cast<uint16_t>(packed_v[e] & 0xffffu);
      dv_out[2 * e + 1] = static_cast<uint16_t>(packed_v[e] >> 16);
    }
  }
}

// ---------------------------------------------------------------------------
// 3. Postprocess: query block m of (b, h), the main kernel's thread count and
// dQ warp tiles (DqAccumLayout), staged in shared memory for 16-byte stores.
template <typename Elem, typename Traits>
__global__ void __launch_bounds__(Traits::kNThreads)
    bwd_postprocess_kernel(const BwdParams params, bool grads_aligned16) {
  using Layout = TileLayout<Traits>;
  using Acc = DqAccumLayout<Traits>;
  constexpr int kBlockM = Traits::kBlockM;
  extern __shared__ __align__(128) char smem[];
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int num_m = (params.seqlen_q + kBlockM - 1) / kBlockM;
  const int bh = static_cast<int>(blockIdx.x) / num_m;
  const int m0 = (static_cast<int>(blockIdx.x) % num_m) * kBlockM;
  const int b = bh / params.heads_q;
  const int h = bh % params.heads_q;
  const float* slice =
      params.dq_accum +
      (static_cast<int64_t>(bh) * params.seqlen_q_rounded + m0) * Traits::kHeadDim;

  // Thread tid's values are those it added in the main kernel: dQ n8 tile j of
  // m16 tile mt of its warp's tile, read back through the same mapping.
  float acc[Traits::kDqMTiles][Traits::kDqNTiles][4];
#pragma unroll
  for (int mt = 0; mt < Traits::kDqMTiles; ++mt)
#pragma unroll
    for (int j = 0; j < Traits::kDqNTiles; ++j) {
      const int v = (mt * Traits::kDqNTiles + j) * 4;
      if constexpr (Acc::kVec == 4) {
        const float4 x = *reinterpret_cast<const float4*>(slice + Acc::index(v, tid));
        acc[mt][j][0] = x.x, acc[mt][j][1] = x.y, acc[mt][j][2] = x.z, acc[mt][j][3] = x.w;
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[mt][j][e] = slice[Acc::index(v + e, tid)];
      }
    }
  const int row0 = (warp % Traits::kWarpsDqM) * Traits::kDqRows;
  const int col0 = (warp / Traits::kWarpsDqM) * Traits::kDqCols;
  stage_acc_tile<Elem, Layout, Traits::kDqMTiles, Traits::kDqNTiles>(acc, params.scale, smem,
                                                                     row0, col0, lane);
  __syncthreads();
  uint16_t* dq_base = static_cast<uint16_t*>(params.dq) + b * params.dq_batch_stride +
                      h * params.dq_head_stride;
  store_grad_tile<Traits, kBlockM, Traits::kNThreads>(dq_base, params.dq_row_stride, smem, m0,
                                                      params.seqlen_q, params.head_dim / 8, tid,
                                                      grads_aligned16);
}

}  // namespace flashcore
