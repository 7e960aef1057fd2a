// Forward kernels, bf16, tile head dims 128, 192, 256: one translation unit of four
// per dtype-and-width split, so parallel builds use every core.
#include "host/fwd_launch.cuh"

namespace flashcore {
template cudaError_t run_fwd_hdim<DType::kBFloat16, 128>(const FwdParams&, int, cudaStream_t, int, bool);
template cudaError_t run_fwd_hdim<DType::kBFloat16, 192>(const FwdParams&, int, cudaStream_t, int, bool);
template cudaError_t run_fwd_hdim<DType::kBFloat16, 256>(const FwdParams&, int, cudaStream_t, int, bool);
}  // namespace flashcore
