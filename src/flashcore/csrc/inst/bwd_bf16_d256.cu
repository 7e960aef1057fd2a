// Backward kernels (preprocess, main, postprocess), bf16, tile head dim 256.
// The main kernel and the postprocess must share a translation unit: they
// agree on dq_accum's layout through the architecture compiled (bwd_kernel.cuh).
#include "host/bwd_launch.cuh"

namespace flashcore {
template cudaError_t run_bwd_hdim<DType::kBFloat16, 256>(const BwdParams&, int, cudaStream_t, int);
}  // namespace flashcore
