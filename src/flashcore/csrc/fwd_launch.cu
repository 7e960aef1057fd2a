// Grid, config choice, template dispatch and launch of the forward kernel.
#include "fwd_launch.h"

#include <atomic>
#include <cstdlib>

#include "fwd_kernel.cuh"
#include "kernel_traits.h"

namespace flashcore {
namespace {

// Large grids: 128 query rows x 64 keys, 4 warps of 32 rows, so each K/V
// fragment read from shared memory feeds two m16 tiles of MMAs.
using LargeTraits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/128, /*kBlockN=*/64,
                                    /*kNWarps=*/4, /*kMinBlocksPerSm=*/2,
                                    /*kReloadQ=*/false>;
using LargeReloadQTraits = FwdKernelTraits<64, 128, 64, 4, 2, /*kReloadQ=*/true>;
using Wide8Traits = FwdKernelTraits<64, 128, 64, 8, 2, /*kReloadQ=*/true>;
// Small grids: 64 query rows, 4 warps of 16 rows: twice the blocks, and the
// only config that runs split-KV.
using SmallTraits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/64, /*kBlockN=*/64,
                                    /*kNWarps=*/4, /*kMinBlocksPerSm=*/3,
                                    /*kReloadQ=*/false>;

constexpr int kMaxSplits = 8;  // portable thread-block cluster size limit

struct DeviceInfo {
  int sm_count;
  int cc_major;
};

// Per-device properties, read once: a cudaDeviceGetAttribute per call would be
// measurable host overhead at the small shapes.
DeviceInfo device_info(int device) {
  static std::atomic<int> cache[64];  // (sm_count << 8) | cc_major, 0 = unknown
  if (device >= 0 && device < 64) {
    const int packed = cache[device].load(std::memory_order_relaxed);
    if (packed != 0) return {packed >> 8, packed & 0xff};
  }
  DeviceInfo info{0, 0};
  cudaDeviceGetAttribute(&info.sm_count, cudaDevAttrMultiProcessorCount, device);
  cudaDeviceGetAttribute(&info.cc_major, cudaDevAttrComputeCapabilityMajor, device);
  if (device >= 0 && device < 64) {
    cache[device].store((info.sm_count << 8) | info.cc_major, std::memory_order_relaxed);
  }
  return info;
}

template <typename Traits, bool kIsCausal, bool kSplitKV>
cudaError_t launch(const FwdParams& params, cudaStream_t stream, bool pdl) {
  const int64_t num_m_blocks = (params.seqlen_q + Traits::kBlockM - 1) / Traits::kBlockM;
  const int64_t splits = kSplitKV ? params.num_splits : 1;
  const int64_t grid = num_m_blocks * params.batch * params.heads * splits;
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(grid));
  config.blockDim = dim3(Traits::kNThreads);
  config.dynamicSmemBytes = Traits::kSmemBytes;
  config.stream = stream;
  cudaLaunchAttribute attrs[2];
  int n = 0;
  if (kSplitKV) {
    attrs[n].id = cudaLaunchAttributeClusterDimension;
    attrs[n].val.clusterDim.x = static_cast<unsigned>(params.num_splits);
    attrs[n].val.clusterDim.y = 1;
    attrs[n].val.clusterDim.z = 1;
    ++n;
  }
  if (pdl) {
    attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  config.attrs = attrs;
  config.numAttrs = n;
  return cudaLaunchKernelEx(&config, fwd_kernel<Traits, kIsCausal, kSplitKV>, params);
}

template <typename Traits, bool kSplitKV>
cudaError_t launch_causal(const FwdParams& params, cudaStream_t stream, bool pdl) {
  // Runtime flags become template arguments here and nowhere else.
  if (params.is_causal) return launch<Traits, /*kIsCausal=*/true, kSplitKV>(params, stream, pdl);
  return launch<Traits, /*kIsCausal=*/false, kSplitKV>(params, stream, pdl);
}

int ceil_div(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

// TUNING ONLY (removed before the release commit): FLASHCORE_TUNE="cfg,splits,pdl"
// forces cfg 0 = large, 1 = small, 2 = large with Q reloaded, 3 = 8 warps x 16 rows.
bool tune_override(int* cfg, int* splits, int* pdl) {
  const char* env = std::getenv("FLASHCORE_TUNE");
  if (env == nullptr) return false;
  return std::sscanf(env, "%d,%d,%d", cfg, splits, pdl) == 3;
}

}  // namespace

cudaError_t run_fwd(const FwdParams& params_in, cudaStream_t stream) {
  FwdParams params = params_in;
  int device = 0;
  cudaGetDevice(&device);
  const DeviceInfo info = device_info(device);
  const int64_t bh = static_cast<int64_t>(params.batch) * params.heads;
  const int64_t large_blocks = bh * ceil_div(params.seqlen_q, LargeTraits::kBlockM);

  int cfg = large_blocks >= 2 * info.sm_count ? 0 : 1;
  int splits = 1;
  if (cfg == 1 && info.cc_major >= 9) {
    // Aim for about three resident blocks per SM; more splits than key tiles
    // would only add empty blocks.
    const int64_t small_blocks = bh * ceil_div(params.seqlen_q, SmallTraits::kBlockM);
    const int n_tiles = ceil_div(params.seqlen_k, SmallTraits::kBlockN);
    while (splits * 2 <= kMaxSplits && small_blocks * splits * 2 <= 3 * info.sm_count &&
           splits * 2 <= n_tiles) {
      splits *= 2;
    }
  }
  int pdl = 0;
  tune_override(&cfg, &splits, &pdl);
  const bool use_pdl = pdl != 0 && info.cc_major >= 9;
  params.num_splits = splits;
  if (cfg == 0) return launch_causal<LargeTraits, false>(params, stream, use_pdl);
  if (cfg == 2) return launch_causal<LargeReloadQTraits, false>(params, stream, use_pdl);
  if (cfg == 3) return launch_causal<Wide8Traits, false>(params, stream, use_pdl);
  if (splits > 1) return launch_causal<SmallTraits, /*kSplitKV=*/true>(params, stream, use_pdl);
  return launch_causal<SmallTraits, /*kSplitKV=*/false>(params, stream, use_pdl);
}

cudaError_t fwd_kernel_image_status() {
  cudaFuncAttributes attr;
  const cudaError_t err =
      cudaFuncGetAttributes(&attr, fwd_kernel<LargeTraits, /*kIsCausal=*/false, /*kSplitKV=*/false>);
  // The failure is not sticky; clear it so the next launch check does not see it.
  if (err != cudaSuccess) cudaGetLastError();
  return err;
}

}  // namespace flashcore
