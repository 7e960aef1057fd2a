// Grid, config choice, template dispatch and launch of the forward kernel.
#include "fwd_launch.h"

#include <atomic>
#include <cstdint>

#include "fwd_kernel.cuh"
#include "kernel_traits.h"

namespace flashcore {
namespace {

// Large grids: 128 query rows x 64 keys, 4 warps of 32 rows, so each K/V
// fragment read from shared memory feeds two m16 tiles of MMAs. On H100 this
// beat 4 warps x 16 rows by 15-25% and 8 warps x 16 rows by 4-15% at
// (4,16,2048)..(2,16,16384) (benchmarks/NOTES.md, v2). Q fragments are
// reloaded at every key tile: that removed the 36-40 B of spills at the
// 2-blocks-per-SM register cap and was 3-5% faster at those shapes (v6);
// in the small-grid configs, which have no spills, it was 3-5% slower at
// (1,8,1024).
using LargeTraits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/128, /*kBlockN=*/64,
                                    /*kNWarps=*/4, /*kMinBlocksPerSm=*/2, /*kKeyGroups=*/1,
                                    /*kReloadQ=*/true>;
// Mid grids: 64 query rows, 4 warps of 16 rows: twice the blocks of the large
// config, 3 blocks per SM; 7-12% faster than it at (2,8,1024) on H100.
using SmallTraits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/64, /*kBlockN=*/64,
                                    /*kNWarps=*/4, /*kMinBlocksPerSm=*/3>;
// Grids of at most one small tile per SM: the same tile with 8 warps in two key
// groups. At (1,8,{256,512,1024}) on H100 7-21% faster than the small config,
// and faster than every 2/4/8-way split of the keys over a thread-block
// cluster (benchmarks/NOTES.md, v3).
using TinyTraits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/64, /*kBlockN=*/64,
                                   /*kNWarps=*/8, /*kMinBlocksPerSm=*/1, /*kKeyGroups=*/2>;
// Where the device allows over 99 KB of shared memory per block (sm_80, sm_90):
// four key groups of 2 warps, on a 32-row tile (16 rows per warp) for grids of
// at most one such tile per SM (at (1,8,256/512) 11-21% faster than two groups
// on H100), else on a 64-row tile (32 rows per warp) when keys are long enough.
using Quad16Traits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/32, /*kBlockN=*/64,
                                     /*kNWarps=*/8, /*kMinBlocksPerSm=*/1, /*kKeyGroups=*/4>;
using Quad32Traits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/64, /*kBlockN=*/64,
                                     /*kNWarps=*/8, /*kMinBlocksPerSm=*/1, /*kKeyGroups=*/4>;

struct DeviceInfo {
  int sm_count;
  int cc_major;
  int smem_optin_kb;  // max dynamic shared memory per block with the opt-in
};

// Per-device properties, read once: a cudaDeviceGetAttribute per call would be
// measurable host overhead at the small shapes.
DeviceInfo device_info(int device) {
  // (smem_optin_kb << 32) | (sm_count << 16) | cc_major, 16 bits each; 0 = not read yet
  static std::atomic<int64_t> cache[64];
  if (device >= 0 && device < 64) {
    const int64_t packed = cache[device].load(std::memory_order_relaxed);
    if (packed != 0) {
      return {static_cast<int>((packed >> 16) & 0xffff), static_cast<int>(packed & 0xffff),
              static_cast<int>((packed >> 32) & 0xffff)};
    }
  }
  DeviceInfo info{0, 0, 0};
  int smem_optin = 0;
  cudaDeviceGetAttribute(&info.sm_count, cudaDevAttrMultiProcessorCount, device);
  cudaDeviceGetAttribute(&info.cc_major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  info.smem_optin_kb = smem_optin / 1024;
  if (device >= 0 && device < 64) {
    cache[device].store((int64_t{info.smem_optin_kb} << 32) | (int64_t{info.sm_count} << 16) |
                            info.cc_major,
                        std::memory_order_relaxed);
  }
  return info;
}

template <typename Traits>
bool fits(const DeviceInfo& info) {
  return Traits::kSmemBytes <= info.smem_optin_kb * 1024;
}

template <typename Traits, bool kIsCausal>
cudaError_t launch(const FwdParams& params, cudaStream_t stream, int device, bool pdl) {
  const int64_t num_m_blocks = (params.seqlen_q + Traits::kBlockM - 1) / Traits::kBlockM;
  const int64_t grid = num_m_blocks * params.batch * params.heads;
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  auto kernel = fwd_kernel<Traits, kIsCausal>;
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

template <typename Traits>
cudaError_t launch_causal(const FwdParams& params, cudaStream_t stream, int device, bool pdl) {
  // Runtime flags become template arguments here and nowhere else.
  if (params.is_causal) return launch<Traits, /*kIsCausal=*/true>(params, stream, device, pdl);
  return launch<Traits, /*kIsCausal=*/false>(params, stream, device, pdl);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

cudaError_t run_fwd(const FwdParams& params, cudaStream_t stream) {
  int device = 0;
  cudaGetDevice(&device);
  const DeviceInfo info = device_info(device);
  const int64_t bh = static_cast<int64_t>(params.batch) * params.heads;
  if (bh * ceil_div(params.seqlen_q, LargeTraits::kBlockM) >= 2 * info.sm_count) {
    // Enough 128-row tiles for two blocks per SM. PDL measured neutral to -3%
    // here (v2 notes): plain launch.
    return launch_causal<LargeTraits>(params, stream, device, /*pdl=*/false);
  }
  // Smaller grids are latency-bound: programmatic dependent launch lets the
  // block setup overlap the previous kernel's tail (-0.2..0.4 us on H100), and
  // since the kernel triggers its dependents at its start, back-to-back calls
  // overlap further (-0.6 us at (1,8,512); benchmarks/NOTES.md, v2 and v5).
  const bool pdl = info.cc_major >= 9;
  if (bh * ceil_div(params.seqlen_q, Quad16Traits::kBlockM) <= info.sm_count &&
      fits<Quad16Traits>(info)) {
    return launch_causal<Quad16Traits>(params, stream, device, pdl);
  }
  if (bh * ceil_div(params.seqlen_q, TinyTraits::kBlockM) <= info.sm_count) {
    // 32 rows per warp pay off only over enough key tiles: with 16+ (Sk >=
    // 1024) four groups were 4-13% faster than two, with 8 (1,16,512) 11%
    // slower (H100, benchmarks/NOTES.md, v4).
    if (fits<Quad32Traits>(info) && ceil_div(params.seqlen_k, Quad32Traits::kBlockN) >= 16) {
      return launch_causal<Quad32Traits>(params, stream, device, pdl);
    }
    return launch_causal<TinyTraits>(params, stream, device, pdl);
  }
  return launch_causal<SmallTraits>(params, stream, device, pdl);
}

cudaError_t fwd_kernel_image_status() {
  cudaFuncAttributes attr;
  const cudaError_t err =
      cudaFuncGetAttributes(&attr, fwd_kernel<LargeTraits, /*kIsCausal=*/false>);
  // The failure is not sticky; clear it so the next launch check does not see it.
  if (err != cudaSuccess) cudaGetLastError();
  return err;
}

}  // namespace flashcore
