// Host entry point of the forward kernel; the only interface between ops.cpp
// (torch side) and the CUDA side. Neither side sees the other's headers.
#pragma once

#include <cuda_runtime_api.h>

#include "params.h"

namespace flashcore {

// Launches the forward kernel on `stream` for the current device. Returns the
// launch's CUDA error code (cudaSuccess when it was queued).
cudaError_t run_fwd(const FwdParams& params, cudaStream_t stream);

// cudaSuccess when this build holds a kernel image (SASS or JIT-able PTX) for
// the current device, else the runtime's error (cudaErrorNoKernelImageForDevice).
cudaError_t fwd_kernel_image_status();

}  // namespace flashcore
