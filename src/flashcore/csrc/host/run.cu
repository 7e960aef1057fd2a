#include "run.h"

#include <atomic>
#include <cstdint>

#include "bwd_configs.h"
#include "configs.h"
#include "dispatch.h"

namespace flashcore {
namespace {

// Compiled for the same architectures as the attention kernels: whether the
// device has an image for it is whether it has one for them.
__global__ void image_probe_kernel() {}

}  // namespace

// Read once per device: a cudaDeviceGetAttribute per call would be measurable
// host overhead at the small shapes.
DeviceDesc device_desc(int device) {
  // (smem_optin_kb << 48) | (cc_minor << 40) | (cc_major << 32) | sm_count; 0 = not read yet
  static std::atomic<uint64_t> cache[64];
  if (device >= 0 && device < 64) {
    const uint64_t packed = cache[device].load(std::memory_order_relaxed);
    if (packed != 0) {
      return {static_cast<int>(packed & 0xffffffffu), static_cast<int>((packed >> 32) & 0xff),
              static_cast<int>((packed >> 40) & 0xff),
              static_cast<int>((packed >> 48) & 0xffff) * 1024};
    }
  }
  DeviceDesc d{0, 0, 0, 0};
  cudaDeviceGetAttribute(&d.sm_count, cudaDevAttrMultiProcessorCount, device);
  cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&d.cc_minor, cudaDevAttrComputeCapabilityMinor, device);
  cudaDeviceGetAttribute(&d.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  d.smem_optin = d.smem_optin / 1024 * 1024;  // whole KB, as cached
  if (device >= 0 && device < 64) {
    cache[device].store((uint64_t(d.smem_optin / 1024) << 48) | (uint64_t(d.cc_minor) << 40) |
                            (uint64_t(d.cc_major) << 32) | uint64_t(uint32_t(d.sm_count)),
                        std::memory_order_relaxed);
  }
  return d;
}

cudaError_t run_fwd(const FwdParams& params, DType dtype, int config, cudaStream_t stream) {
  if (config < 0 || config >= kNumFwdConfigs) return cudaErrorInvalidValue;
  int device = 0;
  cudaGetDevice(&device);
  // PDL (griddepcontrol) exists from sm_90 on.
  const bool pdl_capable = device_desc(device).cc_major >= 9;
  const int head_dim = kFwdConfigs[config].head_dim;
#define FLASHCORE_CASE(D)                                                                  \
  case D:                                                                                  \
    return dtype == DType::kFloat16                                                        \
               ? run_fwd_hdim<DType::kFloat16, D>(params, config, stream, device, pdl_capable) \
               : run_fwd_hdim<DType::kBFloat16, D>(params, config, stream, device, pdl_capable);
#define FLASHCORE_SM90_CASE(D)                                                               \
  case D:                                                                                    \
    return dtype == DType::kFloat16                                                          \
               ? run_fwd_sm90_hdim<DType::kFloat16, D>(params, config, stream, device,       \
                                                       pdl_capable)                          \
               : run_fwd_sm90_hdim<DType::kBFloat16, D>(params, config, stream, device,      \
                                                        pdl_capable);
  if (kFwdConfigs[config].sm90) {
    // Only compute capability 9.0 has an sm_90a image of these kernels; on any
    // other GPU they would run empty bodies (the callers check it first).
    const DeviceDesc dev = device_desc(device);
    if (dev.cc_major != 9 || dev.cc_minor != 0) {
      return cudaErrorInvalidDeviceFunction;
    }
    switch (head_dim) {
      FLASHCORE_FOR_EACH_FWD_SM90_HDIM(FLASHCORE_SM90_CASE)
      default: break;
    }
    return cudaErrorInvalidValue;
  }
  switch (head_dim) {
    FLASHCORE_FOR_EACH_FWD_HDIM(FLASHCORE_CASE)
    default: break;
  }
#undef FLASHCORE_CASE
#undef FLASHCORE_SM90_CASE
  return cudaErrorInvalidValue;
}

BwdWorkspace bwd_workspace(const BwdParams& params, int config) {
  if (config < 0 || config >= kNumBwdConfigs) return {0, 0, 0, 0};
  const int64_t rounded =
      (int64_t{params.seqlen_q} + kBwdRowRound - 1) / kBwdRowRound * kBwdRowRound;
  const int64_t rows = int64_t{params.batch} * params.heads_q * rounded;
  // Deterministic mode has no dq_accum (its dQ kernel writes dq directly).
  const int64_t dq_accum = params.deterministic ? 0 : rows * kBwdConfigs[config].head_dim;
  // (gqa_split, batch, heads_kv, seqlen_k, head_dim): only the rows and
  // columns the gradients have (params.h).
  const int64_t partial =
      params.gqa_split > 1 ? int64_t{params.gqa_split} * params.batch * params.heads_kv *
                                 params.seqlen_k * params.head_dim
                           : 0;
  return {dq_accum, rows, partial, static_cast<int>(rounded)};
}

cudaError_t run_bwd(const BwdParams& params, DType dtype, int config, cudaStream_t stream) {
  if (config < 0 || config >= kNumBwdConfigs) return cudaErrorInvalidValue;
  int device = 0;
  cudaGetDevice(&device);
  // A config over the device's shared memory is compiled with an empty body
  // for its architecture (bwd_kernel.cuh): refuse it rather than run nothing.
  if (kBwdConfigs[config].smem_bytes > device_desc(device).smem_optin) {
    return cudaErrorInvalidValue;
  }
#define FLASHCORE_CASE(D)                                                              \
  case D:                                                                              \
    return dtype == DType::kFloat16                                                    \
               ? run_bwd_hdim<DType::kFloat16, D>(params, config, stream, device)      \
               : run_bwd_hdim<DType::kBFloat16, D>(params, config, stream, device);
#define FLASHCORE_SM90_CASE(D)                                                          \
  case D:                                                                              \
    return dtype == DType::kFloat16                                                    \
               ? run_bwd_sm90_hdim<DType::kFloat16, D>(params, config, stream, device) \
               : run_bwd_sm90_hdim<DType::kBFloat16, D>(params, config, stream, device);
  if (kBwdConfigs[config].sm90) {
    // Only an sm_90a build on compute capability 9.0 has these kernels' code;
    // anywhere else they would run empty bodies (api/ops.cpp raises first).
    const DeviceDesc dev = device_desc(device);
    if (!built_with_sm90a() || dev.cc_major != 9 || dev.cc_minor != 0) {
      return cudaErrorInvalidDeviceFunction;
    }
    switch (kBwdConfigs[config].head_dim) {
      FLASHCORE_FOR_EACH_BWD_SM90_HDIM(FLASHCORE_SM90_CASE)
      default: break;
    }
    return cudaErrorInvalidValue;
  }
  switch (kBwdConfigs[config].head_dim) {
    FLASHCORE_FOR_EACH_BWD_HDIM(FLASHCORE_CASE)
    default: break;
  }
#undef FLASHCORE_CASE
#undef FLASHCORE_SM90_CASE
  return cudaErrorInvalidValue;
}

cudaError_t fwd_kernel_image_status() {
  cudaFuncAttributes attr;
  const cudaError_t err = cudaFuncGetAttributes(&attr, image_probe_kernel);
  // The failure is not sticky; clear it so the next launch check does not see it.
  if (err != cudaSuccess) cudaGetLastError();
  return err;
}

}  // namespace flashcore
