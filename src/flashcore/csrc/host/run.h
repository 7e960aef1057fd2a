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

// ---- backward (issue 10) ----
// Workspace sizes of backward config `config` for the shape in `params`
// (sizes, head_dim, gqa_split): what api/ops.cpp allocates for BwdParams'
// dq_accum, dpsum, lse_log2 and, with gqa_split > 1, dk_partial and
// dv_partial (fp32 elements), and the seqlen_q_rounded to store.
// params.deterministic: no dq_accum (0 elements).
struct BwdWorkspace {
  int64_t dq_accum_elems;
  int64_t row_elems;      // each of dpsum and lse_log2
  int64_t partial_elems;  // each of dk_partial and dv_partial; 0 when gqa_split <= 1
  int seqlen_q_rounded;
};
BwdWorkspace bwd_workspace(const BwdParams& params, int config);

// Launches backward config `config` (an index into the backward catalog, valid
// for this dtype, head dim and device; host/heuristics.h choose_bwd_config)
// on `stream`: preprocess, main kernel, postprocess (params.deterministic:
// preprocess, main kernel without dQ, dQ kernel). dq, dk and dv are fully
// written (zeros where no query or key contributes). Returns the first launch
// error (cudaSuccess when all were queued).
cudaError_t run_bwd(const BwdParams& params, DType dtype, int config, cudaStream_t stream);

}  // namespace flashcore
