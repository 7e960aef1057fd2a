// Launch of the Hopper backward (sm90/bwd_kernel.cuh) for one config: the
// mma.sync family's preprocess, the wgmma main kernel with the TMA
// descriptors of q, k, v and dout, and this family's postprocess; and the
// per-head-dim switch over FLASHCORE_BWD_SM90_CONFIGS that inst/bwd_sm90_*.cu
// compile.
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>

#include "bwd_configs.h"
#include "bwd_launch.cuh"  // rows_aligned16, launch_plain, opt_in_smem, the split's helpers
#include "flashcore/params.h"
#include "flashcore/sm80/bwd_kernel.cuh"
#include "flashcore/sm90/bwd_kernel.cuh"
#include "fwd_sm90_launch.cuh"  // encode_qkv_maps, encode_map, ElemOf, fwd_has_mask

namespace flashcore {
namespace sm90 {

template <typename Elem, typename Traits, bool kHasMask, bool kSoftcap, bool kGqaSplit>
cudaError_t launch_bwd_sm90_main(const BwdArgs& args, cudaStream_t stream, int device) {
  const BwdParams& p = args.p;
  const int64_t num_n_blocks = (p.seqlen_k + Traits::kBlockN - 1) / Traits::kBlockN;
  const int64_t grid = num_n_blocks * p.batch * p.heads_kv;  // x; the split's parts: y
  if (grid == 0) return cudaSuccess;
  if (grid > 0x7fffffff || p.gqa_split > 65535) return cudaErrorInvalidConfiguration;
  auto kernel = bwd_kernel<Elem, Traits, kHasMask, kSoftcap, kGqaSplit>;
  static std::atomic<uint64_t> opted_in{0};
  const cudaError_t err = opt_in_smem(kernel, Traits::kSmemBytes, device, opted_in);
  if (err != cudaSuccess) return err;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(grid), static_cast<unsigned>(p.gqa_split));
  config.blockDim = dim3(Traits::kNThreads);
  config.dynamicSmemBytes = Traits::kSmemBytes;
  config.stream = stream;
  return cudaLaunchKernelEx(&config, kernel, args);
}

// The main kernel's build for the call's mask and softcap. The split builds
// have no softcap (host/checks.cpp refuses it: the unmasked one spilled in
// its key/value loop at the consumers' 240 registers).
template <typename Elem, typename Traits, bool kGqaSplit>
cudaError_t launch_bwd_sm90_variant(const BwdArgs& args, cudaStream_t stream, int device) {
  const bool masked = fwd_has_mask(args.p);
  if constexpr (kGqaSplit) {
    if (args.p.softcap != 0.f) return cudaErrorInvalidValue;
  } else if (args.p.softcap != 0.f) {
    return masked ? launch_bwd_sm90_main<Elem, Traits, true, true, kGqaSplit>(args, stream, device)
                  : launch_bwd_sm90_main<Elem, Traits, false, true, kGqaSplit>(args, stream, device);
  }
  return masked ? launch_bwd_sm90_main<Elem, Traits, true, false, kGqaSplit>(args, stream, device)
                : launch_bwd_sm90_main<Elem, Traits, false, false, kGqaSplit>(args, stream, device);
}

// Preprocess, main kernel and postprocess of one Hopper config on `stream`.
// Refuses (cudaErrorInvalidValue) what this family does not serve; api/ops.cpp
// and host/checks.cpp raise on each of these first, with the rule.
template <typename Elem, typename Traits>
cudaError_t launch_bwd_sm90(const BwdParams& params, DType dtype, cudaStream_t stream,
                            int device) {
  if (params.seqlen_q_rounded % kBwdRowRound != 0 ||
      params.seqlen_q_rounded < params.seqlen_q) {
    return cudaErrorInvalidValue;  // not the workspace bwd_workspace() sized
  }
  if (params.dq_accum == nullptr || reinterpret_cast<uintptr_t>(params.dq_accum) % 16 != 0) {
    return cudaErrorInvalidValue;  // float4 zeroing and atomics
  }
  if (reinterpret_cast<uintptr_t>(params.lse_log2) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(params.dpsum) % 16 != 0) {
    return cudaErrorInvalidValue;  // float2 reads of the rows (bwd_workspace.h aligns to 256)
  }
  if (params.deterministic) {
    return cudaErrorInvalidValue;  // the mma.sync family's mode only
  }
  if (!gqa_split_params_ok(params)) return cudaErrorInvalidValue;
  // TMA reads q, k, v and dout; the epilogues write dk, dv (and the
  // postprocess dq, either way) in 16-byte chunks.
  if (!params.aligned16 ||
      !rows_aligned16(params.dout, params.do_batch_stride, params.do_head_stride,
                      params.do_row_stride) ||
      !rows_aligned16(params.dk, params.dk_batch_stride, params.dk_head_stride,
                      params.dk_row_stride) ||
      !rows_aligned16(params.dv, params.dv_batch_stride, params.dv_head_stride,
                      params.dv_row_stride)) {
    return cudaErrorInvalidValue;
  }
  BwdParams p = params;
  const int64_t bh = int64_t{params.batch} * params.heads_q;

  // 1. Preprocess: D', lse_log2 and a zeroed dq_accum, as for the mma.sync
  // configs of the same tile head dim (dq_accum rows of Traits::kHeadDim).
  {
    const cudaError_t err = launch_bwd_preprocess<Elem, Traits::kHeadDim>(p, stream, true);
    if (err != cudaSuccess) return err;
  }

  // 2. Main kernel: boxes of block M query rows (Q, dO) and 128 keys (K, V).
  {
    BwdArgs args;
    args.p = params;
    cudaError_t err =
        encode_qkv_maps(&args.q, &args.k, &args.v, p, dtype, Traits::kBlockM, Traits::kBlockN);
    if (err == cudaSuccess) {
      err = encode_map(&args.dout, p.dout, dtype, p.head_dim, p.seqlen_q, p.heads_q, p.batch,
                       p.do_row_stride, p.do_head_stride, p.do_batch_stride, Traits::kBlockM);
    }
    if (err != cudaSuccess) return err;
    err = p.gqa_split > 1 ? launch_bwd_sm90_variant<Elem, Traits, true>(args, stream, device)
                          : launch_bwd_sm90_variant<Elem, Traits, false>(args, stream, device);
    if (err != cudaSuccess) return err;
  }

  // 2b. A split group's dK / dV: the parts' sums, in order (the mma.sync
  // family's reduce; dk and dv rows are 16-byte aligned, checked above).
  if (params.gqa_split > 1) {
    const cudaError_t err = launch_bwd_dkv_reduce<Elem>(p, /*dkv_aligned16=*/true, stream);
    if (err != cudaSuccess) return err;
  }

  // 3. Postprocess: dq from this family's dq_accum order.
  bool dq_aligned16 = rows_aligned16(params.dq, params.dq_batch_stride, params.dq_head_stride,
                                     params.dq_row_stride);
  void* args[] = {&p, &dq_aligned16};
  const int64_t num_m = (params.seqlen_q + Traits::kBlockM - 1) / Traits::kBlockM;
  constexpr int kPostSmem = Traits::kBlockM * Traits::kHeadDim * 2;  // one 16-bit dQ tile
  return launch_plain(reinterpret_cast<const void*>(bwd_postprocess_kernel<Elem, Traits>),
                      bh * num_m, 128 * Traits::kConsumerWGs, kPostSmem, stream, args);
}

}  // namespace sm90

// Every Hopper-family backward config of tile head dim kHeadDim for one
// element type.
template <DType kDType, int kHeadDim>
cudaError_t run_bwd_sm90_hdim(const BwdParams& params, int config, cudaStream_t stream,
                              int device) {
  using Elem = typename ElemOf<kDType>::type;
  switch (static_cast<BwdConfig>(config)) {
#define FLASHCORE_X(name, D, BM)                                                             \
  case BwdConfig::name:                                                                      \
    if constexpr (D == kHeadDim) {                                                           \
      return sm90::launch_bwd_sm90<Elem, sm90::BwdTraits<D, BM>>(params, kDType, stream,     \
                                                                 device);                    \
    }                                                                                        \
    break;
    FLASHCORE_BWD_SM90_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
    default: break;
  }
  return cudaErrorInvalidValue;
}

}  // namespace flashcore
