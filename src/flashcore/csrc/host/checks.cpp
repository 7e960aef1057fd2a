#include "checks.h"

#include <cmath>
#include <sstream>

#include "bwd_configs.h"
#include "configs.h"
#include "heuristics.h"

namespace flashcore {
namespace {

constexpr int64_t kMaxSeqlen = int64_t{1} << 30;

const char* dtype_name(int code) {
  switch (code) {
    case 0: return "torch.uint8";
    case 1: return "torch.int8";
    case 2: return "torch.int16";
    case 3: return "torch.int32";
    case 4: return "torch.int64";
    case 5: return "torch.float16";
    case 6: return "torch.float32";
    case 7: return "torch.float64";
    case 11: return "torch.bool";
    case 15: return "torch.bfloat16";
    default: return nullptr;
  }
}

std::string dtype_text(int code) {
  const char* name = dtype_name(code);
  return name ? std::string(name) : "dtype code " + std::to_string(code);
}

// Collects the first failure; later checks are skipped.
class Checker {
 public:
  explicit Checker(std::string* out) : out_(out) {}
  bool failed() const { return kind_ != ArgError::kNone; }
  ArgError kind() const { return kind_; }

  template <typename... Parts>
  void fail(ArgError kind, const Parts&... parts) {
    if (failed()) return;
    std::ostringstream os;
    os << "fused_attention: ";
    (os << ... << parts);
    kind_ = kind;
    if (out_) *out_ = os.str();
  }

 private:
  std::string* out_;
  ArgError kind_ = ArgError::kNone;
};

void check_tensor(Checker& c, const TensorDesc& t, const char* name, const TensorDesc& q) {
  if (!t.is_cuda) {
    c.fail(ArgError::kValue, name, " must be a CUDA tensor: flashcore runs on a CUDA GPU only");
    return;
  }
  if (t.dtype != kScalarTypeHalf && t.dtype != kScalarTypeBFloat16) {
    c.fail(ArgError::kType, name,
           ".dtype must be one of (torch.float16, torch.bfloat16), got ", dtype_text(t.dtype));
    return;
  }
  if (t.ndim != 4) {
    c.fail(ArgError::kValue, name, " must be 4-D (batch, heads, seqlen, head_dim), got ", t.ndim,
           "-D");
    return;
  }
  const int64_t d = t.sizes[3];
  if (d < 8 || d > 256 || d % 8 != 0) {
    c.fail(ArgError::kValue, name,
           ".shape[-1] (head_dim) must be a multiple of 8 from 8 to 256, got ", d);
    return;
  }
  if (t.last_stride != 1) {
    c.fail(ArgError::kValue, name, ".stride(-1) must be 1 (last dimension contiguous), got ",
           t.last_stride);
    return;
  }
  if (t.device != q.device) {
    c.fail(ArgError::kValue, "q, k and v must be on the same device, got q on cuda:", q.device,
           " and ", name, " on cuda:", t.device);
  }
}

}  // namespace

ArgError check_fwd_args(const FwdArgs& a, int device_smem_optin, std::string* message) {
  Checker c(message);
  check_tensor(c, a.q, "q", a.q);
  check_tensor(c, a.k, "k", a.q);
  check_tensor(c, a.v, "v", a.q);
  if (c.failed()) return c.kind();

  if (a.k.dtype != a.q.dtype || a.v.dtype != a.q.dtype) {
    c.fail(ArgError::kType, "q, k and v must have the same dtype, got q ", dtype_text(a.q.dtype),
           ", k ", dtype_text(a.k.dtype), ", v ", dtype_text(a.v.dtype));
  }
  if (a.k.sizes[3] != a.q.sizes[3] || a.v.sizes[3] != a.q.sizes[3]) {
    c.fail(ArgError::kValue, "q, k and v must have the same head_dim (dim 3), got q ",
           a.q.sizes[3], ", k ", a.k.sizes[3], ", v ", a.v.sizes[3]);
  }
  if (a.k.sizes[0] != a.q.sizes[0] || a.v.sizes[0] != a.q.sizes[0]) {
    c.fail(ArgError::kValue, "q, k and v must have the same batch size (dim 0), got q ",
           a.q.sizes[0], ", k ", a.k.sizes[0], ", v ", a.v.sizes[0]);
  }
  const int64_t hq = a.q.sizes[1], hk = a.k.sizes[1], hv = a.v.sizes[1];
  if (hk != hv) {
    c.fail(ArgError::kValue, "k and v must have the same number of heads (dim 1), got k ", hk,
           " and v ", hv);
  } else if (!a.enable_gqa && hk != hq) {
    c.fail(ArgError::kValue, "q, k and v must have the same number of heads (dim 1), got q ", hq,
           ", k ", hk, ", v ", hv,
           "; for grouped-query attention (fewer k/v heads) pass enable_gqa=True");
  } else if (a.enable_gqa && (hk == 0 ? hq != 0 : hq % hk != 0)) {
    c.fail(ArgError::kValue,
           "with enable_gqa=True, q's heads (dim 1) must be a multiple of k's and v's, got q ", hq,
           ", k and v ", hk);
  }
  if (a.k.sizes[2] != a.v.sizes[2]) {
    c.fail(ArgError::kValue, "k and v must have the same seqlen (dim 2), got k ", a.k.sizes[2],
           " and v ", a.v.sizes[2]);
  }
  if (a.k.sizes[2] < 1) {
    c.fail(ArgError::kValue,
           "k.shape[2] (seqlen_k) must be >= 1 (softmax over no keys is undefined), got ",
           a.k.sizes[2]);
  }
  if (a.q.sizes[2] >= kMaxSeqlen || a.k.sizes[2] >= kMaxSeqlen) {
    c.fail(ArgError::kValue, "sequence lengths must be < 2^30, got seqlen_q ", a.q.sizes[2],
           " and seqlen_k ", a.k.sizes[2]);
  }
  if (a.q.sizes[0] * a.q.sizes[1] >= (int64_t{1} << 31)) {
    c.fail(ArgError::kValue, "batch * heads must be < 2^31, got ", a.q.sizes[0] * a.q.sizes[1]);
  }
  if (!(std::isfinite(a.scale) && a.scale > 0.0)) {
    c.fail(ArgError::kValue, "scale must be finite and > 0, got ", a.scale);
  }
  if (a.window_left < -1 || a.window_right < -1) {
    c.fail(ArgError::kValue,
           "window values must be >= 0, or -1 for unbounded, got window=(", a.window_left, ", ",
           a.window_right, ")");
  }
  if (!(std::isfinite(a.softcap) && a.softcap >= 0.0)) {
    c.fail(ArgError::kValue, "softcap must be a finite number > 0 (or None / 0 for off), got ",
           a.softcap);
  }
  if (a.config != -1) {
    if (a.config < 0 || a.config >= kNumFwdConfigs) {
      c.fail(ArgError::kValue, "forced kernel config index must be in [0, ", kNumFwdConfigs,
             "), got ", a.config);
    } else {
      const FwdConfigDesc& cfg = kFwdConfigs[a.config];
      if (a.q.sizes[3] > cfg.head_dim) {
        c.fail(ArgError::kValue, "forced kernel config ", cfg.name, " serves head_dim <= ",
               cfg.head_dim, ", got head_dim ", a.q.sizes[3]);
      } else if (device_smem_optin > 0 && cfg.smem_bytes > device_smem_optin) {
        c.fail(ArgError::kValue, "forced kernel config ", cfg.name, " needs ", cfg.smem_bytes,
               " bytes of shared memory per block, this GPU allows ", device_smem_optin);
      }
    }
  }
  return c.kind();
}

namespace {

std::string shape_text(const TensorDesc& t) {
  std::ostringstream os;
  os << "(";
  for (int i = 0; i < t.ndim && i < 4; ++i) os << (i ? ", " : "") << t.sizes[i];
  if (t.ndim > 4) os << ", ...";
  os << (t.ndim == 1 ? ",)" : ")");
  return os.str();
}

// A CUDA tensor on q's device with this dtype and shape.
void check_like(Checker& c, const TensorDesc& t, const char* name, const TensorDesc& q,
                int dtype, const int64_t* sizes, int ndim, const char* what) {
  if (!t.is_cuda) {
    c.fail(ArgError::kValue, name, " must be a CUDA tensor: flashcore runs on a CUDA GPU only");
    return;
  }
  if (t.device != q.device) {
    c.fail(ArgError::kValue, name, " must be on q's device, got q on cuda:", q.device, " and ",
           name, " on cuda:", t.device);
    return;
  }
  if (t.dtype != dtype) {
    c.fail(ArgError::kType, name, ".dtype must be ", dtype_text(dtype), ", got ",
           dtype_text(t.dtype));
    return;
  }
  TensorDesc want{};
  want.ndim = ndim;
  for (int i = 0; i < ndim; ++i) want.sizes[i] = sizes[i];
  bool same = t.ndim == ndim;
  for (int i = 0; same && i < ndim; ++i) same = t.sizes[i] == sizes[i];
  if (!same) {
    c.fail(ArgError::kValue, name, ".shape must be ", what, " = ", shape_text(want), ", got ",
           shape_text(t));
  }
}

}  // namespace

ArgError check_fwd_train_args(const FwdArgs& args, bool /*deterministic*/,
                              int device_smem_optin, std::string* message) {
  return check_fwd_args(args, device_smem_optin, message);
}

ArgError check_bwd_args(const BwdArgs& a, std::string* message) {
  FwdArgs fwd = a.fwd;
  fwd.config = -1;  // `a.config` indexes the backward catalog, checked below
  const ArgError err = check_fwd_args(fwd, /*device_smem_optin=*/0, message);
  if (err != ArgError::kNone) return err;

  Checker c(message);
  const TensorDesc& q = a.fwd.q;
  const int64_t* out_sizes = q.sizes;  // (batch, heads_q, seqlen_q, head_dim)
  const char* out_what = "q's (batch, heads_q, seqlen_q, head_dim)";
  check_like(c, a.out, "out", q, q.dtype, out_sizes, 4, out_what);
  if (!c.failed() && a.out.last_stride != 1) {
    c.fail(ArgError::kValue, "out.stride(-1) must be 1 (last dimension contiguous), got ",
           a.out.last_stride);
  }
  check_like(c, a.dout, "dout", q, q.dtype, out_sizes, 4, out_what);
  if (!c.failed() && a.dout.last_stride != 1) {
    c.fail(ArgError::kValue, "dout.stride(-1) must be 1 (last dimension contiguous), got ",
           a.dout.last_stride);
  }
  const char* lse_what = "(batch, heads_q, seqlen_q)";
  check_like(c, a.lse, "lse", q, kScalarTypeFloat, q.sizes, 3, lse_what);
  if (!c.failed() && !a.lse_contiguous) c.fail(ArgError::kValue, "lse must be contiguous");
  if (a.has_dlse) {
    check_like(c, a.dlse, "dlse", q, kScalarTypeFloat, q.sizes, 3, lse_what);
    if (!c.failed() && !a.dlse_contiguous) c.fail(ArgError::kValue, "dlse must be contiguous");
  }
  if (a.config != -1) {
    if (a.config < 0 || a.config >= kNumBwdConfigs) {
      c.fail(ArgError::kValue, "forced backward config index must be in [0, ", kNumBwdConfigs,
             "), got ", a.config);
    } else if (q.sizes[3] > kBwdConfigs[a.config].head_dim) {
      const BwdConfigDesc& cfg = kBwdConfigs[a.config];
      c.fail(ArgError::kValue, "forced backward config ", cfg.name, " serves head_dim <= ",
             cfg.head_dim, ", got head_dim ", q.sizes[3]);
    } else if (kBwdConfigs[a.config].sm90 && a.gqa_split > 1 && a.fwd.softcap > 0.0) {
      // Its split kernels are built without softcap (host/bwd_sm90_launch.cuh).
      c.fail(ArgError::kValue, "forced backward config ", kBwdConfigs[a.config].name,
             " with a forced gqa_split > 1 has no softcap build; got gqa_split ", a.gqa_split,
             " and softcap ", a.fwd.softcap);
    } else if (kBwdConfigs[a.config].sm90 && a.deterministic) {
      // The Hopper family adds dQ with atomics and has no query-major dQ kernel.
      c.fail(ArgError::kValue, "forced backward config ", kBwdConfigs[a.config].name,
             " has no deterministic mode; force an mma.sync backward config or use "
             "deterministic=False");
    }
  }
  if (a.gqa_split != -1) {
    // check_fwd_args established that heads_kv divides heads_q (or both are 0).
    const int64_t heads_kv = a.fwd.k.sizes[1];
    const int64_t q_per_kv = heads_kv > 0 ? q.sizes[1] / heads_kv : 1;
    if (a.gqa_split < 1 || q_per_kv % a.gqa_split != 0) {
      c.fail(ArgError::kValue, "forced gqa_split must be a divisor of heads_q / heads_kv = ",
             q_per_kv, ", got ", a.gqa_split);
    }
  }
  return c.kind();
}

}  // namespace flashcore
