// Backward attention on Hopper (sm_90a): TMA loads on an mbarrier ring, wgmma
// GEMMs, warp specialization (docs/design/backward.md section 7). The math and
// its units are sm80/bwd_kernel.cuh's (s, P, dP, D', dS, the softcap factor
// 1 - t^2, scale applied once to dK here and to dQ in the postprocess); this
// file computes the same sums with a different division of the work.
//
// Kernels, on the caller's stream (host/bwd_sm90_launch.cuh):
// 1. The mma.sync family's bwd_preprocess_kernel: D' (dpsum), lse_log2, and
//    dq_accum zeroed. None of it depends on how dq_accum's slices are ordered
//    inside.
// 2. bwd_kernel below, one thread block per (key block n of 128 keys, kv
//    head, batch), the key blocks of one head adjacent and lowest first (the
//    longest under a causal mask), as the mma.sync family's grid:
//    - Warpgroup 0 is the producer. It hands most of its registers to the
//      consumers (setmaxnreg) and one thread issues every copy: K and V once,
//      then per m-step (query head of the kv head's group, query block m of
//      QueryRange, head-major, ascending m) Q on one mbarrier and dO on
//      another, into a ring of kStages stages. A stage is refilled once all 8
//      consumer warps released it. The rows' lse_log2 and dpsum are not in
//      that ring: the consumers copy them (cp.async, two m-steps ahead, a ring
//      of three buffers published by the dS barrier; see the consumer loop).
//    - Consumer warpgroup w owns keys 64w .. 64w + 63 of the block. Per
//      m-step, all by wgmma:
//        S^T  = K_w Q^T    (64 keys x kBlockM queries; both from shared memory)
//        dP^T = V_w dO^T
//        P^T  = exp2(S^T * scale_log2 - lse_log2[query]) (softcap and mask first)
//        dS^T = P^T (dP^T - dpsum[query]) [* (1 - t^2)]
//        dV_w += P^T dO    (P^T from registers: the accumulator relabelled
//        dK_w += dS^T Q     as A fragments, the forward's P form)
//        dQ part = dS K    (dS from shared memory, written by both
//                           warpgroups; one 64 x 64 part per warpgroup)
//      and the dQ part is added into dq_accum with float4 atomics.
//    - Epilogue: dK * scale and dV in the input dtype, staged in the K and V
//      buffers, rows < seqlen_k and columns < head_dim. A key block no query
//      sees stores zeros.
// 3. bwd_postprocess_kernel below: dq = scale * dq_accum through this file's
//    dq_accum order (DqAccumOrder), in q's dtype, with dq's strides.
//
// The accumulator layout of wgmma is the mma.sync m16n8 layout per warp (a
// thread holds rows lane/4 and lane/4 + 8 of its warp's 16, columns 2*(lane%4)
// and +1 of every n8 block): here rows are keys and columns queries, hence
// mask_scores_t and per-column statistics.
//
// Exact zeros, never NaN, as in the mma.sync family: query rows past seqlen_q
// (TMA zero-fills Q and dO; lse_log2 = +inf, so P = 0 and dS = 0), rows that
// see no key (masked: s = -inf, lse_log2 = 0, P = 0), keys past seqlen_k
// (zero-filled, masked, never stored), columns past head_dim (zero-filled).
//
// The main kernel's body exists only in the sm_90a pass (FLASHCORE_SM90A); the
// host launches it only on compute capability 9.0 (host/run.cu). The
// deterministic mode is the mma.sync family's only (api/ops.cpp and
// host/checks.cpp refuse it for these configs). A GQA group split (forced
// only, for the A/B) runs as the mma.sync family's: fp32 partials per part
// and the same reduce kernel.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "flashcore/mask.cuh"
#include "flashcore/numeric.cuh"
#include "flashcore/params.h"
#include "flashcore/sm80/bwd_kernel.cuh"  // stage_acc_tile, store_grad_tile (postprocess)
#include "flashcore/sm80/bwd_traits.h"   // BwdRowTraits
#include "flashcore/sm80/ptx.cuh"
#include "flashcore/sm90/bwd_traits.h"
#include "flashcore/sm90/fwd_kernel.cuh"  // bar_sync, swizzled_chunk
#include "flashcore/sm90/ptx.cuh"
#include "flashcore/sm90/wgmma.cuh"
#include "flashcore/softmax.cuh"

namespace flashcore {
namespace sm90 {

// The main kernel's one parameter: the TMA descriptors of q, k, v and dout
// (4-D: head dim, rows, heads, batch) and the plain call description.
struct BwdArgs {
  CUtensorMap q;
  CUtensorMap k;
  CUtensorMap v;
  CUtensorMap dout;
  BwdParams p;
};

// Where the consumers' dQ parts go inside a query block's dq_accum slice (the
// kBlockM * kHeadDim floats at ((b * heads_q + h) * seqlen_q_rounded + m0) *
// kHeadDim, as in the mma.sync family; the preprocess zeroes whole slices).
// Inside, the accumulator's register order, not row-major: n8 block g (its 4
// values, fragment order) of thread t of consumer warpgroup w at
// ((w * 8 + g) * 128 + t) * 4. One float4 atomic per thread and n8 block, and
// a warp's 32 of them cover 512 contiguous bytes. The values are tile rows and
// columns by the wgmma accumulator layout from (wg_row0, wg_col0): the
// warpgroup's 64 x 64 part of the kBlockM x kHeadDim tile.
template <typename Traits>
struct DqAccumOrder {
  static constexpr int kGroups = Traits::kDqAccRegs / 4;  // n8 blocks per thread
  __device__ __forceinline__ static int index(int wg, int g, int tid_wg) {
    return ((wg * kGroups + g) * 128 + tid_wg) * 4;
  }
  __device__ __forceinline__ static int wg_row0(int wg) {
    return Traits::kDqSplitRows ? 64 * wg : 0;
  }
  __device__ __forceinline__ static int wg_col0(int wg) {
    return Traits::kDqSplitRows ? 0 : 64 * wg;
  }
};

// Named barriers of the consumers (id 0 is __syncthreads, never used after
// the role split): the dS tile of an m-step is complete (both warpgroups,
// 256 threads); every wgmma of both warpgroups is done before the epilogue
// overwrites K and V (256); one warpgroup's staged dK / dV rows are complete
// (128 threads, ids kBarStaged + w); the first two m-steps' statistics are
// in shared memory (256, once).
constexpr int kBarDsFull = 1;
constexpr int kBarEpilogue = 2;
constexpr int kBarStaged = 3;
constexpr int kBarStats = 5;  // after kBarStaged + 0, 1 (two consumer warpgroups)

// kHasMask: causal / window (mask.cuh); kSoftcap. TMA reads every tile, so
// there is no unaligned-rows build (the host refuses such inputs).
// kGqaSplit: params.gqa_split > 1 (forced only): part g of each group per
// block and fp32 partials; false compiles the one-part kernel, whose code is
// the same as before the split existed (gqa_split never read).
template <typename Elem, typename Traits, bool kHasMask, bool kSoftcap, bool kGqaSplit>
__global__ void __launch_bounds__(Traits::kNThreads, 1)
    bwd_kernel(const __grid_constant__ BwdArgs args) {
#if defined(FLASHCORE_SM90A)
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kStages = Traits::kStages;
  constexpr int kNTilesS = kBlockM / 8;   // n8 query tiles of S^T, dP^T (per thread: [kNTilesS][4])
  constexpr int kKStepsQ = kBlockM / 16;  // k16 steps over the queries (dV, dK GEMMs)
  constexpr int kNTilesD = kHeadDim / 8;  // n8 head-dim tiles of dK, dV
  constexpr int kConsumerWarps = 4 * Traits::kConsumerWGs;
  constexpr int kConsumerThreads = 128 * Traits::kConsumerWGs;
  using Order = DqAccumOrder<Traits>;
  const BwdParams& params = args.p;

  // The 1024-aligned base, as an offset from the array (not an integer cast
  // of the pointer) so the compiler still knows every access below is to
  // shared memory: 32-bit shared loads and stores, not generic 64-bit ones.
  extern __shared__ char smem_raw[];
  char* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  char* smem_k = smem + Traits::kKOffset;
  char* smem_v = smem + Traits::kVOffset;
  uint64_t* bars = reinterpret_cast<uint64_t*>(smem + Traits::kBarOffset);
  uint64_t* kv_full = bars;
  uint64_t* q_full = bars + 1;           // Q of a stage landed
  uint64_t* do_full = q_full + kStages;  // dO of a stage landed
  uint64_t* qdo_empty = do_full + kStages;
  auto q_tile = [&](int st) { return smem + Traits::kQOffset + st * Traits::kQTileBytes; };
  auto do_tile = [&](int st) { return smem + Traits::kDoOffset + st * Traits::kQTileBytes; };
  auto ds_tile = [&](int st) { return smem + Traits::kDsOffset + st * Traits::kDsTileBytes; };

  const int tid = threadIdx.x;
  const int warpgroup = tid / 128;

  // This block's keys and the m-steps that see them: the query blocks of
  // QueryRange (the same for every head of the group, design section 3) for
  // each of the kv head's q_per_kv query heads. Producer and consumers walk
  // the same sequence.
  // A split group (params.gqa_split > 1, a divisor of q_per_kv): part
  // blockIdx.y of the kv head's query heads, q_per_kv / gqa_split consecutive
  // ones.
  const int num_n_blocks = (params.seqlen_k + kBlockN - 1) / kBlockN;
  const int n_block = static_cast<int>(blockIdx.x) % num_n_blocks;
  const int bh_kv = static_cast<int>(blockIdx.x) / num_n_blocks;
  const int part = kGqaSplit ? static_cast<int>(blockIdx.y) : 0;
  const int heads_per_part = kGqaSplit ? params.q_per_kv / params.gqa_split : params.q_per_kv;
  const int b = bh_kv / params.heads_kv;
  const int h_kv = bh_kv % params.heads_kv;
  const int n0 = n_block * kBlockN;
  const QueryRange<kBlockM, kBlockN, kHasMask> range(params, n0);
  const int num_m = range.m_end > range.m_begin ? range.m_end - range.m_begin : 0;
  const int num_steps = num_m * heads_per_part;
  const int first_head = h_kv * params.q_per_kv + part * heads_per_part;
  auto step_head = [&](int step) { return first_head + step / num_m; };
  auto step_m_block = [&](int step) { return range.m_begin + step % num_m; };

  if (tid == 0) {
    mbarrier_init(kv_full, 1);
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&q_full[s], 1);
      mbarrier_init(&do_full[s], 1);
      mbarrier_init(&qdo_empty[s], kConsumerWarps);
    }
    fence_mbarrier_init();
  }
  __syncthreads();  // the last block-wide barrier: the roles split here

  if (warpgroup == 0) {
    // ---- producer ----
    setmaxnreg_dec<Traits::kProducerRegs>();
    // A block with no m-step issues nothing (no copy may be in flight when
    // the block exits); its consumers store zeros without waiting.
    if (tid == 0 && num_steps > 0) {
      prefetch_tensor_map(&args.q);
      prefetch_tensor_map(&args.k);
      prefetch_tensor_map(&args.v);
      prefetch_tensor_map(&args.dout);
      mbarrier_arrive_expect_tx(kv_full, 2 * Traits::kKVTileBytes);
#pragma unroll
      for (int cb = 0; cb < Traits::kColBlocks; ++cb) {
        tma_load_4d(smem_k + cb * Traits::kKVBlockBytes, &args.k, kv_full, 64 * cb, n0, h_kv, b);
        tma_load_4d(smem_v + cb * Traits::kKVBlockBytes, &args.v, kv_full, 64 * cb, n0, h_kv, b);
      }
      for (int step = 0; step < num_steps; ++step) {
        const int st = step % kStages;
        const uint32_t phase = (step / kStages) & 1;
        const int h = step_head(step);
        const int m0 = step_m_block(step) * kBlockM;
        // The stage is free once every consumer warp's last wgmma reading it
        // (the dK and dV GEMMs) completed. The first lap passes: parity 1 is
        // the phase before the initial one.
        mbarrier_wait_parity(&qdo_empty[st], phase ^ 1);
        // Full boxes count even where they overhang seqlen_q (zero-filled).
        mbarrier_arrive_expect_tx(&q_full[st], Traits::kQTileBytes);
#pragma unroll
        for (int cb = 0; cb < Traits::kColBlocks; ++cb) {
          tma_load_4d(q_tile(st) + cb * Traits::kQBlockBytes, &args.q, &q_full[st], 64 * cb, m0,
                      h, b);
        }
        mbarrier_arrive_expect_tx(&do_full[st], Traits::kQTileBytes);
#pragma unroll
        for (int cb = 0; cb < Traits::kColBlocks; ++cb) {
          tma_load_4d(do_tile(st) + cb * Traits::kQBlockBytes, &args.dout, &do_full[st], 64 * cb,
                      m0, h, b);
        }
      }
    }
    return;
  }

  // ---- consumers ----
  setmaxnreg_inc<Traits::kConsumerRegs>();
  const int wg = warpgroup - 1;
  const int tid_wg = tid % 128;
  const int warp = tid_wg / 32;
  const int lane = tid % 32;
  const int quad_col = 2 * (lane % 4);
  // This thread's first key row within the warpgroup's 64 (the other is +8),
  // and the warpgroup's rows of K and V in every column block.
  const int key_row = 16 * warp + lane / 4;
  const char* k_rows = smem_k + wg * 64 * 128;
  const char* v_rows = smem_v + wg * 64 * 128;

  // dK_w, dV_w: 64 keys x kHeadDim, fp32, for the block's whole life.
  float acc_dk[kNTilesD][4];
  float acc_dv[kNTilesD][4];
#pragma unroll
  for (int j = 0; j < kNTilesD; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc_dk[j][e] = acc_dv[j][e] = 0.f;

  // The rows' statistics (lse_log2, dpsum) of an m-step: kBlockM floats each
  // from row m0 of (b, h), inside seqlen_q_rounded (padded rows hold lse_log2 =
  // +inf, dpsum = 0). The consumers copy them into a ring of kStatsStages
  // shared buffers by cp.async, two m-steps ahead: the first kBlockM / 2
  // consumer threads one 16-byte chunk each (lse_log2's, then dpsum's). The
  // step's kBarDsFull both publishes and frees: each thread waits for its own
  // copy (step + 1's) before it, so step + 1's buffer is complete for every
  // consumer after it, and every read of step - 1's buffer came before it, so
  // step + 2's copy may overwrite that buffer after it. racecheck follows
  // cp.async and named barriers (a ring filled by the producer's bulk copies,
  // ordered by its mbarrier, measured faster, but racecheck does not follow
  // mbarriers and reported every refill; reading global memory at use and a
  // per-warpgroup barrier per step each cost several percent:
  // benchmarks/NOTES.md v13, v14, v16).
  // Only the copying threads (whole warps) compute the step's row: nothing
  // more is held across the loop (the softcap kernels at block M 128 spill
  // with two running counters).
  const int tid_c = tid - 128;  // 0 .. kConsumerThreads - 1
  auto copy_stats = [&](int step) {
    if (tid_c < kBlockM / 2) {
      const int64_t row =
          (static_cast<int64_t>(b) * params.heads_q + step_head(step)) * params.seqlen_q_rounded +
          step_m_block(step) * kBlockM;
      const float* src = (tid_c < kBlockM / 4 ? params.lse_log2 : params.dpsum) + row +
                         4 * (tid_c % (kBlockM / 4));
      cp_async_16(smem_u32(smem + Traits::kStatsOffset +
                           (step % Traits::kStatsStages) * Traits::kStatsBufBytes + 16 * tid_c),
                  src, 16);
    }
    cp_async_commit();
  };
  if (num_steps > 0) {
    copy_stats(0);
    if (num_steps > 1) copy_stats(1);
    cp_async_wait<0>();
    bar_sync(kBarStats, kConsumerThreads);
    mbarrier_wait_parity(kv_full, 0);
  }

  for (int step = 0; step < num_steps; ++step) {
    const float* lam = reinterpret_cast<const float*>(
        smem + Traits::kStatsOffset + (step % Traits::kStatsStages) * Traits::kStatsBufBytes);
    const float* dps = lam + kBlockM;
    const int st = step % kStages;
    const uint32_t phase = (step / kStages) & 1;
    const int h = step_head(step);
    const int m_block = step_m_block(step);
    const int m0 = m_block * kBlockM;
    const char* q_t = q_tile(st);
    const char* do_t = do_tile(st);
    char* ds_t = ds_tile(step % Traits::kDsStages);

    // S^T = K_w Q^T and dP^T = V_w dO^T, issued back to back as two groups:
    // head-dim steps of 16, step kk 32 bytes into column block kk / 4 of both
    // K-major operands (the forward's Q K^T with K_w in Q's role and Q in K's).
    float s[kNTilesS][4];
    float dp[kNTilesS][4];
    mbarrier_wait_parity(&q_full[st], phase);
    wgmma_fence();  // orders the previous step's register reads before these writes
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      const int a_off = (kk / 4) * Traits::kKVBlockBytes + (kk % 4) * 32;
      const int b_off = (kk / 4) * Traits::kQBlockBytes + (kk % 4) * 32;
      Wgmma<kBlockM, Elem>::template ss<false>(
          reinterpret_cast<float(&)[kBlockM / 2]>(s),
          make_smem_desc(k_rows + a_off, 16, 1024, Swizzle::k128B),
          make_smem_desc(q_t + b_off, 16, 1024, Swizzle::k128B), kk > 0);
    }
    wgmma_commit_group();
    mbarrier_wait_parity(&do_full[st], phase);
    // dP^T's registers may have held the previous step's dQ part, read by the
    // atomics (ptxas places this fence itself otherwise: C7519).
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      const int a_off = (kk / 4) * Traits::kKVBlockBytes + (kk % 4) * 32;
      const int b_off = (kk / 4) * Traits::kQBlockBytes + (kk % 4) * 32;
      Wgmma<kBlockM, Elem>::template ss<false>(
          reinterpret_cast<float(&)[kBlockM / 2]>(dp),
          make_smem_desc(v_rows + a_off, 16, 1024, Swizzle::k128B),
          make_smem_desc(do_t + b_off, 16, 1024, Swizzle::k128B), kk > 0);
    }
    wgmma_commit_group();

    // P^T and dS^T in place of S^T and dP^T. Per n8 query tile j this thread
    // holds queries m0 + 8j + quad_col and +1 (fragments 0, 1 at key row
    // key_row, 2, 3 at key_row + 8): their statistics are one float2 each,
    // read from the buffer when used rather than held (kBlockM / 4 queries per
    // thread would cost kBlockM / 2 registers).
    const bool masked = range.needs_mask(params, m_block);  // uniform over the block
    const int key = n0 + 64 * wg + key_row;
    if constexpr (!kSoftcap) {
      // P while dP^T is still in flight.
      wgmma_wait_group<1>();
      wgmma_fence_operands(reinterpret_cast<float(&)[kBlockM / 2]>(s));
      if (masked) mask_scores_t<kNTilesS, kHasMask>(s, params, key, m0, quad_col);
#pragma unroll
      for (int j = 0; j < kNTilesS; ++j) {
        const float2 l = *reinterpret_cast<const float2*>(lam + 8 * j + quad_col);
        s[j][0] = fast_exp2(fmaf(s[j][0], params.scale_log2, -l.x));
        s[j][1] = fast_exp2(fmaf(s[j][1], params.scale_log2, -l.y));
        s[j][2] = fast_exp2(fmaf(s[j][2], params.scale_log2, -l.x));
        s[j][3] = fast_exp2(fmaf(s[j][3], params.scale_log2, -l.y));
      }
      wgmma_wait_group<0>();
      wgmma_fence_operands(reinterpret_cast<float(&)[kBlockM / 2]>(dp));
#pragma unroll
      for (int j = 0; j < kNTilesS; ++j) {
        const float2 d = *reinterpret_cast<const float2*>(dps + 8 * j + quad_col);
        dp[j][0] = s[j][0] * (dp[j][0] - d.x);
        dp[j][1] = s[j][1] * (dp[j][1] - d.y);
        dp[j][2] = s[j][2] * (dp[j][2] - d.x);
        dp[j][3] = s[j][3] * (dp[j][3] - d.y);
      }
    } else {
      // Softcap needs t of every score for dS: both GEMMs first, then one
      // pass that folds 1 - t^2 into dP^T - D' as soon as t exists (it is
      // taken before the mask: 1 - (-inf / c)^2 would be NaN), so no
      // per-score factor is held. s = c * t through the forward's
      // accurate_tanh, the same s the forward's lse saw.
      wgmma_wait_group<0>();
      wgmma_fence_operands(reinterpret_cast<float(&)[kBlockM / 2]>(s));
      wgmma_fence_operands(reinterpret_cast<float(&)[kBlockM / 2]>(dp));
#pragma unroll
      for (int j = 0; j < kNTilesS; ++j) {
        const float2 d = *reinterpret_cast<const float2*>(dps + 8 * j + quad_col);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float t = accurate_tanh(s[j][e] * params.softcap_scale);
          s[j][e] = params.softcap * t;
          dp[j][e] = (dp[j][e] - (e % 2 ? d.y : d.x)) * (1.f - t * t);
        }
      }
      if (masked) mask_scores_t<kNTilesS, kHasMask>(s, params, key, m0, quad_col);
#pragma unroll
      for (int j = 0; j < kNTilesS; ++j) {
        const float2 l = *reinterpret_cast<const float2*>(lam + 8 * j + quad_col);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[j][e] = fast_exp2(fmaf(s[j][e], params.scale_log2, -(e % 2 ? l.y : l.x)));
          dp[j][e] *= s[j][e];
        }
      }
    }

    // P^T and dS^T as 16-bit A fragments (k16 step kk over the queries: n8
    // tiles 2kk and 2kk + 1, the forward's to_p relabelling).
    uint32_t p_a[kKStepsQ][4];
    uint32_t ds_a[kKStepsQ][4];
#pragma unroll
    for (int kk = 0; kk < kKStepsQ; ++kk) {
      p_a[kk][0] = Numeric<Elem>::pack2(s[2 * kk][0], s[2 * kk][1]);
      p_a[kk][1] = Numeric<Elem>::pack2(s[2 * kk][2], s[2 * kk][3]);
      p_a[kk][2] = Numeric<Elem>::pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      p_a[kk][3] = Numeric<Elem>::pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
      ds_a[kk][0] = Numeric<Elem>::pack2(dp[2 * kk][0], dp[2 * kk][1]);
      ds_a[kk][1] = Numeric<Elem>::pack2(dp[2 * kk][2], dp[2 * kk][3]);
      ds_a[kk][2] = Numeric<Elem>::pack2(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
      ds_a[kk][3] = Numeric<Elem>::pack2(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
    }

    // dS^T to this step's dS buffer: [key][query], queries in column blocks of
    // 64 (the layout a TMA would write), this warpgroup's 64 key rows. The
    // buffer was last read by the dQ GEMMs two steps ago, which both
    // warpgroups completed before the previous step's kBarDsFull.
    // Fragment (kk, i): n8 query tile 2kk + i / 2, key row key_row + 8 (i % 2).
#pragma unroll
    for (int kk = 0; kk < kKStepsQ; ++kk)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int j = 2 * kk + i / 2;
        const int row = 64 * wg + key_row + 8 * (i % 2);
        *reinterpret_cast<uint32_t*>(ds_t + (j / 8) * Traits::kDsBlockBytes +
                                     swizzled_chunk(row, j % 8) + (lane % 4) * 4) = ds_a[kk][i];
      }
    // The generic-proxy dS writes must be visible to the async proxy (the
    // other warpgroup's wgmma reads them) before the barrier releases it.
    fence_proxy_async_smem();

    // dV_w += P^T dO: dO [query][d] is the MN-major B operand (the forward's V
    // in P V); query step kk is 16 rows (2 KB) on, column blocks kQBlockBytes
    // apart.
    wgmma_fence();  // p_a, ds_a were just written
#pragma unroll
    for (int kk = 0; kk < kKStepsQ; ++kk) {
      Wgmma<kHeadDim, Elem>::template rs<true>(
          reinterpret_cast<float(&)[kHeadDim / 2]>(acc_dv), p_a[kk],
          make_smem_desc(do_t + kk * 16 * 128, Traits::kQBlockBytes, 1024, Swizzle::k128B), true);
    }
    wgmma_commit_group();

    // Both warpgroups' dS^T rows are in the buffer; step + 1's statistics
    // too (each thread's copy done before it), and step - 1's buffer is free.
    cp_async_wait<0>();
    bar_sync(kBarDsFull, kConsumerThreads);
    if (step + 2 < num_steps) copy_stats(step + 2);

    // dQ part = dS K over all 128 keys: A = dS, stored [key][query], is the
    // M-major A operand (kTransA); B = K [key][d] is MN-major (kTransB). Key
    // step kk is 16 rows (2 KB) on in both. This warpgroup's part: queries
    // 64w.. (kDqSplitRows: A's column block w) or head-dim columns 64w.. (B's
    // column block w).
    float acc_dq[Traits::kDqAccRegs];
    {
      const char* a_base = ds_t + (Traits::kDqSplitRows ? wg * Traits::kDsBlockBytes : 0);
      const char* b_base = smem_k + (Traits::kDqSplitRows ? 0 : wg * Traits::kKVBlockBytes);
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        Wgmma<64, Elem>::template ss</*kTransB=*/true, /*kTransA=*/true>(
            acc_dq,
            make_smem_desc(a_base + kk * 16 * 128, Traits::kDsBlockBytes, 1024, Swizzle::k128B),
            make_smem_desc(b_base + kk * 16 * 128, Traits::kKVBlockBytes, 1024, Swizzle::k128B),
            kk > 0);
      }
    }
    wgmma_commit_group();

    // dK_w += dS^T Q, as dV with Q for dO.
#pragma unroll
    for (int kk = 0; kk < kKStepsQ; ++kk) {
      Wgmma<kHeadDim, Elem>::template rs<true>(
          reinterpret_cast<float(&)[kHeadDim / 2]>(acc_dk), ds_a[kk],
          make_smem_desc(q_t + kk * 16 * 128, Traits::kQBlockBytes, 1024, Swizzle::k128B), true);
    }
    wgmma_commit_group();

    // Groups complete in order: with at most one pending, dV and dQ are done
    // and the dQ part goes out while dK runs.
    wgmma_wait_group<1>();
    wgmma_fence_operands(acc_dq);
    {
      float* slice = params.dq_accum +
                     ((static_cast<int64_t>(b) * params.heads_q + h) * params.seqlen_q_rounded +
                      m0) * kHeadDim;
#pragma unroll
      for (int g = 0; g < Order::kGroups; ++g) {
        atomicAdd(reinterpret_cast<float4*>(slice + Order::index(wg, g, tid_wg)),
                  make_float4(acc_dq[4 * g], acc_dq[4 * g + 1], acc_dq[4 * g + 2],
                              acc_dq[4 * g + 3]));
      }
    }
    wgmma_wait_group<0>();
    wgmma_fence_operands(reinterpret_cast<float(&)[kHeadDim / 2]>(acc_dk));
    wgmma_fence_operands(reinterpret_cast<float(&)[kHeadDim / 2]>(acc_dv));
    // Every wgmma reading this stage's Q and dO is complete: the producer may
    // refill it once all 8 consumer warps arrived.
    if (lane == 0) mbarrier_arrive(&qdo_empty[st]);
  }

  // ---- epilogue ----
  // A split group: this part's fp32 sums (dK times scale) straight from the
  // registers into its slice of dk_partial / dv_partial, (gqa_split, batch,
  // heads_kv, seqlen_k, head_dim); every row < seqlen_k and column <
  // head_dim, zeros included, so the reduce (sm80/bwd_kernel.cuh
  // bwd_dkv_reduce_kernel) reads no stale workspace. No shared memory: no
  // barrier (both warpgroups take this branch).
  if constexpr (kGqaSplit) {
    // The part and kv head again from the block index, read anew (volatile):
    // not held in registers through the loop, where the softcap builds have
    // none to spare.
    uint32_t block, part_e;
    asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(block));
    asm volatile("mov.u32 %0, %%ctaid.y;" : "=r"(part_e));
    const int bh_kv_e = static_cast<int>(block) / ((params.seqlen_k + kBlockN - 1) / kBlockN);
    const int64_t slice =
        (static_cast<int64_t>(part_e) * params.batch * params.heads_kv + bh_kv_e) *
        params.seqlen_k * params.head_dim;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int key_g = n0 + 64 * wg + key_row + 8 * r;
      if (key_g >= params.seqlen_k) continue;
      float* dk_row = params.dk_partial + slice + static_cast<int64_t>(key_g) * params.head_dim;
      float* dv_row = params.dv_partial + slice + static_cast<int64_t>(key_g) * params.head_dim;
#pragma unroll
      for (int j = 0; j < kNTilesD; ++j) {
        // head_dim is a multiple of 8 and col even: col < head_dim covers col + 1.
        const int col = 8 * j + quad_col;
        if (col < params.head_dim) {
          *reinterpret_cast<float2*>(dk_row + col) =
              make_float2(acc_dk[j][2 * r] * params.scale, acc_dk[j][2 * r + 1] * params.scale);
          *reinterpret_cast<float2*>(dv_row + col) =
              make_float2(acc_dv[j][2 * r], acc_dv[j][2 * r + 1]);
        }
      }
    }
    return;
  }
  // Both warpgroups' wgmmas read all of K (the dQ GEMMs) and their own rows of
  // V: every one of them is complete before the 16-bit dK and dV overwrite
  // this warpgroup's rows of the K and V buffers.
  bar_sync(kBarEpilogue, kConsumerThreads);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = 64 * wg + key_row + 8 * r;
#pragma unroll
    for (int j = 0; j < kNTilesD; ++j) {
      const int off = (j / 8) * Traits::kKVBlockBytes + swizzled_chunk(row, j % 8) + (lane % 4) * 4;
      *reinterpret_cast<uint32_t*>(smem_k + off) = Numeric<Elem>::pack2(
          acc_dk[j][2 * r] * params.scale, acc_dk[j][2 * r + 1] * params.scale);
      *reinterpret_cast<uint32_t*>(smem_v + off) =
          Numeric<Elem>::pack2(acc_dv[j][2 * r], acc_dv[j][2 * r + 1]);
    }
  }
  bar_sync(kBarStaged + wg, 128);  // this warpgroup's rows only
  // 16-byte stores of the rows and columns that exist (dk and dv rows are
  // 16-byte aligned: the host checked).
  uint16_t* dk_base = static_cast<uint16_t*>(params.dk) + b * params.dk_batch_stride +
                      h_kv * params.dk_head_stride;
  uint16_t* dv_base = static_cast<uint16_t*>(params.dv) + b * params.dv_batch_stride +
                      h_kv * params.dv_head_stride;
  constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per row
  const int dchunks = params.head_dim / 8;
  for (int i = tid_wg; i < 64 * kChunks; i += 128) {
    const int row = i / kChunks;
    const int c = i % kChunks;
    const int key_g = n0 + 64 * wg + row;
    if (key_g < params.seqlen_k && c < dchunks) {
      const int off = (c / 8) * Traits::kKVBlockBytes + swizzled_chunk(64 * wg + row, c % 8);
      *reinterpret_cast<uint4*>(dk_base + static_cast<int64_t>(key_g) * params.dk_row_stride +
                                c * 8) = *reinterpret_cast<const uint4*>(smem_k + off);
      *reinterpret_cast<uint4*>(dv_base + static_cast<int64_t>(key_g) * params.dv_row_stride +
                                c * 8) = *reinterpret_cast<const uint4*>(smem_v + off);
    }
  }
#endif  // FLASHCORE_SM90A
}

// Postprocess: query block m of (b, h), one thread per main-kernel consumer
// thread (2 x 128), each reading back the values that thread added
// (DqAccumOrder), times scale, staged as a 16-bit tile for 16-byte stores of
// the rows < seqlen_q and columns < head_dim with dq's strides. Plain CUDA:
// compiled for every target, launched only where the main kernel runs.
template <typename Elem, typename Traits>
__global__ void __launch_bounds__(128 * Traits::kConsumerWGs)
    bwd_postprocess_kernel(const BwdParams params, bool grads_aligned16) {
  using Rows = BwdRowTraits<Traits::kHeadDim>;
  using Layout = TileLayout<Rows>;
  using Order = DqAccumOrder<Traits>;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kThreads = 128 * Traits::kConsumerWGs;
  extern __shared__ __align__(128) char smem[];
  const int tid = threadIdx.x;
  const int wg = tid / 128;
  const int tid_wg = tid % 128;
  const int lane = tid % 32;
  const int num_m = (params.seqlen_q + kBlockM - 1) / kBlockM;
  const int bh = static_cast<int>(blockIdx.x) / num_m;
  const int m0 = (static_cast<int>(blockIdx.x) % num_m) * kBlockM;
  const int b = bh / params.heads_q;
  const int h = bh % params.heads_q;
  const float* slice =
      params.dq_accum +
      (static_cast<int64_t>(bh) * params.seqlen_q_rounded + m0) * Traits::kHeadDim;

  // The m64n64 accumulator of the thread's main-kernel twin, as one m16 tile
  // of its warp's 16 rows (stage_acc_tile's [m16][n8][4] form).
  float acc[1][Order::kGroups][4];
#pragma unroll
  for (int g = 0; g < Order::kGroups; ++g) {
    const float4 x = *reinterpret_cast<const float4*>(slice + Order::index(wg, g, tid_wg));
    acc[0][g][0] = x.x, acc[0][g][1] = x.y, acc[0][g][2] = x.z, acc[0][g][3] = x.w;
  }
  stage_acc_tile<Elem, Layout, 1, Order::kGroups>(
      acc, params.scale, smem, Order::wg_row0(wg) + 16 * (tid_wg / 32), Order::wg_col0(wg), lane);
  __syncthreads();
  uint16_t* dq_base = static_cast<uint16_t*>(params.dq) + b * params.dq_batch_stride +
                      h * params.dq_head_stride;
  store_grad_tile<Rows, kBlockM, kThreads>(dq_base, params.dq_row_stride, smem, m0,
                                           params.seqlen_q, params.head_dim / 8, tid,
                                           grads_aligned16);
}

}  // namespace sm90
}  // namespace flashcore
