// The only file that sees torch: argument checks (host/checks.cpp, the one
// contract), output allocation, device guard and stream, config choice, and the
// op registration through the LibTorch stable ABI (no pybind11, no ATen C++
// API), so one abi3 binary serves every Python >= 3.10 and torch >= 2.10.
//
// A failed check raises with a message tagged "[flashcore:ValueError]" or
// "[flashcore:TypeError]"; flashcore/ops.py re-raises it as that Python type.
#include <cuda_runtime_api.h>

#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/macros.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>

#include "build_config.h"
#include "flashcore/params.h"
#include "host/checks.h"
#include "host/configs.h"
#include "host/heuristics.h"
#include "host/run.h"

namespace {

using torch::stable::Tensor;

flashcore::TensorDesc describe(const Tensor& t) {
  flashcore::TensorDesc d{};
  d.is_cuda = t.is_cuda();
  d.device = d.is_cuda ? t.get_device_index() : -1;
  d.dtype = static_cast<int>(t.scalar_type());
  d.ndim = static_cast<int>(t.dim());
  for (int i = 0; i < 4 && i < d.ndim; ++i) d.sizes[i] = t.size(i);
  d.last_stride = d.ndim >= 1 ? t.stride(d.ndim - 1) : 1;
  return d;
}

// A dim of size 1 is never stepped over, so its stride cannot misalign a row.
bool rows_aligned16(const Tensor& t) {
  if (reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 != 0) return false;
  for (int d = 0; d < 3; ++d) {
    if (t.size(d) > 1 && t.stride(d) % 8 != 0) return false;
  }
  return true;
}

// TMA (the Hopper family) needs rows_aligned16 and, beyond it, strides that
// are nonzero (no broadcast dims) where a dim is stepped.
bool strides_nonzero(const Tensor& t) {
  for (int d = 0; d < 3; ++d) {
    if (t.size(d) > 1 && t.stride(d) == 0) return false;
  }
  return true;
}

// Whether the call masks any (query, key) pair (causal or a window): the rule
// of host/fwd_launch.cuh's fwd_has_mask, which picks the kernel variant.
bool has_mask(const flashcore::FwdParams& p) {
  const int unbounded = std::max(p.seqlen_q, p.seqlen_k);
  return p.window_left < unbounded || p.window_right < unbounded;
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
                               bool is_causal, int64_t window_left, int64_t window_right,
                               bool bottom_right, double softcap, bool enable_gqa, int64_t config,
                               bool want_lse) {
  flashcore::FwdArgs args{describe(q), describe(k), describe(v), scale,   is_causal,
                          window_left, window_right, bottom_right, softcap, enable_gqa,
                          config};
  // A forced config's shared memory is checked against the device too.
  const int smem_optin =
      config >= 0 && q.is_cuda() ? flashcore::device_desc(q.get_device_index()).smem_optin : 0;
  std::string message;
  const flashcore::ArgError err = flashcore::check_fwd_args(args, smem_optin, &message);
  STD_TORCH_CHECK(err == flashcore::ArgError::kNone,
                  err == flashcore::ArgError::kType ? "[flashcore:TypeError] "
                                                    : "[flashcore:ValueError] ",
                  message);

  const int32_t device = q.get_device_index();
  const int64_t batch = q.size(0), heads_q = q.size(1), seqlen_q = q.size(2);
  const int64_t heads_kv = k.size(1), seqlen_k = k.size(2), head_dim = q.size(3);
  const bool bf16 = q.scalar_type() == torch::headeronly::ScalarType::BFloat16;
  Tensor o = empty_cuda({batch, heads_q, seqlen_q, head_dim}, 4,
                        bf16 ? aoti_torch_dtype_bfloat16() : aoti_torch_dtype_float16(), device);
  Tensor lse = o;  // placeholder when not asked for; never returned then
  if (want_lse) {
    lse = empty_cuda({batch, heads_q, seqlen_q, 0}, 3, aoti_torch_dtype_float32(), device);
  }
  if (batch == 0 || heads_q == 0 || seqlen_q == 0) return {o, lse};

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
  p.o_batch_stride = heads_q * seqlen_q * head_dim;
  p.o_head_stride = seqlen_q * head_dim;
  p.o_row_stride = head_dim;
  p.batch = static_cast<int>(batch);
  p.heads_q = static_cast<int>(heads_q);
  p.heads_kv = static_cast<int>(heads_kv);
  p.q_per_kv = static_cast<int>(heads_q / heads_kv);
  p.seqlen_q = static_cast<int>(seqlen_q);
  p.seqlen_k = static_cast<int>(seqlen_k);
  p.head_dim = static_cast<int>(head_dim);
  constexpr double kLog2e = 1.4426950408889634;
  if (softcap > 0.0) {
    p.softcap = static_cast<float>(softcap);
    p.softcap_scale = static_cast<float>(scale / softcap);
    p.scale_log2 = static_cast<float>(kLog2e);
  } else {
    p.scale_log2 = static_cast<float>(scale * kLog2e);
  }
  // Unbounded window sides (and no mask at all) clamp to max(Sq, Sk), past
  // which no row's range reaches; causal caps the right side at the diagonal.
  const int64_t unbounded = std::max(seqlen_q, seqlen_k);
  int64_t right = window_right < 0 ? unbounded : std::min(window_right, unbounded);
  if (is_causal) right = std::min<int64_t>(right, 0);
  const int64_t left = window_left < 0 ? unbounded : std::min(window_left, unbounded);
  p.window_left = static_cast<int>(left);
  p.window_right = static_cast<int>(right);
  p.key_offset = bottom_right ? static_cast<int>(seqlen_k - seqlen_q) : 0;
  p.aligned16 = rows_aligned16(q) && rows_aligned16(k) && rows_aligned16(v);

  torch::stable::accelerator::DeviceGuard guard(device);
  check_arch_once(device);
  const bool tma_ok = p.aligned16 && strides_nonzero(q) && strides_nonzero(k) &&
                      strides_nonzero(v);
  int chosen = static_cast<int>(config);
  if (chosen >= 0 && flashcore::kFwdConfigs[chosen].sm90) {
    // A forced Hopper-family config: only where it has code and its TMA reads work.
    const flashcore::DeviceDesc dev = flashcore::device_desc(device);
    STD_TORCH_CHECK(flashcore::built_with_sm90a(), "[flashcore:ValueError] forced kernel config ",
                    flashcore::kFwdConfigs[chosen].name,
                    " needs a build with sm_90a; this build has " FLASHCORE_ARCH_LIST);
    STD_TORCH_CHECK(dev.cc_major == 9 && dev.cc_minor == 0, "[flashcore:ValueError] forced kernel config ",
                    flashcore::kFwdConfigs[chosen].name,
                    " needs compute capability 9.0 (H100/H200); got ", dev.cc_major, ".",
                    dev.cc_minor);
    STD_TORCH_CHECK(tma_ok, "[flashcore:ValueError] forced kernel config ",
                    flashcore::kFwdConfigs[chosen].name,
                    " needs q, k and v with 16-byte aligned data and strides that are nonzero "
                    "multiples of 8 elements (TMA); got q strides (",
                    q.stride(0), ", ", q.stride(1), ", ", q.stride(2), "), k strides (", k.stride(0),
                    ", ", k.stride(1), ", ", k.stride(2), "), v strides (", v.stride(0), ", ",
                    v.stride(1), ", ", v.stride(2), ")");
  }
  if (chosen < 0) {
    chosen = flashcore::choose_fwd_config(
        {batch, heads_q, seqlen_q, seqlen_k, p.head_dim, tma_ok, has_mask(p)},
        flashcore::device_desc(device));
    STD_TORCH_CHECK(chosen >= 0, "flashcore: no compiled kernel config fits cuda:", device,
                    " (its shared memory per block is too small) for head_dim ", head_dim);
  }
  // A persistent config's counter and per-block tile slots (FwdParams): its
  // own allocation per call (the launch zeroes the counter on the stream), so
  // concurrent calls and graphs never share one.
  Tensor sched = o;  // placeholder; freed stream-ordered after the kernel
  if (flashcore::kFwdConfigs[chosen].persistent) {
    sched = empty_cuda({1 + flashcore::device_desc(device).sm_count, 0, 0, 0}, 1,
                       aoti_torch_dtype_int32(), device);
    p.tile_counter = static_cast<int*>(sched.data_ptr());
  }
  void* stream = nullptr;
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(device, &stream));
  STD_CUDA_CHECK(flashcore::run_fwd(
      p, bf16 ? flashcore::DType::kBFloat16 : flashcore::DType::kFloat16, chosen,
      static_cast<cudaStream_t>(stream)));
  return {o, lse};
}

Tensor fwd(Tensor q, Tensor k, Tensor v, double scale, bool is_causal, int64_t window_left,
           int64_t window_right, bool bottom_right, double softcap, bool enable_gqa,
           int64_t config) {
  return std::get<0>(run(q, k, v, scale, is_causal, window_left, window_right, bottom_right,
                         softcap, enable_gqa, config, /*want_lse=*/false));
}

std::tuple<Tensor, Tensor> fwd_lse(Tensor q, Tensor k, Tensor v, double scale, bool is_causal,
                                   int64_t window_left, int64_t window_right, bool bottom_right,
                                   double softcap, bool enable_gqa, int64_t config) {
  return run(q, k, v, scale, is_causal, window_left, window_right, bottom_right, softcap,
             enable_gqa, config, /*want_lse=*/true);
}

}  // namespace

STABLE_TORCH_LIBRARY(flashcore, m) {
  m.def(
      "fwd(Tensor q, Tensor k, Tensor v, float scale, bool is_causal, int window_left, "
      "int window_right, bool bottom_right, float softcap, bool enable_gqa, int config) -> Tensor");
  m.def(
      "fwd_lse(Tensor q, Tensor k, Tensor v, float scale, bool is_causal, int window_left, "
      "int window_right, bool bottom_right, float softcap, bool enable_gqa, int config) -> "
      "(Tensor, Tensor)");
}

STABLE_TORCH_LIBRARY_IMPL(flashcore, CUDA, m) {
  m.impl("fwd", TORCH_BOX(&fwd));
  m.impl("fwd_lse", TORCH_BOX(&fwd_lse));
}
