// Launch of the mma.sync backward kernels (preprocess, main, the dK / dV reduce
// of a split GQA group, postprocess; in
// deterministic mode preprocess, main without dQ, dQ kernel) for one config,
// and the per-head-dim switch over the backward catalog that the instantiation
// files (inst/bwd_*.cu) compile.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>

#include "bwd_configs.h"
#include "flashcore/params.h"
#include "flashcore/sm80/bwd_dq_kernel.cuh"
#include "flashcore/sm80/bwd_kernel.cuh"
#include "fwd_launch.cuh"  // ElemOf, fwd_has_mask

namespace flashcore {

// Whether every row of a (batch, heads, rows, head_dim) tensor starts on a
// 16-byte boundary: an aligned base and strides that are multiples of 8
// elements.
inline bool rows_aligned16(const void* ptr, int64_t batch_stride, int64_t head_stride,
                           int64_t row_stride) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && batch_stride % 8 == 0 &&
         head_stride % 8 == 0 && row_stride % 8 == 0;
}

inline cudaError_t launch_plain(const void* kernel, int64_t grid, int threads, int smem,
                                cudaStream_t stream, void** args) {
  if (grid == 0) return cudaSuccess;
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  return cudaLaunchKernel(kernel, dim3(static_cast<unsigned>(grid)), dim3(threads), args, smem,
                          stream);
}

// Over 48 KB of dynamic shared memory needs a per-kernel opt-in, once per
// device; `opted_in` is the kernel's own bit set of devices.
template <typename Kernel>
cudaError_t opt_in_smem(Kernel kernel, int smem_bytes, int device,
                        std::atomic<uint64_t>& opted_in) {
  if (smem_bytes <= 48 * 1024) return cudaSuccess;
  const uint64_t bit = uint64_t{1} << (device & 63);
  if ((opted_in.load(std::memory_order_relaxed) & bit) == 0) {
    const cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
    if (err != cudaSuccess) return err;
    opted_in.fetch_or(bit, std::memory_order_relaxed);
  }
  return cudaSuccess;
}

template <typename Elem, typename Traits, bool kHasMask, bool kSoftcap, bool kAligned16,
          bool kComputeDq, bool kGqaSplit>
cudaError_t launch_bwd_main(const BwdParams& params, cudaStream_t stream, int device,
                            bool grads_aligned16) {
  const int64_t num_n_blocks = (params.seqlen_k + Traits::kBlockN - 1) / Traits::kBlockN;
  const int64_t grid = num_n_blocks * params.batch * params.heads_kv * params.gqa_split;
  auto kernel = bwd_kernel<Elem, Traits, kHasMask, kSoftcap, kAligned16, kComputeDq, kGqaSplit>;
  static std::atomic<uint64_t> opted_in{0};
  const cudaError_t err = opt_in_smem(kernel, Traits::kSmemBytes, device, opted_in);
  if (err != cudaSuccess) return err;
  BwdParams p = params;
  void* args[] = {&p, &grads_aligned16};
  return launch_plain(reinterpret_cast<const void*>(kernel), grid, Traits::kNThreads,
                      Traits::kSmemBytes, stream, args);
}

// The preprocess (bwd_kernel.cuh) of tile head dim kHeadDim for `params`:
// D' and lse_log2 for every row < seqlen_q_rounded, and the zeroed dq_accum
// when zero_dq_accum (every mode but the deterministic one, which has none).
// Shared by the mma.sync and the Hopper backward launchers.
template <typename Elem, int kHeadDim>
cudaError_t launch_bwd_preprocess(BwdParams& params, cudaStream_t stream, bool zero_dq_accum) {
  const bool o_do_aligned =
      rows_aligned16(params.o, params.o_batch_stride, params.o_head_stride,
                     params.o_row_stride) &&
      rows_aligned16(params.dout, params.do_batch_stride, params.do_head_stride,
                     params.do_row_stride);
  const void* pre;
  if (zero_dq_accum) {
    pre = o_do_aligned
              ? reinterpret_cast<const void*>(bwd_preprocess_kernel<Elem, kHeadDim, true, true>)
              : reinterpret_cast<const void*>(bwd_preprocess_kernel<Elem, kHeadDim, false, true>);
  } else {
    pre = o_do_aligned
              ? reinterpret_cast<const void*>(bwd_preprocess_kernel<Elem, kHeadDim, true, false>)
              : reinterpret_cast<const void*>(bwd_preprocess_kernel<Elem, kHeadDim, false, false>);
  }
  void* args[] = {&params};
  const int64_t bh = int64_t{params.batch} * params.heads_q;
  return launch_plain(pre, bh * (params.seqlen_q_rounded / kBwdPreRows), kBwdPreThreads, 0,
                      stream, args);
}

// The deterministic mode's dQ kernel (bwd_dq_kernel.cuh): one block per query
// block of one (b, h).
template <typename Elem, typename DqTraits, bool kHasMask, bool kSoftcap, bool kAligned16>
cudaError_t launch_bwd_dq(const BwdParams& params, cudaStream_t stream, int device,
                          bool dq_aligned16) {
  const int64_t num_m = (params.seqlen_q + DqTraits::kBlockM - 1) / DqTraits::kBlockM;
  const int64_t grid = num_m * params.batch * params.heads_q;
  auto kernel = bwd_dq_kernel<Elem, DqTraits, kHasMask, kSoftcap, kAligned16>;
  static std::atomic<uint64_t> opted_in{0};
  const cudaError_t err = opt_in_smem(kernel, DqTraits::kSmemBytes, device, opted_in);
  if (err != cudaSuccess) return err;
  BwdParams p = params;
  void* args[] = {&p, &dq_aligned16};
  return launch_plain(reinterpret_cast<const void*>(kernel), grid, DqTraits::kNThreads,
                      DqTraits::kSmemBytes, stream, args);
}

// The dQ kernel's variants, by the main kernel's rule (launch_bwd_variant).
template <typename Elem, typename DqTraits>
cudaError_t launch_bwd_dq_variant(const BwdParams& params, cudaStream_t stream, int device,
                                  bool inputs_aligned16, bool dq_aligned16) {
  const bool softcap = params.softcap != 0.f;
  if (!inputs_aligned16) {
    return softcap ? launch_bwd_dq<Elem, DqTraits, true, true, false>(params, stream, device,
                                                                     dq_aligned16)
                   : launch_bwd_dq<Elem, DqTraits, true, false, false>(params, stream, device,
                                                                      dq_aligned16);
  }
  const bool masked = fwd_has_mask(params);
  if (softcap) {
    return masked ? launch_bwd_dq<Elem, DqTraits, true, true, true>(params, stream, device,
                                                                   dq_aligned16)
                  : launch_bwd_dq<Elem, DqTraits, false, true, true>(params, stream, device,
                                                                    dq_aligned16);
  }
  return masked ? launch_bwd_dq<Elem, DqTraits, true, false, true>(params, stream, device,
                                                                  dq_aligned16)
                : launch_bwd_dq<Elem, DqTraits, false, false, true>(params, stream, device,
                                                                   dq_aligned16);
}

// The main kernel's variants: the runtime mask, softcap and alignment flags
// become template arguments here and nowhere else (the forward's scheme,
// host/fwd_launch.cuh: rows that are not 16-byte aligned take the masked
// kernel's element-wise loads, exact for unmasked calls too); kComputeDq and
// kGqaSplit come from the mode and the group split (launch_bwd).
// The GQA split's parameters, for both families: the parts split the group
// evenly, and with more than one, the partials are there for the reduce's
// float4 reads (bwd_workspace.h aligns them).
inline bool gqa_split_params_ok(const BwdParams& params) {
  if (params.gqa_split < 1 || params.q_per_kv % params.gqa_split != 0) return false;
  return params.gqa_split == 1 ||
         (params.dk_partial != nullptr && params.dv_partial != nullptr &&
          reinterpret_cast<uintptr_t>(params.dk_partial) % 16 == 0 &&
          reinterpret_cast<uintptr_t>(params.dv_partial) % 16 == 0);
}

// A split group's dK / dV: the parts' sums, in order (bwd_dkv_reduce_kernel).
template <typename Elem>
cudaError_t launch_bwd_dkv_reduce(BwdParams& params, bool dkv_aligned16, cudaStream_t stream) {
  void* args[] = {&params, &dkv_aligned16};
  const int64_t chunks =
      int64_t{params.batch} * params.heads_kv * params.seqlen_k * (params.head_dim / 8);
  return launch_plain(reinterpret_cast<const void*>(bwd_dkv_reduce_kernel<Elem>),
                      (chunks + kBwdReduceThreads - 1) / kBwdReduceThreads, kBwdReduceThreads, 0,
                      stream, args);
}

template <typename Elem, typename Traits, bool kComputeDq, bool kGqaSplit>
cudaError_t launch_bwd_variant(const BwdParams& params, cudaStream_t stream, int device,
                               bool inputs_aligned16, bool grads_aligned16) {
  const bool softcap = params.softcap != 0.f;
  if (!inputs_aligned16) {
    return softcap ? launch_bwd_main<Elem, Traits, true, true, false, kComputeDq, kGqaSplit>(
                         params, stream, device, grads_aligned16)
                   : launch_bwd_main<Elem, Traits, true, false, false, kComputeDq, kGqaSplit>(
                         params, stream, device, grads_aligned16);
  }
  const bool masked = fwd_has_mask(params);
  if (softcap) {
    return masked ? launch_bwd_main<Elem, Traits, true, true, true, kComputeDq, kGqaSplit>(
                        params, stream, device, grads_aligned16)
                  : launch_bwd_main<Elem, Traits, false, true, true, kComputeDq, kGqaSplit>(
                        params, stream, device, grads_aligned16);
  }
  return masked ? launch_bwd_main<Elem, Traits, true, false, true, kComputeDq, kGqaSplit>(
                      params, stream, device, grads_aligned16)
                : launch_bwd_main<Elem, Traits, false, false, true, kComputeDq, kGqaSplit>(
                      params, stream, device, grads_aligned16);
}

// Preprocess, main kernel, the dK / dV reduce of a split GQA group, and the
// postprocess of one config on `stream`; in deterministic mode
// (params.deterministic) the main kernel skips dQ and the dQ kernel
// (bwd_dq_kernel.cuh) replaces the postprocess, with no dq_accum.
template <typename Elem, typename Traits>
cudaError_t launch_bwd(const BwdParams& params, cudaStream_t stream, int device) {
  // The dQ kernel of this tile head dim; run_bwd refuses a config over the
  // device's shared memory by the main kernel's size, which covers it.
  using DqTraits = BwdDqTraitsOf<Traits::kHeadDim>;
  static_assert(DqTraits::kSmemBytes <= Traits::kSmemBytes,
                "the dQ kernel must fit wherever its main kernel does");
  if (params.seqlen_q_rounded % kBwdRowRound != 0 ||
      params.seqlen_q_rounded < params.seqlen_q) {
    return cudaErrorInvalidValue;  // not the workspace bwd_workspace() sized
  }
  if (reinterpret_cast<uintptr_t>(params.dq_accum) % 16 != 0) {
    return cudaErrorInvalidValue;  // float4 zeroing and atomics (params.h)
  }
  if (!gqa_split_params_ok(params)) return cudaErrorInvalidValue;
  BwdParams p = params;
  const int64_t bh = int64_t{params.batch} * params.heads_q;
  const bool det = params.deterministic;

  // 1. Preprocess.
  {
    const cudaError_t err = launch_bwd_preprocess<Elem, Traits::kHeadDim>(p, stream, !det);
    if (err != cudaSuccess) return err;
  }

  // 2. Main kernel. Its tile loads need q, k, v (params.aligned16) and dout
  // rows 16-byte aligned; its dK / dV stores need dk and dv rows aligned.
  const bool inputs_aligned16 =
      params.aligned16 && rows_aligned16(params.dout, params.do_batch_stride,
                                         params.do_head_stride, params.do_row_stride);
  const bool dkv_aligned16 =
      rows_aligned16(params.dk, params.dk_batch_stride, params.dk_head_stride,
                     params.dk_row_stride) &&
      rows_aligned16(params.dv, params.dv_batch_stride, params.dv_head_stride,
                     params.dv_row_stride);
  {
    const cudaError_t err =
        det ? (params.gqa_split > 1
                   ? launch_bwd_variant<Elem, Traits, /*kComputeDq=*/false, /*kGqaSplit=*/true>(
                         params, stream, device, inputs_aligned16, dkv_aligned16)
                   : launch_bwd_variant<Elem, Traits, false, false>(
                         params, stream, device, inputs_aligned16, dkv_aligned16))
            : (params.gqa_split > 1
                   ? launch_bwd_variant<Elem, Traits, true, true>(params, stream, device,
                                                                  inputs_aligned16, dkv_aligned16)
                   : launch_bwd_variant<Elem, Traits, true, false>(
                         params, stream, device, inputs_aligned16, dkv_aligned16));
    if (err != cudaSuccess) return err;
  }

  // 2b. A split group's dK / dV: the parts' sums, in order.
  if (params.gqa_split > 1) {
    const cudaError_t err = launch_bwd_dkv_reduce<Elem>(p, dkv_aligned16, stream);
    if (err != cudaSuccess) return err;
  }

  bool dq_aligned16 = rows_aligned16(params.dq, params.dq_batch_stride, params.dq_head_stride,
                                     params.dq_row_stride);
  // 3. Deterministic mode: the dQ kernel writes dq.
  if (det) {
    return launch_bwd_dq_variant<Elem, DqTraits>(params, stream, device, inputs_aligned16,
                                                 dq_aligned16);
  }

  // 3. Postprocess.
  void* args[] = {&p, &dq_aligned16};
  const int64_t num_m = (params.seqlen_q + Traits::kBlockM - 1) / Traits::kBlockM;
  return launch_plain(reinterpret_cast<const void*>(bwd_postprocess_kernel<Elem, Traits>),
                      bh * num_m, Traits::kNThreads, Traits::kPostSmemBytes, stream, args);
}

// Every backward config of tile head dim kHeadDim for one element type.
template <DType kDType, int kHeadDim>
cudaError_t run_bwd_hdim(const BwdParams& params, int config, cudaStream_t stream, int device) {
  using Elem = typename ElemOf<kDType>::type;
  switch (static_cast<BwdConfig>(config)) {
#define FLASHCORE_X(name, D, BM, BN, W, SM, KN, QM, QS, DOS)          \
  case BwdConfig::name:                                               \
    if constexpr (D == kHeadDim) {                                    \
      using Traits = BwdTraitsOf<D, BM, BN, W, SM, KN, QM, QS, DOS>;  \
      return launch_bwd<Elem, Traits>(params, stream, device);     \
    }                                                              \
    break;
    FLASHCORE_BWD_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
    default: break;
  }
  return cudaErrorInvalidValue;
}

}  // namespace flashcore
