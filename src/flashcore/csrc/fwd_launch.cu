// Grid, config choice, template dispatch and launch of the forward kernel.
#include "fwd_launch.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "fwd_kernel.cuh"
#include "kernel_traits.h"

namespace flashcore {
namespace {

// Large grids: 128 query rows x 64 keys, 4 warps of 32 rows, so each K/V
// fragment read from shared memory feeds two m16 tiles of MMAs. On H100 this
// beat 4 warps x 16 rows by 15-25% and 8 warps x 16 rows by 4-15% at
// (4,16,2048)..(2,16,16384) (benchmarks/NOTES.md, v2).
using LargeTraits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/128, /*kBlockN=*/64,
                                    /*kNWarps=*/4, /*kMinBlocksPerSm=*/2>;
// Small grids: 64 query rows, 4 warps of 16 rows: twice the blocks, 3 blocks
// per SM; at (1,8,{256,512,1024}) 30-35% faster than the large config. The only
// config that runs split-KV.
using SmallTraits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/64, /*kBlockN=*/64,
                                    /*kNWarps=*/4, /*kMinBlocksPerSm=*/3>;
// Tiny grids: the small tile with 8 warps in two key groups of 4.
using TinyTraits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/64, /*kBlockN=*/64,
                                   /*kNWarps=*/8, /*kMinBlocksPerSm=*/1, /*kKeyGroups=*/2>;

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
  auto kernel = fwd_kernel<Traits, kIsCausal, kSplitKV>;
  if constexpr (Traits::kSmemBytes > 48 * 1024) {
    // Over 48 KB of dynamic shared memory needs a per-kernel opt-in, once per device.
    static std::atomic<uint64_t> opted_in{0};
    int device = 0;
    cudaGetDevice(&device);
    const uint64_t bit = uint64_t{1} << (device & 63);
    if ((opted_in.load(std::memory_order_relaxed) & bit) == 0) {
      const cudaError_t err = cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSmemBytes);
      if (err != cudaSuccess) return err;
      opted_in.fetch_or(bit, std::memory_order_relaxed);
    }
  }
  return cudaLaunchKernelEx(&config, kernel, params);
}

template <typename Traits, bool kSplitKV>
cudaError_t launch_causal(const FwdParams& params, cudaStream_t stream, bool pdl) {
  // Runtime flags become template arguments here and nowhere else.
  if (params.is_causal) return launch<Traits, /*kIsCausal=*/true, kSplitKV>(params, stream, pdl);
  return launch<Traits, /*kIsCausal=*/false, kSplitKV>(params, stream, pdl);
}

int ceil_div(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

// TUNING ONLY (removed before the release commit): FLASHCORE_TUNE="cfg,splits,pdl",
// cfg 0 = large, 1 = small (+splits), 4 = tiny (two key groups).
bool tune_override(int* cfg, int* splits, int* pdl) {
  const char* env = std::getenv("FLASHCORE_TUNE");
  if (env == nullptr) return false;
  return std::sscanf(env, "%d,%d,%d", cfg, splits, pdl) == 3;
}

// Split-KV pays only where a grid of small tiles still leaves SMs idle AND
// each split keeps enough key tiles to amortize the cluster combine. Measured
// on H100 at (1,8,S,64), small config, kernel time in us (splits 1/2/4):
//   S=256  full 5.4/7.3/6.5   causal 5.6/7.4/6.5   -> 1 split (4 key tiles)
//   S=512  full 8.9/9.2/9.4   causal 8.9/9.2/8.0   -> causal 4 (8 key tiles)
//   S=1024 full 15.8/15.6/20.9 causal 15.7/15.2/17.6 -> 2 (16 key tiles)
// Causal gains more: its query tiles have unequal key ranges, which splitting
// evens out.
int choose_splits(const FwdParams& params, int64_t small_blocks, const DeviceInfo& info) {
  if (info.cc_major < 9) return 1;  // thread-block clusters are sm_90+
  const int n_tiles = ceil_div(params.seqlen_k, SmallTraits::kBlockN);
  const int64_t slots = 3 * static_cast<int64_t>(info.sm_count);  // 3 blocks per SM
  if (n_tiles >= 16 && small_blocks * 2 <= slots) return 2;
  if (params.is_causal && n_tiles >= 8 && small_blocks * 4 <= slots) return 4;
  return 1;
}

}  // namespace

cudaError_t run_fwd(const FwdParams& params_in, cudaStream_t stream) {
  FwdParams params = params_in;
  int device = 0;
  cudaGetDevice(&device);
  const DeviceInfo info = device_info(device);
  const int64_t bh = static_cast<int64_t>(params.batch) * params.heads;
  const int64_t large_blocks = bh * ceil_div(params.seqlen_q, LargeTraits::kBlockM);
  int t_cfg = -1, t_splits = 1, t_pdl = 0;
  if (tune_override(&t_cfg, &t_splits, &t_pdl)) {
    params.num_splits = t_splits;
    const bool p = t_pdl != 0 && info.cc_major >= 9;
    if (t_cfg == 0) return launch_causal<LargeTraits, false>(params, stream, p);
    if (t_cfg == 4) return launch_causal<TinyTraits, false>(params, stream, p);
    if (t_splits > 1) return launch_causal<SmallTraits, true>(params, stream, p);
    return launch_causal<SmallTraits, false>(params, stream, p);
  }
  if (large_blocks >= 2 * info.sm_count) {
    // PDL measured neutral to -3% here (v2 notes): plain launch.
    params.num_splits = 1;
    return launch_causal<LargeTraits, /*kSplitKV=*/false>(params, stream, /*pdl=*/false);
  }
  // Small grids are latency-bound: programmatic dependent launch lets the
  // block setup overlap the previous kernel's tail (-0.2..0.4 us on H100).
  const bool pdl = info.cc_major >= 9;
  const int64_t small_blocks = bh * ceil_div(params.seqlen_q, SmallTraits::kBlockM);
  if (small_blocks <= info.sm_count) {
    params.num_splits = 1;
    return launch_causal<TinyTraits, /*kSplitKV=*/false>(params, stream, pdl);
  }
  params.num_splits = choose_splits(params, small_blocks, info);
  if (params.num_splits > 1) {
    return launch_causal<SmallTraits, /*kSplitKV=*/true>(params, stream, pdl);
  }
  return launch_causal<SmallTraits, /*kSplitKV=*/false>(params, stream, pdl);
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
