// The only file that sees torch: argument checks, output allocation, device
// guard and stream, and the op registration through the LibTorch stable ABI
// (no pybind11, no ATen C++ API), so one abi3 binary serves every Python >= 3.10
// and torch >= 2.10.
//
// The Python wrapper (flashcore/ops.py) validates first and raises ValueError /
// TypeError with full messages; the checks here are the safety net for direct
// torch.ops.flashcore.* calls, so no input can reach the kernel unchecked.
#include <cuda_runtime_api.h>

#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/macros.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <tuple>

#include "build_config.h"
#include "fwd_launch.h"
#include "params.h"

namespace {

using torch::stable::Tensor;

constexpr int64_t kHeadDim = 64;

void check_qkv(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  const Tensor* ts[3] = {&q, &k, &v};
  const char* names[3] = {"q", "k", "v"};
  for (int i = 0; i < 3; ++i) {
    const Tensor& t = *ts[i];
    STD_TORCH_CHECK(t.is_cuda(), "flashcore.fwd: ", names[i], " must be a CUDA tensor");
    STD_TORCH_CHECK(t.scalar_type() == torch::headeronly::ScalarType::Half, "flashcore.fwd: ",
                    names[i], " must be float16 (supported dtypes: torch.float16)");
    STD_TORCH_CHECK(t.dim() == 4, "flashcore.fwd: ", names[i],
                    " must be 4-D (batch, heads, seqlen, head_dim), got ", t.dim(), " dims");
    STD_TORCH_CHECK(t.size(3) == kHeadDim, "flashcore.fwd: ", names[i],
                    ".shape[-1] (head_dim) must be 64, got ", t.size(3));
    STD_TORCH_CHECK(t.stride(3) == 1, "flashcore.fwd: ", names[i],
                    ".stride(-1) must be 1, got ", t.stride(3));
    STD_TORCH_CHECK(t.get_device_index() == q.get_device_index(), "flashcore.fwd: ", names[i],
                    " is on cuda:", t.get_device_index(), " but q is on cuda:",
                    q.get_device_index());
  }
  for (int d = 0; d < 2; ++d) {
    STD_TORCH_CHECK(k.size(d) == q.size(d) && v.size(d) == q.size(d),
                    "flashcore.fwd: q, k and v must agree in dim ", d, " (batch, heads), got ",
                    q.size(d), ", ", k.size(d), ", ", v.size(d));
  }
  STD_TORCH_CHECK(k.size(2) == v.size(2), "flashcore.fwd: k and v seqlen must match, got ",
                  k.size(2), " and ", v.size(2));
  STD_TORCH_CHECK(k.size(2) >= 1, "flashcore.fwd: seqlen_k must be >= 1, got ", k.size(2));
  STD_TORCH_CHECK(q.size(2) < (int64_t{1} << 31) && k.size(2) < (int64_t{1} << 31),
                  "flashcore.fwd: sequence lengths must be < 2^31, got ", q.size(2), " and ",
                  k.size(2));
  STD_TORCH_CHECK(q.size(0) * q.size(1) < (int64_t{1} << 31),
                  "flashcore.fwd: batch * heads must be < 2^31, got ", q.size(0) * q.size(1));
  STD_TORCH_CHECK(std::isfinite(scale) && scale > 0.0,
                  "flashcore.fwd: scale must be a finite positive number, got ", scale);
}

// A dim of size 1 is never stepped over, so its stride cannot misalign a row.
bool rows_aligned16(const Tensor& t) {
  if (reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 != 0) return false;
  for (int d = 0; d < 3; ++d) {
    if (t.size(d) > 1 && t.stride(d) % 8 != 0) return false;
  }
  return true;
}

// Once per device: a GPU whose architecture this build has no kernel for gets
// an error naming its compute capability and what was compiled, instead of
// "no kernel image is available" from the launch.
void check_arch_once(int32_t device) {
  static std::atomic<bool> checked[64];
  if (device >= 0 && device < 64 && checked[device].load(std::memory_order_relaxed)) return;
  const cudaError_t err = flashcore::fwd_kernel_image_status();
  if (err == cudaErrorNoKernelImageForDevice || err == cudaErrorInvalidDeviceFunction) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    STD_TORCH_CHECK(false, "flashcore: cuda:", device, " has compute capability ", major, ".",
                    minor, " (sm_", major, minor,
                    "), for which this build has no kernel; compiled: " FLASHCORE_ARCH_LIST
                    ". flashcore needs sm_80 or newer; rebuild with FLASHCORE_CUDA_ARCHS "
                    "including ",
                    major, minor, ".");
  }
  STD_CUDA_CHECK(err);
  if (device >= 0 && device < 64) checked[device].store(true, std::memory_order_relaxed);
}

Tensor empty_cuda(const std::array<int64_t, 4>& sizes, int ndim, int32_t dtype, int32_t device) {
  std::array<int64_t, 4> strides{};
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    strides[d] = s;
    s *= sizes[d];
  }
  AtenTensorHandle handle = nullptr;
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_empty_strided(
      ndim, sizes.data(), strides.data(), dtype, aoti_torch_device_type_cuda(), device, &handle));
  return Tensor(handle);
}

// Allocates O (then LSE, if asked: callers may rely on that order) and launches.
std::tuple<Tensor, Tensor> run(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                               bool is_causal, bool want_lse) {
  check_qkv(q, k, v, scale);
  const int32_t device = q.get_device_index();
  const int64_t batch = q.size(0), heads = q.size(1), seqlen_q = q.size(2);
  Tensor o = empty_cuda({batch, heads, seqlen_q, kHeadDim}, 4, aoti_torch_dtype_float16(), device);
  Tensor lse = o;  // placeholder when not asked for; never returned then
  if (want_lse) {
    lse = empty_cuda({batch, heads, seqlen_q, 0}, 3, aoti_torch_dtype_float32(), device);
  }
  if (batch == 0 || heads == 0 || seqlen_q == 0) return {o, lse};

  flashcore::FwdParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = o.data_ptr();
  p.lse = want_lse ? static_cast<float*>(lse.data_ptr()) : nullptr;
  p.q_batch_stride = q.stride(0);
  p.q_head_stride = q.stride(1);
  p.q_row_stride = q.stride(2);
  p.k_batch_stride = k.stride(0);
  p.k_head_stride = k.stride(1);
  p.k_row_stride = k.stride(2);
  p.v_batch_stride = v.stride(0);
  p.v_head_stride = v.stride(1);
  p.v_row_stride = v.stride(2);
  p.o_batch_stride = heads * seqlen_q * kHeadDim;
  p.o_head_stride = seqlen_q * kHeadDim;
  p.o_row_stride = kHeadDim;
  p.batch = static_cast<int>(batch);
  p.heads = static_cast<int>(heads);
  p.seqlen_q = static_cast<int>(seqlen_q);
  p.seqlen_k = static_cast<int>(k.size(2));
  p.scale = static_cast<float>(scale);
  p.scale_log2 = static_cast<float>(scale * 1.4426950408889634);  // log2(e)
  p.is_causal = is_causal;
  p.aligned16 = rows_aligned16(q) && rows_aligned16(k) && rows_aligned16(v);

  torch::stable::accelerator::DeviceGuard guard(device);
  check_arch_once(device);
  void* stream = nullptr;
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(device, &stream));
  STD_CUDA_CHECK(flashcore::run_fwd(p, static_cast<cudaStream_t>(stream)));
  return {o, lse};
}

Tensor fwd(Tensor q, Tensor k, Tensor v, double scale, bool is_causal) {
  return std::get<0>(run(q, k, v, scale, is_causal, /*want_lse=*/false));
}

std::tuple<Tensor, Tensor> fwd_lse(Tensor q, Tensor k, Tensor v, double scale, bool is_causal) {
  return run(q, k, v, scale, is_causal, /*want_lse=*/true);
}

}  // namespace

STABLE_TORCH_LIBRARY(flashcore, m) {
  m.def("fwd(Tensor q, Tensor k, Tensor v, float scale, bool is_causal) -> Tensor");
  m.def(
      "fwd_lse(Tensor q, Tensor k, Tensor v, float scale, bool is_causal) -> (Tensor, Tensor)");
}

STABLE_TORCH_LIBRARY_IMPL(flashcore, CUDA, m) {
  m.impl("fwd", TORCH_BOX(&fwd));
  m.impl("fwd_lse", TORCH_BOX(&fwd_lse));
}
