// Declarations of the per-(dtype, tile head dim) launchers that inst/*.cu
// compile (one explicit instantiation each), for host/run.cu's switch.
#pragma once

#include <cuda_runtime_api.h>

#include "flashcore/params.h"

namespace flashcore {

template <DType kDType, int kHeadDim>
cudaError_t run_fwd_hdim(const FwdParams& params, int config, cudaStream_t stream, int device,
                         bool pdl_capable);

#define FLASHCORE_FOR_EACH_FWD_HDIM(X) X(32) X(64) X(96) X(128) X(192) X(256)

#define FLASHCORE_DECLARE_FWD_HDIM(D)                                                     \
  extern template cudaError_t run_fwd_hdim<DType::kFloat16, D>(const FwdParams&, int,     \
                                                               cudaStream_t, int, bool);  \
  extern template cudaError_t run_fwd_hdim<DType::kBFloat16, D>(const FwdParams&, int,    \
                                                                cudaStream_t, int, bool);
FLASHCORE_FOR_EACH_FWD_HDIM(FLASHCORE_DECLARE_FWD_HDIM)
#undef FLASHCORE_DECLARE_FWD_HDIM

// The Hopper family (host/fwd_sm90_launch.cuh; inst/fwd_sm90_*.cu).
template <DType kDType, int kHeadDim>
cudaError_t run_fwd_sm90_hdim(const FwdParams& params, int config, cudaStream_t stream,
                              int device, bool pdl_capable);

#define FLASHCORE_FOR_EACH_FWD_SM90_HDIM(X) X(64) X(128)

#define FLASHCORE_DECLARE_FWD_SM90_HDIM(D)                                                 \
  extern template cudaError_t run_fwd_sm90_hdim<DType::kFloat16, D>(const FwdParams&, int, \
                                                                    cudaStream_t, int, bool); \
  extern template cudaError_t run_fwd_sm90_hdim<DType::kBFloat16, D>(                       \
      const FwdParams&, int, cudaStream_t, int, bool);
FLASHCORE_FOR_EACH_FWD_SM90_HDIM(FLASHCORE_DECLARE_FWD_SM90_HDIM)
#undef FLASHCORE_DECLARE_FWD_SM90_HDIM

// The backward (host/bwd_launch.cuh; inst/bwd_*.cu): preprocess, main kernel
// and postprocess of one backward config.
template <DType kDType, int kHeadDim>
cudaError_t run_bwd_hdim(const BwdParams& params, int config, cudaStream_t stream, int device);

#define FLASHCORE_FOR_EACH_BWD_HDIM(X) X(64) X(128) X(256)

#define FLASHCORE_DECLARE_BWD_HDIM(D)                                                      \
  extern template cudaError_t run_bwd_hdim<DType::kFloat16, D>(const BwdParams&, int,      \
                                                               cudaStream_t, int);         \
  extern template cudaError_t run_bwd_hdim<DType::kBFloat16, D>(const BwdParams&, int,     \
                                                                cudaStream_t, int);
FLASHCORE_FOR_EACH_BWD_HDIM(FLASHCORE_DECLARE_BWD_HDIM)
#undef FLASHCORE_DECLARE_BWD_HDIM

// The Hopper backward (host/bwd_sm90_launch.cuh; inst/bwd_sm90_*.cu).
template <DType kDType, int kHeadDim>
cudaError_t run_bwd_sm90_hdim(const BwdParams& params, int config, cudaStream_t stream,
                              int device);

#define FLASHCORE_FOR_EACH_BWD_SM90_HDIM(X) X(64) X(128)

#define FLASHCORE_DECLARE_BWD_SM90_HDIM(D)                                                  \
  extern template cudaError_t run_bwd_sm90_hdim<DType::kFloat16, D>(const BwdParams&, int,  \
                                                                    cudaStream_t, int);     \
  extern template cudaError_t run_bwd_sm90_hdim<DType::kBFloat16, D>(const BwdParams&, int, \
                                                                     cudaStream_t, int);
FLASHCORE_FOR_EACH_BWD_SM90_HDIM(FLASHCORE_DECLARE_BWD_SM90_HDIM)
#undef FLASHCORE_DECLARE_BWD_SM90_HDIM

}  // namespace flashcore
