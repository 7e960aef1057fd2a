// Grid, template dispatch and launch of the forward kernel.
#include "fwd_launch.h"

#include "fwd_kernel.cuh"
#include "kernel_traits.h"

namespace flashcore {
namespace {

// 128 query rows x 64 keys per iteration, 4 warps of 32 rows: each K/V
// fragment read from shared memory feeds two m16 tiles of MMAs.
using DefaultTraits = FwdKernelTraits</*kHeadDim=*/64, /*kBlockM=*/128, /*kBlockN=*/64,
                                      /*kNWarps=*/4>;

template <typename Traits, bool kIsCausal>
cudaError_t launch(const FwdParams& params, cudaStream_t stream) {
  const int64_t num_m_blocks = (params.seqlen_q + Traits::kBlockM - 1) / Traits::kBlockM;
  const int64_t grid = num_m_blocks * params.batch * params.heads;
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  fwd_kernel<Traits, kIsCausal>
      <<<static_cast<unsigned>(grid), Traits::kNThreads, Traits::kSmemBytes, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace

cudaError_t run_fwd(const FwdParams& params, cudaStream_t stream) {
  // Runtime flags become template arguments here and nowhere else.
  if (params.is_causal) return launch<DefaultTraits, /*kIsCausal=*/true>(params, stream);
  return launch<DefaultTraits, /*kIsCausal=*/false>(params, stream);
}

cudaError_t fwd_kernel_image_status() {
  cudaFuncAttributes attr;
  const cudaError_t err =
      cudaFuncGetAttributes(&attr, fwd_kernel<DefaultTraits, /*kIsCausal=*/false>);
  // The failure is not sticky; clear it so the next launch check does not see it.
  if (err != cudaSuccess) cudaGetLastError();
  return err;
}

}  // namespace flashcore
