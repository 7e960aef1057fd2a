// Hopper-family forward kernels (wgmma + TMA; device code for sm_90a only),
// bf16, tile head dims 64 and 128.
#include "host/fwd_sm90_launch.cuh"

namespace flashcore {
template cudaError_t run_fwd_sm90_hdim<DType::kBFloat16, 64>(const FwdParams&, int, cudaStream_t, int, bool);
template cudaError_t run_fwd_sm90_hdim<DType::kBFloat16, 128>(const FwdParams&, int, cudaStream_t, int, bool);
}  // namespace flashcore
