// The only seam between the torch side (api/ops.cpp) and the CUDA side. Neither
// side sees the other's headers.
#pragma once

#include <cuda_runtime_api.h>

#include "flashcore/params.h"
#include "heuristics.h"

namespace flashcore {

// Device numbers the heuristic needs, read once per device.
DeviceDesc device_desc(int device);

// Launches forward config `config` (an index into kFwdConfigs, valid for this
// dtype, head dim and device) on `stream` for the current device. Returns the
// launch's CUDA error code (cudaSuccess when it was queued).
cudaError_t run_fwd(const FwdParams& params, DType dtype, int config, cudaStream_t stream);

// cudaSuccess when this build holds a kernel image (SASS or JIT-able PTX) for
// the current device, else the runtime's error (cudaErrorNoKernelImageForDevice).
cudaError_t fwd_kernel_image_status();

}  // namespace flashcore
