// Launch of the Hopper forward family (sm90/fwd_kernel.cuh): the TMA
// descriptors of q, k and v, the kernel variants, and the per-head-dim switch
// over FLASHCORE_FWD_SM90_CONFIGS that inst/fwd_sm90_*.cu compile.
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "configs.h"
#include "flashcore/params.h"
#include "flashcore/sm90/fwd_kernel.cuh"
#include "fwd_launch.cuh"  // ElemOf, fwd_has_mask
#include "run.h"         // device_desc

namespace flashcore {
namespace sm90 {

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                   const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                   const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                   CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// cuTensorMapEncodeTiled is a driver function; fetching it through the runtime
// keeps libcuda out of the link (the package imports on machines without a
// driver). Looked up once.
inline EncodeTiledFn encode_tiled_fn() {
  static std::atomic<EncodeTiledFn> cached{nullptr};
  EncodeTiledFn fn = cached.load(std::memory_order_relaxed);
  if (fn == nullptr) {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult found;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    fn = reinterpret_cast<EncodeTiledFn>(ptr);
    cached.store(fn, std::memory_order_relaxed);
  }
  return fn;
}

// The 4-D map (head dim, rows, heads, batch) of one 16-bit tensor, boxes of 64
// columns x box_rows rows, 128B-swizzled; reads past any extent are zeros.
// Strides are in elements; a dim of size 1 is never stepped, so its stride is
// replaced by a valid one (TMA wants multiples of 16 bytes).
inline cudaError_t encode_map(CUtensorMap* map, const void* ptr, DType dtype, int head_dim,
                              int rows, int heads, int batch, int64_t row_stride,
                              int64_t head_stride, int64_t batch_stride, int box_rows) {
  const EncodeTiledFn fn = encode_tiled_fn();
  if (fn == nullptr) return cudaErrorNotSupported;
  if (rows == 1) row_stride = 8;
  if (heads == 1) head_stride = 8;
  if (batch == 1) batch_stride = 8;
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(rows),
                              static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(batch)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(row_stride) * 2,
                                 static_cast<cuuint64_t>(head_stride) * 2,
                                 static_cast<cuuint64_t>(batch_stride) * 2};
  const cuuint32_t box[4] = {64, static_cast<cuuint32_t>(box_rows), 1, 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  const CUresult r =
      fn(map,
         dtype == DType::kBFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                   : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
         4, const_cast<void*>(ptr), dims, strides, box, elem_strides,
         CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
         CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

// The maps of q (boxes of block_m rows), k and v (block_n rows) of one call,
// shared by the forward's and the backward's launches.
inline cudaError_t encode_qkv_maps(CUtensorMap* q, CUtensorMap* k, CUtensorMap* v,
                                   const FwdParams& p, DType dtype, int block_m, int block_n) {
  cudaError_t err = encode_map(q, p.q, dtype, p.head_dim, p.seqlen_q, p.heads_q, p.batch,
                               p.q_row_stride, p.q_head_stride, p.q_batch_stride, block_m);
  if (err == cudaSuccess) {
    err = encode_map(k, p.k, dtype, p.head_dim, p.seqlen_k, p.heads_kv, p.batch, p.k_row_stride,
                     p.k_head_stride, p.k_batch_stride, block_n);
  }
  if (err == cudaSuccess) {
    err = encode_map(v, p.v, dtype, p.head_dim, p.seqlen_k, p.heads_kv, p.batch, p.v_row_stride,
                     p.v_head_stride, p.v_batch_stride, block_n);
  }
  return err;
}

// The device's L2 in bytes, read once per device (the LPT head group of the
// persistent kernels is sized by it on every call).
inline int64_t l2_bytes(int device) {
  static std::atomic<int64_t> cache[64];
  if (device >= 0 && device < 64) {
    const int64_t cached = cache[device].load(std::memory_order_relaxed);
    if (cached > 0) return cached;
  }
  int bytes = 0;
  if (cudaDeviceGetAttribute(&bytes, cudaDevAttrL2CacheSize, device) != cudaSuccess) {
    cudaGetLastError();
    bytes = 0;
  }
  if (device >= 0 && device < 64 && bytes > 0) {
    cache[device].store(bytes, std::memory_order_relaxed);
  }
  return bytes;
}

template <typename Elem, typename Traits, bool kHasMask, bool kSoftcap>
cudaError_t launch(FwdArgs& args, cudaStream_t stream, int device, bool pdl) {
  const FwdParams& p = args.p;
  const int64_t num_m_blocks = (p.seqlen_q + Traits::kBlockM - 1) / Traits::kBlockM;
  const int64_t tiles = num_m_blocks * p.batch * p.heads_q;
  if (tiles > 0x7fffffff) return cudaErrorInvalidConfiguration;
  int64_t grid = tiles;
  if constexpr (Traits::kPersistent) {
    // One block per SM at most (one fits per SM; api/ops.cpp sized the
    // scheduler buffer for the tail split: sched_layout),
    // the rest from the counter.
    if (p.tile_counter == nullptr) return cudaErrorInvalidValue;
    const int sm_count = device_desc(device).sm_count;
    const TailSplit plan = fwd_tail_split(Traits::kTailSplit && !kHasMask, tiles, sm_count,
                                          p.seqlen_k, Traits::kBlockN);
    const SchedLayout layout =
        sched_layout(plan, 4 * Traits::kConsumerWGs, Traits::kHeadDim);
    args.split = plan;
    args.split_counts = p.tile_counter + layout.counts_begin;
    args.split_ws =
        reinterpret_cast<float*>(reinterpret_cast<char*>(p.tile_counter) + layout.ws_offset);
    grid = std::min<int64_t>(plan.num_tasks, sm_count);
    // The counter and, with a split, the arrival counters.
    const cudaError_t err =
        cudaMemsetAsync(p.tile_counter, 0, sizeof(int) * layout.counts_end, stream);
    if (err != cudaSuccess) return err;
  }
  auto kernel = fwd_kernel<Elem, Traits, kHasMask, kSoftcap>;
  static std::atomic<uint64_t> opted_in{0};
  const uint64_t bit = uint64_t{1} << (device & 63);
  if ((opted_in.load(std::memory_order_relaxed) & bit) == 0) {
    const cudaError_t err = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSmemBytes);
    if (err != cudaSuccess) return err;
    opted_in.fetch_or(bit, std::memory_order_relaxed);
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(grid));
  config.blockDim = dim3(Traits::kNThreads);
  config.dynamicSmemBytes = Traits::kSmemBytes;
  config.stream = stream;
  cudaLaunchAttribute attr;
  if (pdl) {
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attr;
    config.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&config, kernel, args);
}

template <typename Elem, typename Traits>
cudaError_t launch_variant(const FwdParams& p, DType dtype, cudaStream_t stream, int device,
                           bool pdl) {
  FwdArgs args;
  args.p = p;
  args.split = TailSplit{0, 1, 0};
  args.split_counts = nullptr;
  args.split_ws = nullptr;
  const cudaError_t err =
      encode_qkv_maps(&args.q, &args.k, &args.v, p, dtype, Traits::kBlockM, Traits::kBlockN);
  if (err != cudaSuccess) return err;
  const bool masked = fwd_has_mask(p);
  if constexpr (Traits::kPersistent) {
    // Read by the masked kernel only (its cross-head longest-first order).
    const int group = lpt_group_size(static_cast<int64_t>(p.batch) * p.heads_q, p.q_per_kv,
                                     p.seqlen_k, p.head_dim, l2_bytes(device));
    args.p.lpt_group = static_cast<int16_t>(group);
  }
  if (p.softcap != 0.f) {
    return masked ? launch<Elem, Traits, true, true>(args, stream, device, pdl)
                  : launch<Elem, Traits, false, true>(args, stream, device, pdl);
  }
  return masked ? launch<Elem, Traits, true, false>(args, stream, device, pdl)
                : launch<Elem, Traits, false, false>(args, stream, device, pdl);
}

}  // namespace sm90

// Every Hopper-family config of tile head dim kHeadDim for one element type.
template <DType kDType, int kHeadDim>
cudaError_t run_fwd_sm90_hdim(const FwdParams& params, int config, cudaStream_t stream,
                              int device, bool pdl_capable) {
  using Elem = typename ElemOf<kDType>::type;
  switch (static_cast<FwdConfig>(config)) {
#define FLASHCORE_X(name, D, BN, ST, PP, WG, PS, PDL)                                  \
  case FwdConfig::name:                                                                \
    if constexpr (D == kHeadDim) {                                                     \
      return sm90::launch_variant<Elem, sm90::FwdTraits<D, BN, ST, PP, WG, PS>>(       \
          params, kDType, stream, device, PDL && pdl_capable);                         \
    }                                                                                  \
    break;
    FLASHCORE_FWD_SM90_CONFIGS(FLASHCORE_X)
#undef FLASHCORE_X
    default: break;
  }
  return cudaErrorInvalidValue;
}

}  // namespace flashcore
