// Backward kernels (preprocess, main, postprocess), fp16, tile head dim 64.
// The main kernel and the postprocess must share a translation unit: they
// agree on dq_accum's layout through the architecture compiled (bwd_kernel.cuh).
#include "host/bwd_launch.cuh"

namespace flashcore {
template cudaError_t run_bwd_hdim<DType::kFloat16, 64>(const BwdParams&, int, cudaStream_t, int);
}  // namespace flashcore
