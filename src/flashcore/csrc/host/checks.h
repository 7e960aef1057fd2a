// The argument contract of the ops, written once: api/ops.cpp runs it on every
// call, and the Python side runs it (through c_api.cpp) to word errors raised
// under torch.compile's fake tensors. Torch-free: tensors are described
// by the few numbers the rules need.
#pragma once

#include <cstdint>
#include <string>

namespace flashcore {

struct TensorDesc {
  bool is_cuda;
  int device;
  int dtype;  // c10::ScalarType code (5 = Half, 15 = BFloat16)
  int ndim;
  int64_t sizes[4];     // valid for the first min(ndim, 4) dims
  int64_t last_stride;  // stride of the last dim (when ndim >= 1)
};

struct FwdArgs {
  TensorDesc q, k, v;
  double scale;
  bool is_causal;
  int64_t window_left;   // -1: unbounded
  int64_t window_right;  // -1: unbounded
  bool bottom_right;
  double softcap;  // 0: off
  bool enable_gqa;
  int64_t config;  // -1: heuristic; else an index into kFwdConfigs
};

// What a failed check maps to in Python.
enum class ArgError { kNone = 0, kValue = 1, kType = 2, kNotImplemented = 3 };

// Checks every rule; on failure returns the kind and sets *message (which names
// the argument, the expected and the given value). `device_smem_optin` > 0 also
// checks that a forced config fits the device's shared memory.
ArgError check_fwd_args(const FwdArgs& args, int device_smem_optin, std::string* message);

// The training forward (fwd_train): the forward's rules. Both backward modes
// exist, so `deterministic` (the mode the backward will run) refuses nothing;
// it stays in the contract for the rules a mode may add.
ArgError check_fwd_train_args(const FwdArgs& args, bool deterministic, int device_smem_optin,
                              std::string* message);

// The backward op's arguments. `fwd` holds q, k, v and the forward's scalars
// (its config is ignored: `config` below indexes the backward catalog).
struct BwdArgs {
  FwdArgs fwd;
  TensorDesc dout;  // (batch, heads_q, seqlen_q, head_dim), q's dtype, last dim contiguous
  TensorDesc out;   // the forward's output: the same
  TensorDesc lse;   // (batch, heads_q, seqlen_q) float32, contiguous
  bool lse_contiguous;
  bool has_dlse;    // dlse: absent, or lse's shape, dtype and layout
  TensorDesc dlse;
  bool dlse_contiguous;
  bool deterministic;
  int64_t config;  // -1: heuristic; else an index into kBwdConfigs (host/bwd_configs.h)
  // -1: heuristic (host/heuristics.h choose_bwd_gqa_split); else the forced
  // number of parts of each GQA group, a divisor of heads_q / heads_kv.
  int64_t gqa_split = -1;
};

// Checks every rule of the backward op (the forward's on q, k, v first). A
// forced Hopper-family config (kBwdConfigs[config].sm90) serves the default
// mode only (with or without a forced GQA split); its device and TMA rules are
// api/ops.cpp's.
ArgError check_bwd_args(const BwdArgs& args, std::string* message);

constexpr int kScalarTypeHalf = 5;
constexpr int kScalarTypeBFloat16 = 15;
constexpr int kScalarTypeFloat = 6;

}  // namespace flashcore
