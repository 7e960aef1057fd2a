// Plain description of one forward-attention call. No torch, no CUDA types:
// api/ops.cpp fills it, host/ picks and launches a kernel config, the kernel
// receives it by value.
#pragma once

#include <cstdint>

namespace flashcore {

enum class DType : int { kFloat16 = 0, kBFloat16 = 1 };

struct FwdParams {
  // q: (batch, heads_q, seqlen_q, head_dim); k, v: (batch, heads_kv, seqlen_k,
  // head_dim). The last dimension is contiguous; every other stride is free.
  const void* __restrict__ q;
  const void* __restrict__ k;
  const void* __restrict__ v;
  void* __restrict__ o;     // (batch, heads_q, seqlen_q, head_dim), contiguous
  float* __restrict__ lse;  // (batch, heads_q, seqlen_q) contiguous, or nullptr

  // Element strides (not bytes); int64 so no product can overflow.
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  int64_t v_batch_stride, v_head_stride, v_row_stride;
  int64_t o_batch_stride, o_head_stride, o_row_stride;

  int batch;
  int heads_q;
  int heads_kv;
  int q_per_kv;  // heads_q / heads_kv: query head h reads kv head h / q_per_kv (GQA / MQA)
  int seqlen_q;
  int seqlen_k;  // >= 1
  // The caller's head dim: a multiple of 8, at most the kernel's tile width.
  // Columns past it are zero-filled on load and never stored.
  int head_dim;

  // Scores are kept in the kernel's units s (the dot product, or the capped
  // score with softcap); exp(scale-applied score) = exp2(s * scale_log2).
  float scale_log2;
  // softcap > 0: s = softcap * tanh(dot * softcap_scale), softcap_scale =
  // scale / softcap, and scale_log2 = log2(e). 0: off.
  float softcap;
  float softcap_scale;

  // Visible keys of query row i (only read by the masked kernels):
  //   i + key_offset - window_left <= j <= i + key_offset + window_right,
  // with key_offset 0 (top-left) or seqlen_k - seqlen_q (bottom-right).
  // Unbounded sides are clamped to max(seqlen_q, seqlen_k) by the host, which
  // keeps every sum inside int range (sequence lengths are < 2^30).
  int key_offset;
  int window_left;
  int window_right;

  // Every row start of q, k and v is 16-byte aligned, so tiles can be fetched
  // with 16-byte cp.async. Otherwise the kernel falls back to 2-byte loads.
  bool aligned16;

  // The persistent Hopper configs' masked kernels hand out query tiles
  // longest-first across groups of lpt_group (batch, head) pairs whose K/V
  // fits in L2 together (sm90/tile_order.h; the launch sets it). Unused by
  // every other kernel. 16 bits so that it sits in the padding before
  // tile_counter: the struct's size and every other field's offset (BwdParams'
  // too) stay as they were, and so does every other kernel's code. At most
  // kMaxLptGroup (sm90/tile_order.h).
  int16_t lpt_group;

  // The persistent Hopper configs' scheduler state, 1 + (SM count) ints:
  // [0] the tile counter, which the launch zeroes on the stream before the
  // kernel, then one tile slot per block. api/ops.cpp allocates it per call,
  // so calls on other streams or in other graphs never share one. nullptr for
  // every other config.
  int* tile_counter;
};

// One backward call (issue 10; docs/design/backward.md). The forward's fields
// keep their meaning: q, k, v and their strides; o is the forward's output
// (read here, its strides in o_*_stride, last dim contiguous); lse is the
// forward's (batch, heads_q, seqlen_q) contiguous log-sum-exp (read here).
// The kernels run on the caller's stream in order: preprocess, main, postprocess
// (deterministic: preprocess, main without dQ, dQ kernel; sm80/bwd_dq_kernel.cuh).
struct BwdParams : FwdParams {
  const void* __restrict__ dout;  // (batch, heads_q, seqlen_q, head_dim), last dim contiguous
  int64_t do_batch_stride, do_head_stride, do_row_stride;
  // Gradients, in q/k/v's dtype; last dim contiguous, other strides free.
  void* __restrict__ dq;  // like q
  void* __restrict__ dk;  // like k: (batch, heads_kv, seqlen_k, head_dim)
  void* __restrict__ dv;  // like v
  int64_t dq_batch_stride, dq_head_stride, dq_row_stride;
  int64_t dk_batch_stride, dk_head_stride, dk_row_stride;
  int64_t dv_batch_stride, dv_head_stride, dv_row_stride;
  // Gradient flowing into lse (return_lse=True), (batch, heads_q, seqlen_q)
  // contiguous fp32, or nullptr for none.
  const float* __restrict__ dlse;

  // Workspaces the caller allocates (no initial contents needed: the
  // preprocess writes or zeroes every element the main kernel reads), sizes
  // from bwd_workspace() in host/run.h:
  //   dq_accum (batch, heads_q, seqlen_q_rounded, tile head dim) fp32
  //   dpsum    (batch, heads_q, seqlen_q_rounded) fp32: D' = rowsum(dO * O) - dlse
  //   lse_log2 (batch, heads_q, seqlen_q_rounded) fp32: lse * log2(e) (0 where
  //            lse = -inf, +inf past seqlen_q)
  // dq_accum must be 16-byte aligned (vector zeroing and float4 atomics); in
  // deterministic mode it has 0 elements and is neither read nor written. Its
  // element order inside each block of query rows is the kernels' own
  // (sm80/bwd_kernel.cuh, DqAccumLayout): read dq, never dq_accum.
  float* __restrict__ dq_accum;
  float* __restrict__ dpsum;
  float* __restrict__ lse_log2;
  int seqlen_q_rounded;

  // The softmax scale as given (FwdParams holds it only folded into
  // scale_log2 or softcap_scale): dK and dQ are scaled by it once.
  float scale;

  // Deterministic mode: dq, dk and dv bitwise identical from run to run. dQ is
  // computed query-major by its own kernel, without atomics (dq_accum unused).
  bool deterministic;

  // GQA group split (docs/design/backward.md section 5): the query heads of
  // each kv head are handled in gqa_split parts of q_per_kv / gqa_split
  // consecutive heads, one thread block per (key block, part, kv head, batch).
  // 1 (a divisor of q_per_kv, always >= 1): one part, dK and dV stored in the
  // input dtype by the main kernel. > 1: every part stores its fp32 dK (times
  // scale) and dV sums into dk_partial / dv_partial, (gqa_split, batch,
  // heads_kv, seqlen_k, head_dim) contiguous each, and a reduce kernel adds
  // the parts in ascending order into dk and dv (deterministic). The partials
  // are workspace (bwd_workspace() sizes them; nullptr when gqa_split is 1).
  float* __restrict__ dk_partial;
  float* __restrict__ dv_partial;
  int gqa_split;
};

}  // namespace flashcore
