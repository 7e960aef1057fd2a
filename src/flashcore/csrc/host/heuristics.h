// Kernel-config choice for a forward call: a pure function of the problem shape
// and a few device numbers, so it is unit-tested on the CPU (tests/test_api.py
// through the C entry points in c_api.cpp) for GPUs we do not have.
#pragma once

#include <cstdint>

namespace flashcore {

struct DeviceDesc {
  int sm_count;
  int cc_major;
  int cc_minor;
  int smem_optin;  // max dynamic shared memory per block with the opt-in, bytes
};

struct FwdShape {
  int64_t batch;
  int64_t heads_q;
  int64_t seqlen_q;
  int64_t seqlen_k;
  int head_dim;  // the caller's head dim (multiple of 8, <= 256)
  // q, k and v can be read by TMA: every row 16-byte aligned and every stride
  // of a dim of size > 1 a nonzero multiple of 16 bytes (api/ops.cpp).
  bool tma_ok = true;
  // Some (query, key) pair is masked: causal or a window.
  bool masked = false;
  // A logit softcap (tanh) is applied.
  bool softcap = false;
};

// Whether this build compiled the Hopper family (an sm_90a target).
bool built_with_sm90a();

// Index into kFwdConfigs (host/configs.h), or -1 when no compiled config fits
// the device (cannot happen on sm_80/86/89/90: each tile width has a config
// within 99 KB of shared memory).
int choose_fwd_config(const FwdShape& shape, const DeviceDesc& device);

// The narrowest compiled tile head dim >= head_dim, or -1 past the widest.
int fwd_tile_head_dim(int head_dim);

// A backward call: the forward's shape plus what only the backward's choice
// reads (the kv heads of its grid, the mode, a forced GQA split).
struct BwdShape {
  int64_t batch;
  int64_t heads_q;
  int64_t heads_kv;
  int64_t seqlen_q;
  int64_t seqlen_k;
  int head_dim;  // the caller's head dim (multiple of 8, <= 256)
  // q, k, v, out and dout can be read by TMA (FwdShape::tma_ok's rule, on
  // every tensor the backward reads; api/ops.cpp).
  bool tma_ok = false;
  // The deterministic mode: only the mma.sync family has it (the Hopper one
  // adds dQ by atomics).
  bool deterministic = false;
  // A GQA split forced by the debug override (BwdArgs::gqa_split; -1: none):
  // one over 1 exists only in the mma.sync family.
  int64_t forced_gqa_split = -1;
};

// Backward (issue 10): index into the backward catalog for this call and
// device, or -1 when no compiled backward config serves it (the caller raises
// naming the head dim and device). The Hopper family (sm90_bwd_d64 / _d128)
// on compute capability 9.0 in a build with sm_90a, for TMA-readable inputs
// in the default mode whose grid of 128-key blocks fills at least 48% of a
// wave of the SMs; else the narrowest mma.sync config that fits
// (host/heuristics.cpp says why).
int choose_bwd_config(const BwdShape& shape, const DeviceDesc& device);

// The narrowest compiled backward tile head dim >= head_dim, or -1 past the widest.
int bwd_tile_head_dim(int head_dim);

// How many parts the backward splits each GQA group's query heads into
// (BwdParams::gqa_split; docs/design/backward.md section 5) for backward
// config `config`: the divisor G of q_per_kv = heads_q / heads_kv that
// minimizes waves / G, where waves = ceil(batch * heads_kv * key blocks * G /
// sm_count) (one block per SM), the smallest such G on ties. 1 without GQA
// (q_per_kv 1), for a Hopper-family config with softcap (no split build) and
// for an invalid config, shape or device.
int choose_bwd_gqa_split(const FwdShape& shape, int64_t heads_kv, const DeviceDesc& device,
                         int config);

}  // namespace flashcore
