// Forward kernels, fp16, tile head dims 32, 64, 96: one translation unit of four
// per dtype-and-width split, so parallel builds use every core.
#include "host/fwd_launch.cuh"

namespace flashcore {
template cudaError_t run_fwd_hdim<DType::kFloat16, 32>(const FwdParams&, int, cudaStream_t, int, bool);
template cudaError_t run_fwd_hdim<DType::kFloat16, 64>(const FwdParams&, int, cudaStream_t, int, bool);
template cudaError_t run_fwd_hdim<DType::kFloat16, 96>(const FwdParams&, int, cudaStream_t, int, bool);
}  // namespace flashcore
