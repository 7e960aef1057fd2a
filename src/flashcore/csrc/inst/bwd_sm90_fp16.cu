// Hopper-family backward kernels (wgmma + TMA main kernel for sm_90a only,
// with the preprocess and postprocess it launches), fp16, tile head dims 64 and
// 128.
#include "host/bwd_sm90_launch.cuh"

namespace flashcore {
template cudaError_t run_bwd_sm90_hdim<DType::kFloat16, 64>(const BwdParams&, int, cudaStream_t, int);
template cudaError_t run_bwd_sm90_hdim<DType::kFloat16, 128>(const BwdParams&, int, cudaStream_t, int);
}  // namespace flashcore
