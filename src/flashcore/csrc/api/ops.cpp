// The only file that sees torch: argument checks (host/checks.cpp, the one
// contract), output allocation, device guard and stream, config choice, and the
// op registration through the LibTorch stable ABI (no pybind11, no ATen C++
// API), so one abi3 binary serves every Python >= 3.10 and torch >= 2.10.
//
// A failed check raises with a message tagged "[flashcore:ValueError]",
// "[flashcore:TypeError]" or "[flashcore:NotImplementedError]"; flashcore/ops.py
// re-raises it as that Python type.
#include <cuda_runtime_api.h>

#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/macros.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <tuple>

#include "build_config.h"
#include "flashcore/params.h"
#include "flashcore/sm90/tile_order.h"
#include "host/bwd_configs.h"
#include "host/bwd_workspace.h"
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

// A (batch, heads, rows, head_dim) tensor's strides of its first three dims,
// into the three params fields of that tensor.
void set_strides(const Tensor& t, int64_t& batch, int64_t& head, int64_t& row) {
  batch = t.stride(0);
  head = t.stride(1);
  row = t.stride(2);
}

// The FwdParams fields both directions share: q, k, v and their strides, sizes,
// the scale folding and the clamped mask (the backward must see exactly the
// forward's scores).
void fill_problem(flashcore::FwdParams& p, const Tensor& q, const Tensor& k, const Tensor& v,
                  double scale, bool is_causal, int64_t window_left, int64_t window_right,
                  bool bottom_right, double softcap) {
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  set_strides(q, p.q_batch_stride, p.q_head_stride, p.q_row_stride);
  set_strides(k, p.k_batch_stride, p.k_head_stride, p.k_row_stride);
  set_strides(v, p.v_batch_stride, p.v_head_stride, p.v_row_stride);
  const int64_t seqlen_q = q.size(2), seqlen_k = k.size(2);
  p.batch = static_cast<int>(q.size(0));
  p.heads_q = static_cast<int>(q.size(1));
  p.heads_kv = static_cast<int>(k.size(1));
  p.q_per_kv = static_cast<int>(q.size(1) / k.size(1));
  p.seqlen_q = static_cast<int>(seqlen_q);
  p.seqlen_k = static_cast<int>(seqlen_k);
  p.head_dim = static_cast<int>(q.size(3));
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
  const int64_t seqlen_k = k.size(2), head_dim = q.size(3);
  const bool bf16 = q.scalar_type() == torch::headeronly::ScalarType::BFloat16;
  Tensor o = empty_cuda({batch, heads_q, seqlen_q, head_dim}, 4,
                        bf16 ? aoti_torch_dtype_bfloat16() : aoti_torch_dtype_float16(), device);
  Tensor lse = o;  // placeholder when not asked for; never returned then
  if (want_lse) {
    lse = empty_cuda({batch, heads_q, seqlen_q, 0}, 3, aoti_torch_dtype_float32(), device);
  }
  if (batch == 0 || heads_q == 0 || seqlen_q == 0) return {o, lse};

  flashcore::FwdParams p{};
  p.o = o.data_ptr();
  p.lse = want_lse ? static_cast<float*>(lse.data_ptr()) : nullptr;
  p.o_batch_stride = heads_q * seqlen_q * head_dim;
  p.o_head_stride = seqlen_q * head_dim;
  p.o_row_stride = head_dim;
  fill_problem(p, q, k, v, scale, is_causal, window_left, window_right, bottom_right, softcap);
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
        {batch, heads_q, seqlen_q, seqlen_k, p.head_dim, tma_ok, has_mask(p), p.softcap > 0.0f},
        flashcore::device_desc(device));
    STD_TORCH_CHECK(chosen >= 0, "flashcore: no compiled kernel config fits cuda:", device,
                    " (its shared memory per block is too small) for head_dim ", head_dim);
  }
  // A persistent config's scheduler buffer (FwdParams::tile_counter: the
  // task counter and, for a tail split, its arrival counters
  // and partial results; sm90/tile_order.h): its own allocation per call (the
  // launch zeroes the counters on the stream), so concurrent calls and graphs
  // never share one.
  Tensor sched = o;  // placeholder; freed stream-ordered after the kernel
  const flashcore::FwdConfigDesc& cfg = flashcore::kFwdConfigs[chosen];
  if (cfg.persistent) {
    const int sm_count = flashcore::device_desc(device).sm_count;
    const int64_t tiles = (seqlen_q + cfg.block_m - 1) / cfg.block_m * batch * heads_q;
    const flashcore::sm90::TailSplit plan = flashcore::sm90::fwd_tail_split(
        cfg.tail_split && !has_mask(p), tiles, sm_count, seqlen_k, cfg.block_n);
    const flashcore::sm90::SchedLayout layout =
        flashcore::sm90::sched_layout(plan, cfg.warps - 4, cfg.head_dim);
    sched = empty_cuda({(layout.bytes + 3) / 4, 0, 0, 0}, 1, aoti_torch_dtype_int32(), device);
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

// ---- training: fwd_train and bwd (issue 10, docs/design/backward.md §8) ----

void throw_if_failed(flashcore::ArgError err, const std::string& message) {
  STD_TORCH_CHECK(err == flashcore::ArgError::kNone,
                  err == flashcore::ArgError::kType             ? "[flashcore:TypeError] "
                  : err == flashcore::ArgError::kNotImplemented ? "[flashcore:NotImplementedError] "
                                                                : "[flashcore:ValueError] ",
                  message);
}

// The backward config for this call (forced, or the heuristic's for these
// tensors' TMA readiness, the mode and a forced GQA split), or a ValueError
// naming the head dim and the device when no backward config serves it. Called
// by fwd_train too, so training fails before its forward runs.
int bwd_config_or_throw(const Tensor& q, const Tensor& k, bool tma_ok, bool deterministic,
                        int64_t gqa_split, int64_t config) {
  const int32_t device = q.get_device_index();
  const flashcore::DeviceDesc dev = flashcore::device_desc(device);
  if (config >= 0) {  // range, head dim and (sm90) mode checked by check_bwd_args
    const flashcore::BwdConfigDesc& cfg = flashcore::kBwdConfigs[config];
    if (cfg.sm90) {
      // A forced Hopper-family config: only where it has code and its TMA reads work.
      STD_TORCH_CHECK(flashcore::built_with_sm90a(), "[flashcore:ValueError] forced backward "
                      "config ", cfg.name, " needs a build with sm_90a; this build has "
                      FLASHCORE_ARCH_LIST);
      STD_TORCH_CHECK(dev.cc_major == 9 && dev.cc_minor == 0, "[flashcore:ValueError] forced "
                      "backward config ", cfg.name, " needs compute capability 9.0 (H100/H200); "
                      "got ", dev.cc_major, ".", dev.cc_minor);
      // Its TMA rule is checked by the caller (bwd), which sees every tensor.
    }
    STD_TORCH_CHECK(cfg.smem_bytes <= dev.smem_optin, "[flashcore:ValueError] forced backward "
                    "config ", cfg.name, " needs ", cfg.smem_bytes, " bytes of shared memory per "
                    "block, this GPU allows ", dev.smem_optin);
    return static_cast<int>(config);
  }
  const int head_dim = static_cast<int>(q.size(3));
  flashcore::BwdShape shape{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2),
                            head_dim,  tma_ok,    deterministic, gqa_split};
  const int chosen = flashcore::choose_bwd_config(shape, dev);
  if (chosen >= 0) return chosen;
  // The widest head dim the backward serves here: the error's suggestion.
  int widest = 0;
  for (int d = 8; d <= 256; d += 8) {
    shape.head_dim = d;
    if (flashcore::choose_bwd_config(shape, dev) >= 0) widest = d;
  }
  STD_TORCH_CHECK(false, "[flashcore:ValueError] fused_attention: the backward pass has no kernel "
                  "for head_dim ", head_dim, " on cuda:", device, " (compute capability ",
                  dev.cc_major, ".", dev.cc_minor, "); ",
                  widest > 0 ? "training (inputs that require grad) needs head_dim <= "
                             : "no backward config of this build fits this GPU's shared memory",
                  widest > 0 ? std::to_string(widest) : std::string(),
                  ". For inference, call under torch.no_grad() or torch.inference_mode()");
  return -1;
}

bool all_rows_aligned16(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (!rows_aligned16(*t)) return false;
  }
  return true;
}

// The forward for training: fwd_lse's kernels, after the checks that the
// backward will pass (deterministic mode, a backward config for this head dim
// and GPU), so a call that cannot be differentiated fails before it runs.
std::tuple<Tensor, Tensor> fwd_train(Tensor q, Tensor k, Tensor v, double scale, bool is_causal,
                                     int64_t window_left, int64_t window_right,
                                     bool bottom_right, double softcap, bool enable_gqa,
                                     bool deterministic, int64_t config) {
  const flashcore::FwdArgs args{describe(q), describe(k), describe(v), scale,   is_causal,
                                window_left, window_right, bottom_right, softcap, enable_gqa,
                                config};
  std::string message;
  throw_if_failed(
      flashcore::check_fwd_train_args(args, deterministic, /*device_smem_optin=*/0, &message),
      message);
  if (q.size(0) > 0 && q.size(1) > 0 && q.size(2) > 0) {
    const bool tma_ok = all_rows_aligned16({&q, &k, &v}) && strides_nonzero(q) &&
                        strides_nonzero(k) && strides_nonzero(v);
    torch::stable::accelerator::DeviceGuard guard(q.get_device_index());
    // out and dout do not exist yet, and the forced GQA split is the
    // backward's: the choice may differ there (Hopper or mma.sync), but a
    // head dim and GPU that one serves the other serves too.
    bwd_config_or_throw(q, k, tma_ok, deterministic, /*gqa_split=*/-1, /*config=*/-1);
  }
  return run(q, k, v, scale, is_causal, window_left, window_right, bottom_right, softcap,
             enable_gqa, config, /*want_lse=*/true);
}

// A gradient like its input, by aten's empty_like (preserve_format): a dense
// input's strides, a non-overlapping input's dims in the same order packed
// densely (a BSHD projection or a slice of a packed one viewed as BHSD gets a
// BSHD-ordered gradient, so the upstream transpose's backward needs no copy),
// else contiguous. A result with a strided last dim (never seen for inputs
// that pass the contract) becomes contiguous. ops.py's fake is the same rule.
Tensor grad_like(const Tensor& t) {
  Tensor g = torch::stable::empty_like(t);
  if (g.stride(3) == 1) return g;
  const bool bf16 = t.scalar_type() == torch::headeronly::ScalarType::BFloat16;
  return empty_cuda({t.size(0), t.size(1), t.size(2), t.size(3)}, 4,
                    bf16 ? aoti_torch_dtype_bfloat16() : aoti_torch_dtype_float16(),
                    t.get_device_index());
}

// dq, dk, dv of fwd_train's (out, lse) for the output gradient dout and the
// lse gradient dlse (absent: none). Runs the backward kernels (host/run.h
// run_bwd: preprocess, main, [dK / dV reduce,] postprocess; deterministic: dq
// by its own query-major kernel, no atomics) on the current stream. config and
// gqa_split: -1 for the heuristics' choices (a forced value is a debug
// override, flashcore._debug). The schema's
// `Tensor? dlse` boxes through TORCH_BOX as std::optional<Tensor> at our
// stable-ABI target (2.10), None and a tensor alike (checked on torch 2.14).
std::tuple<Tensor, Tensor, Tensor> bwd(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                                       Tensor lse, std::optional<Tensor> dlse, double scale,
                                       bool is_causal, int64_t window_left, int64_t window_right,
                                       bool bottom_right, double softcap, bool enable_gqa,
                                       bool deterministic, int64_t config, int64_t gqa_split) {
  flashcore::BwdArgs a{};
  a.fwd = {describe(q),  describe(k),   describe(v),  scale,   is_causal,
           window_left,  window_right,  bottom_right, softcap, enable_gqa,
           /*config=*/-1};
  a.dout = describe(dout);
  a.out = describe(out);
  a.lse = describe(lse);
  a.lse_contiguous = lse.is_contiguous();
  a.has_dlse = dlse.has_value();
  if (a.has_dlse) {
    a.dlse = describe(*dlse);
    a.dlse_contiguous = dlse->is_contiguous();
  }
  a.deterministic = deterministic;
  a.config = config;
  a.gqa_split = gqa_split;
  std::string message;
  throw_if_failed(flashcore::check_bwd_args(a, &message), message);

  const int32_t device = q.get_device_index();
  torch::stable::accelerator::DeviceGuard guard(device);
  Tensor dq = grad_like(q);
  Tensor dk = grad_like(k);
  Tensor dv = grad_like(v);
  if (q.size(0) == 0 || q.size(1) == 0 || q.size(2) == 0) {
    // No query: dq is empty, and no key takes part in any pair.
    torch::stable::zero_(dk);
    torch::stable::zero_(dv);
    return {dq, dk, dv};
  }

  flashcore::BwdParams p{};
  p.o = out.data_ptr();
  p.lse = static_cast<float*>(lse.data_ptr());
  set_strides(out, p.o_batch_stride, p.o_head_stride, p.o_row_stride);
  fill_problem(p, q, k, v, scale, is_causal, window_left, window_right, bottom_right, softcap);
  p.dout = dout.data_ptr();
  set_strides(dout, p.do_batch_stride, p.do_head_stride, p.do_row_stride);
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
  set_strides(dq, p.dq_batch_stride, p.dq_head_stride, p.dq_row_stride);
  set_strides(dk, p.dk_batch_stride, p.dk_head_stride, p.dk_row_stride);
  set_strides(dv, p.dv_batch_stride, p.dv_head_stride, p.dv_row_stride);
  p.dlse = dlse.has_value() ? static_cast<const float*>(dlse->data_ptr()) : nullptr;
  p.scale = static_cast<float>(scale);
  p.deterministic = deterministic;
  // Every 16-bit tensor the kernels read or write rows of: a conservative
  // superset of the forward's q, k, v.
  p.aligned16 = all_rows_aligned16({&q, &k, &v, &out, &dout, &dq, &dk, &dv});

  check_arch_once(device);
  const bool tma_ok = p.aligned16 && strides_nonzero(q) && strides_nonzero(k) &&
                      strides_nonzero(v) && strides_nonzero(out) && strides_nonzero(dout);
  const int chosen = bwd_config_or_throw(q, k, tma_ok, deterministic, gqa_split, config);
  // Only a forced config can fail this: the heuristic picks the Hopper family
  // only for tma_ok calls and gives the others an mma.sync config.
  if (flashcore::kBwdConfigs[chosen].sm90 && !tma_ok) {
    auto strides = [](const Tensor& t) {
      return "(" + std::to_string(t.stride(0)) + ", " + std::to_string(t.stride(1)) + ", " +
             std::to_string(t.stride(2)) + ")";
    };
    STD_TORCH_CHECK(false, "[flashcore:ValueError] forced backward config ",
                    flashcore::kBwdConfigs[chosen].name,
                    " needs q, k, v, out, dout and the gradients with 16-byte aligned data and "
                    "strides that are nonzero multiples of 8 elements (TMA); got q strides ",
                    strides(q), ", k strides ", strides(k), ", v strides ", strides(v),
                    ", out strides ", strides(out), ", dout strides ", strides(dout));
  }
  // The group split sizes the workspace, so it is decided here, before the
  // allocation (forced: checked to divide q_per_kv by check_bwd_args).
  p.gqa_split = gqa_split >= 1 ? static_cast<int>(gqa_split)
                               : flashcore::choose_bwd_gqa_split(
                                     {q.size(0), q.size(1), q.size(2), k.size(2), p.head_dim,
                                      tma_ok, false, p.softcap > 0.0f},
                                     k.size(1), flashcore::device_desc(device), chosen);

  const flashcore::BwdWorkspace ws = flashcore::bwd_workspace(p, chosen);
  const flashcore::BwdWorkspaceLayout layout = flashcore::bwd_workspace_layout(ws);
  Tensor work = empty_cuda({layout.total_elems, 0, 0, 0}, 1, aoti_torch_dtype_float32(), device);
  float* base = static_cast<float*>(work.data_ptr());
  p.dq_accum = deterministic ? nullptr : base;  // none in deterministic mode
  p.dpsum = base + layout.dpsum_offset;
  p.lse_log2 = base + layout.lse_log2_offset;
  p.seqlen_q_rounded = ws.seqlen_q_rounded;
  if (ws.partial_elems > 0) {
    p.dk_partial = base + layout.dk_partial_offset;
    p.dv_partial = base + layout.dv_partial_offset;
  }

  void* stream = nullptr;
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(device, &stream));
  const bool bf16 = q.scalar_type() == torch::headeronly::ScalarType::BFloat16;
  STD_CUDA_CHECK(flashcore::run_bwd(
      p, bf16 ? flashcore::DType::kBFloat16 : flashcore::DType::kFloat16, chosen,
      static_cast<cudaStream_t>(stream)));
  // `work` is freed here; the caching allocator orders its reuse after the
  // kernels queued on this stream.
  return {dq, dk, dv};
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
  m.def(
      "fwd_train(Tensor q, Tensor k, Tensor v, float scale, bool is_causal, int window_left, "
      "int window_right, bool bottom_right, float softcap, bool enable_gqa, bool deterministic, "
      "int config) -> (Tensor, Tensor)");
  m.def(
      "bwd(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor? dlse, "
      "float scale, bool is_causal, int window_left, int window_right, bool bottom_right, "
      "float softcap, bool enable_gqa, bool deterministic, int config, int gqa_split=-1) -> "
      "(Tensor, Tensor, Tensor)");
}

STABLE_TORCH_LIBRARY_IMPL(flashcore, CUDA, m) {
  m.impl("fwd", TORCH_BOX(&fwd));
  m.impl("fwd_lse", TORCH_BOX(&fwd_lse));
  m.impl("fwd_train", TORCH_BOX(&fwd_train));
  m.impl("bwd", TORCH_BOX(&bwd));
}
