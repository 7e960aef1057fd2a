// Launch of the mma.sync forward kernel for one config, and the per-head-dim
// switch over the catalog that the instantiation files (inst/) compile.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>

#include "configs.h"
#include "flashcore/params.h"
#include "flashcore/sm80/fwd_kernel.cuh"

namespace flashcore {

template <DType kDType>
struct ElemOf;
template <>
struct ElemOf<DType::kFloat16> {
  using type = __half;
};
template <>
struct ElemOf<DType::kBFloat16> {
  using type = __nv_bfloat16;
};

template <typename Elem, typename Traits, bool kHasMask, bool kSoftcap, bool kAligned16>
cudaError_t launch_fwd(const FwdParams& params, cudaStream_t stream, int device, bool pdl) {
  const int64_t num_m_blocks = (params.seqlen_q + Traits::kBlockM - 1) / Traits::kBlockM;
  const int64_t grid = num_m_blocks * params.batch * params.heads_q;
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  auto kernel = fwd_kernel<Elem, Traits, kHasMask, kSoftcap, kAligned16>;
  if constexpr (Traits::kSmemBytes > 48 * 1024) {
    // Over 48 KB of dynamic shared memory needs a per-kernel opt-in, once per device.
    static std::atomic<uint64_t> opted_in{0};
    const uint64_t bit = uint64_t{1} << (device & 63);
    if ((opted_in.load(std::memory_order_relaxed) & bit) == 0) {
      const cudaError_t err = cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSmemBytes);
      if (err != cudaSuccess) return err;
      opted_in.fetch_or(bit, std::memory_order_relaxed);
    }
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(grid));
  config.blockDim = dim3(Traits::kNThreads);
  config.dynamicSmemBytes = Traits::kSmemBytes;
  config.stream = stream;
  cudaLaunchAttribute attr;
  if (pdl) {
    // Programmatic dependent launch: the kernel may start while the previous
    // kernel in the stream finishes; it waits (griddepcontrol.wait) before its
    // first global read.
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attr;
    config.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&config, kernel, params);
}

// Whether a call needs the masked kernel: a causal mask or a window bound that
// cuts into the keys (the host clamps unbounded sides to max(seqlen_q,
// seqlen_k), which no row's range reaches past).
inline bool fwd_has_mask(const FwdParams& p) {
  const int unbounded = p.seqlen_q > p.seqlen_k ? p.seqlen_q : p.seqlen_k;
  return p.window_left < unbounded || p.window_right < unbounded;
}

// The kernel variants of one config: the runtime mask, softcap and alignment
// flags become template arguments here and nowhere else. Softcap is a template
// flag, not a runtime branch: the branch alone made the unmasked head-dim-64
// kernels 5-28% slower on H200 (ptxas scheduled the whole loop around it;
// NOTES.md, v7). Rows that are not 16-byte aligned (odd strides or storage
// offsets; rare) take the element-wise loads of the masked kernel, which is
// exact for unmasked calls too (their window covers every key), so they add
// two kernels per config instead of four.
template <typename Elem, typename Traits>
cudaError_t launch_variant(const FwdParams& params, cudaStream_t stream, int device, bool pdl) {
  const bool softcap = params.softcap != 0.f;
  if (!params.aligned16) {
    return softcap ? launch_fwd<Elem, Traits, true, true, false>(params, stream, device, pdl)
                   : launch_fwd<Elem, Traits, true, false, false>(params, stream, device, pdl);
  }
  const bool masked = fwd_has_mask(params);
  if (softcap) {
    return masked ? launch_fwd<Elem, Traits, true, true, true>(params, stream, device, pdl)
                  : launch_fwd<Elem, Traits, false, true, true>(params, stream, device, pdl);
  }
  return masked ? launch_fwd<Elem, Traits, true, false, true>(params, stream, device, pdl)
                : launch_fwd<Elem, Traits, false, false, true>(params, stream, device, pdl);
}

// Every config of tile head dim kHeadDim for one element type.
template <DType kDType, int kHeadDim>
cudaError_t run_fwd_hdim(const FwdParams& params, int config, cudaStream_t stream, int device,
                         bool pdl_capable) {
  using Elem = typename ElemOf<kDType>::type;
  switch (static_cast<FwdConfig>(config)) {
#define FLASHCORE_X(name, D, BM, BN, W, MB, G, RQ, TP, PDL)                                   \
  case FwdConfig::name:                                                                       \
    if constexpr (D == kHeadDim) {                                                            \
      using Traits = FwdTraitsOf<D, BM, BN, W, MB, G, QReload::RQ, TP>;                      \
      return launch_variant<Elem, Traits>(params, stream, device, PDL && pdl_capable);        \
    }                                                                                         \
    break;
    FLASHCORE_FWD_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
    default: break;
  }
  return cudaErrorInvalidValue;
}

}  // namespace flashcore
