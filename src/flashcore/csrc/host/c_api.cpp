// Plain C entry points into the torch-free host code, for Python's ctypes:
// the argument contracts (to word errors under torch.compile's fake tensors,
// where the ops themselves do not run), the config heuristics, the config
// catalog (CPU tests and the debug override) and the backward's workspace size
// (the GPU tests poison it). None of them touch a GPU.
#include <cstdint>
#include <cstring>
#include <string>

#include "bwd_configs.h"
#include "bwd_workspace.h"
#include "checks.h"
#include "configs.h"
#include "debug_overrides.h"
#include "flashcore/sm90/tile_order.h"
#include "heuristics.h"
#include "run.h"

#define FLASHCORE_C_API extern "C" __attribute__((visibility("default")))

namespace {

// Tensor description as 9 int64: is_cuda, device, dtype, ndim, sizes[4], last_stride.
flashcore::TensorDesc unpack(const int64_t* m) {
  flashcore::TensorDesc t{};
  t.is_cuda = m[0] != 0;
  t.device = static_cast<int>(m[1]);
  t.dtype = static_cast<int>(m[2]);
  t.ndim = static_cast<int>(m[3]);
  for (int i = 0; i < 4; ++i) t.sizes[i] = m[4 + i];
  t.last_stride = m[8];
  return t;
}

void copy_out(const std::string& s, char* buf, int len) {
  if (buf == nullptr || len <= 0) return;
  const size_t n = s.size() < static_cast<size_t>(len - 1) ? s.size() : static_cast<size_t>(len - 1);
  std::memcpy(buf, s.data(), n);
  buf[n] = '\0';
}

}  // namespace

// Returns 0 (valid), 1 (ValueError) or 2 (TypeError); the message goes to msg.
FLASHCORE_C_API int flashcore_check_fwd_args(const int64_t* q, const int64_t* k, const int64_t* v,
                                             double scale, int is_causal, int64_t window_left,
                                             int64_t window_right, int bottom_right,
                                             double softcap, int enable_gqa, int64_t config,
                                             char* msg, int msg_len) {
  flashcore::FwdArgs a{};
  a.q = unpack(q);
  a.k = unpack(k);
  a.v = unpack(v);
  a.scale = scale;
  a.is_causal = is_causal != 0;
  a.window_left = window_left;
  a.window_right = window_right;
  a.bottom_right = bottom_right != 0;
  a.softcap = softcap;
  a.enable_gqa = enable_gqa != 0;
  a.config = config;
  std::string message;
  const flashcore::ArgError err = flashcore::check_fwd_args(a, /*device_smem_optin=*/0, &message);
  copy_out(message, msg, msg_len);
  return static_cast<int>(err);
}

// The training forward's contract: the forward's, plus `deterministic`.
FLASHCORE_C_API int flashcore_check_fwd_train_args(const int64_t* q, const int64_t* k,
                                                   const int64_t* v, double scale, int is_causal,
                                                   int64_t window_left, int64_t window_right,
                                                   int bottom_right, double softcap,
                                                   int enable_gqa, int deterministic,
                                                   int64_t config, char* msg, int msg_len) {
  const flashcore::FwdArgs a{unpack(q),    unpack(k),    unpack(v),          scale,
                             is_causal != 0, window_left, window_right, bottom_right != 0,
                             softcap,      enable_gqa != 0, config};
  std::string message;
  const flashcore::ArgError err =
      flashcore::check_fwd_train_args(a, deterministic != 0, /*device_smem_optin=*/0, &message);
  copy_out(message, msg, msg_len);
  return static_cast<int>(err);
}

// The backward op's contract. dlse: nullptr for none. gqa_split: -1 for the
// heuristic's. 0 valid, 1 ValueError, 2 TypeError, 3 NotImplementedError.
FLASHCORE_C_API int flashcore_check_bwd_args(const int64_t* dout, const int64_t* q,
                                             const int64_t* k, const int64_t* v,
                                             const int64_t* out, const int64_t* lse,
                                             const int64_t* dlse, int lse_contiguous,
                                             int dlse_contiguous, double scale, int is_causal,
                                             int64_t window_left, int64_t window_right,
                                             int bottom_right, double softcap, int enable_gqa,
                                             int deterministic, int64_t config,
                                             int64_t gqa_split, char* msg, int msg_len) {
  flashcore::BwdArgs a{};
  a.fwd = {unpack(q),      unpack(k),   unpack(v),    scale,   is_causal != 0,
           window_left,    window_right, bottom_right != 0, softcap, enable_gqa != 0,
           /*config=*/-1};
  a.dout = unpack(dout);
  a.out = unpack(out);
  a.lse = unpack(lse);
  a.lse_contiguous = lse_contiguous != 0;
  a.has_dlse = dlse != nullptr;
  if (a.has_dlse) a.dlse = unpack(dlse);
  a.dlse_contiguous = dlse_contiguous != 0;
  a.deterministic = deterministic != 0;
  a.config = config;
  a.gqa_split = gqa_split;
  std::string message;
  const flashcore::ArgError err = flashcore::check_bwd_args(a, &message);
  copy_out(message, msg, msg_len);
  return static_cast<int>(err);
}

FLASHCORE_C_API int flashcore_choose_fwd_config(int64_t batch, int64_t heads_q, int64_t seqlen_q,
                                                int64_t seqlen_k, int head_dim, int sm_count,
                                                int cc_major, int cc_minor, int smem_optin,
                                                int tma_ok, int masked, int softcap) {
  return flashcore::choose_fwd_config(
      {batch, heads_q, seqlen_q, seqlen_k, head_dim, tma_ok != 0, masked != 0, softcap != 0},
      {sm_count, cc_major, cc_minor, smem_optin});
}

FLASHCORE_C_API int flashcore_num_fwd_configs() { return flashcore::kNumFwdConfigs; }

// Config i: its name into `name`; head_dim, block_m, block_n, warps,
// key_groups, smem_bytes, pdl, sm90, persistent, tail_split into out[0..9].
// Returns 0, or 1 for a bad index.
FLASHCORE_C_API int flashcore_fwd_config_desc(int i, char* name, int name_len, int64_t* out) {
  if (i < 0 || i >= flashcore::kNumFwdConfigs) return 1;
  const flashcore::FwdConfigDesc& d = flashcore::kFwdConfigs[i];
  copy_out(d.name, name, name_len);
  const int64_t values[10] = {d.head_dim, d.block_m, d.block_n, d.warps,      d.key_groups,
                              d.smem_bytes, d.pdl,   d.sm90,    d.persistent, d.tail_split};
  for (int j = 0; j < 10; ++j) out[j] = values[j];
  return 0;
}

// Backward (issue 10): the config choose_bwd_config picks (-1: none) for a
// call with these tensors (tma_ok: all of q, k, v, out and dout TMA-readable),
// mode and forced GQA split (-1: none), the catalog size, and config i's name
// plus head_dim, block_m, block_n, warps, smem_bytes, sm90 into out[0..5]
// (returns 0, or 1 for a bad index).
FLASHCORE_C_API int flashcore_choose_bwd_config(int64_t batch, int64_t heads_q, int64_t heads_kv,
                                                int64_t seqlen_q, int64_t seqlen_k, int head_dim,
                                                int sm_count, int cc_major, int cc_minor,
                                                int smem_optin, int tma_ok, int deterministic,
                                                int64_t forced_gqa_split) {
  return flashcore::choose_bwd_config({batch, heads_q, heads_kv, seqlen_q, seqlen_k, head_dim,
                                       tma_ok != 0, deterministic != 0, forced_gqa_split},
                                      {sm_count, cc_major, cc_minor, smem_optin});
}

// The GQA group split choose_bwd_gqa_split picks for backward config `config`.
FLASHCORE_C_API int flashcore_choose_bwd_gqa_split(int64_t batch, int64_t heads_q,
                                                   int64_t heads_kv, int64_t seqlen_q,
                                                   int64_t seqlen_k, int head_dim, int sm_count,
                                                   int cc_major, int cc_minor, int smem_optin,
                                                   int config, int softcap) {
  return flashcore::choose_bwd_gqa_split(
      {batch, heads_q, seqlen_q, seqlen_k, head_dim, true, false, softcap != 0}, heads_kv,
      {sm_count, cc_major, cc_minor, smem_optin}, config);
}

FLASHCORE_C_API int flashcore_num_bwd_configs() { return flashcore::kNumBwdConfigs; }

FLASHCORE_C_API int flashcore_bwd_config_desc(int i, char* name, int name_len, int64_t* out) {
  if (i < 0 || i >= flashcore::kNumBwdConfigs) return 1;
  const flashcore::BwdConfigDesc& d = flashcore::kBwdConfigs[i];
  copy_out(d.name, name, name_len);
  const int64_t values[6] = {d.head_dim, d.block_m, d.block_n, d.warps, d.smem_bytes, d.sm90};
  for (int j = 0; j < 6; ++j) out[j] = values[j];
  return 0;
}

// fp32 elements of the one workspace block api/ops.cpp allocates for a
// backward call of this shape with backward config `config` and GQA group
// split `gqa_split` (bwd_workspace.h), in the default mode (the deterministic
// mode's block has no dq_accum).
FLASHCORE_C_API int64_t flashcore_bwd_workspace_elems(int64_t batch, int64_t heads_q,
                                                      int64_t heads_kv, int64_t seqlen_q,
                                                      int64_t seqlen_k, int head_dim,
                                                      int config, int gqa_split) {
  flashcore::BwdParams p{};
  p.batch = static_cast<int>(batch);
  p.heads_q = static_cast<int>(heads_q);
  p.heads_kv = static_cast<int>(heads_kv);
  p.q_per_kv = heads_kv > 0 ? static_cast<int>(heads_q / heads_kv) : 1;
  p.seqlen_q = static_cast<int>(seqlen_q);
  p.seqlen_k = static_cast<int>(seqlen_k);
  p.head_dim = head_dim;
  p.gqa_split = gqa_split;
  return flashcore::bwd_workspace_layout(flashcore::bwd_workspace(p, config)).total_elems;
}

// The Hopper forward's tile order (sm90/tile_order.h), for the CPU tests: tile
// t's (batch, head) pair and query block into out[0..1], in the head-major
// order (lpt 0) or the cross-head longest-first one over groups of `group`
// pairs (lpt 1). Returns 0, or 1 for arguments outside the map's domain.
FLASHCORE_C_API int flashcore_sm90_tile_index(int t, int num_m_blocks, int num_bh, int group,
                                              int lpt, int* out) {
  if (num_m_blocks < 1 || num_bh < 1 || group < 1 || t < 0 ||
      static_cast<int64_t>(t) >= static_cast<int64_t>(num_m_blocks) * num_bh) {
    return 1;
  }
  const flashcore::sm90::TileIndex i =
      lpt != 0 ? flashcore::sm90::tile_index_lpt(t, num_m_blocks, num_bh, group)
               : flashcore::sm90::tile_index_head_major(t, num_m_blocks);
  out[0] = i.bh;
  out[1] = i.m_block;
  return 0;
}

// The LPT head group the persistent launch picks (sm90/tile_order.h).
FLASHCORE_C_API int flashcore_sm90_lpt_group(int64_t num_bh, int q_per_kv, int64_t seqlen_k,
                                             int head_dim, int64_t l2_bytes) {
  return flashcore::sm90::lpt_group_size(num_bh, q_per_kv, seqlen_k, head_dim, l2_bytes);
}

// The tail split of the persistent Hopper kernels without a mask
// (sm90/tile_order.h), for the CPU tests: the plan for `tiles` query tiles on
// sm_count SMs with key_tiles key tiles a tile (out[0..2]: first split task,
// parts, tasks), and with parts > 1 the key range of every part (out[3 ..]:
// parts pairs of begin and end for a tile whose keys are [0, key_tiles)).
FLASHCORE_C_API void flashcore_sm90_tail_split(int tiles, int sm_count, int key_tiles, int* out) {
  const flashcore::sm90::TailSplit plan =
      flashcore::sm90::tail_split_plan(tiles, sm_count, key_tiles);
  out[0] = plan.first_task;
  out[1] = plan.parts;
  out[2] = plan.num_tasks;
  for (int part = 0; plan.parts > 1 && part < plan.parts; ++part) {
    flashcore::sm90::tail_part_range(0, key_tiles, plan.parts, part, &out[3 + 2 * part],
                                     &out[4 + 2 * part]);
  }
}

// The debug switch of host/debug_overrides.h: sets it to `on` and returns the
// previous value.
FLASHCORE_C_API int flashcore_set_sm90_persistent_masked(int on) {
  const bool previous = flashcore::sm90_persistent_masked();
  flashcore::set_sm90_persistent_masked(on != 0);
  return previous ? 1 : 0;
}
