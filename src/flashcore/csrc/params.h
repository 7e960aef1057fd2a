// Plain description of one forward-attention call. No torch, no CUDA types:
// ops.cpp fills it, fwd_launch.cu reads it, the kernel receives it by value.
#pragma once

#include <cstdint>

namespace flashcore {

struct FwdParams {
  // (batch, heads, seqlen, head_dim) tensors; the last dimension is contiguous.
  const void* __restrict__ q;
  const void* __restrict__ k;
  const void* __restrict__ v;
  void* __restrict__ o;     // (batch, heads, seqlen_q, head_dim), contiguous
  float* __restrict__ lse;  // (batch, heads, seqlen_q) contiguous, or nullptr

  // Element strides (not bytes); int64 so no product can overflow.
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  int64_t v_batch_stride, v_head_stride, v_row_stride;
  int64_t o_batch_stride, o_head_stride, o_row_stride;

  int batch, heads, seqlen_q, seqlen_k;

  float scale;       // softmax scale applied to Q K^T
  float scale_log2;  // scale * log2(e): the kernel works in base 2 (ex2.approx)

  bool is_causal;    // query i sees keys j <= i (top-left aligned, SDPA's is_causal)
  // Every row start of q, k and v is 16-byte aligned, so tiles can be fetched
  // with 16-byte cp.async. Otherwise the kernel falls back to 2-byte loads.
  bool aligned16;
};

}  // namespace flashcore
