// Online softmax state for the two rows (lane/4 and lane/4 + 8) of one m16 tile
// that a thread holds in mma.sync accumulator layout. A row's values are spread
// over the 4 lanes of a quad, so reductions are two xor-shuffles.
#pragma once

#include <cmath>

#include "flashcore/numeric.cuh"
#include "flashcore/sm80/ptx.cuh"

namespace flashcore {

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
  return x;
}

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  x += __shfl_xor_sync(0xffffffffu, x, 2);
  return x;
}

// Pairwise reduction of x[0..kN) with `op`, in place; returns the result.
// Written as a recursion over halves (the upper half folded onto the lower,
// an odd middle element kept): a loop over the stride was left rolled by
// nvcc at kN = 16 (x then went to local memory).
template <int kN, typename Op>
__device__ __forceinline__ float tree_reduce(float (&x)[kN], Op op) {
  if constexpr (kN == 1) {
    return x[0];
  } else {
    constexpr int kHalf = (kN + 1) / 2;
#pragma unroll
    for (int j = 0; j < kN - kHalf; ++j) x[j] = op(x[j], x[j + kHalf]);
    return tree_reduce<kHalf>(reinterpret_cast<float(&)[kHalf]>(x), op);
  }
}

struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};

// Softcap (Gemma 2 / Grok): s = softcap * tanh(s * softcap_scale), in place, on
// the raw dot products of a tile before masking (softcap_scale = scale /
// softcap folds the softmax scale in; the kernel then works with scale 1).
template <int kNTilesS>
__device__ __forceinline__ void softcap_scores(float (&s)[kNTilesS][4], float softcap,
                                               float softcap_scale) {
#pragma unroll
  for (int j = 0; j < kNTilesS; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[j][e] = softcap * accurate_tanh(s[j][e] * softcap_scale);
}

template <int kNTilesS, int kNTilesO>
struct OnlineSoftmaxRows {
  float m_i[2];  // running max of the kernel's scores (before scale_log2), per row
  float l_i[2];  // this thread's partial running sum of exp2; quad-reduced at the end

  __device__ __forceinline__ void init() {
    m_i[0] = m_i[1] = -INFINITY;
    l_i[0] = l_i[1] = 0.f;
  }

  // s: (kNTilesS n8 tiles) x {row r: [0],[1]; row r+8: [2],[3]} scores, masked
  // entries already -inf. Turns s into unnormalized probabilities in place and
  // rescales acc_o by exp2(m_old - m_new).
  //
  // Two schedules of the same arithmetic: row by row (max, rescale, exp, sum
  // for row r, then row r+8), or kTwoPass: both rows' maxima, then both rows'
  // rescales, then both rows' exponentials and sums. They differ only in the
  // instruction order ptxas starts from, and so in the schedule it finds; the
  // traits pick one per config by measurement.
  template <bool kTwoPass = false>
  __device__ __forceinline__ void update(float (&s)[kNTilesS][4], float (&acc_o)[kNTilesO][4],
                                         float scale_log2) {
    if constexpr (kTwoPass) {
      const float row_max[2] = {new_row_max(s, 0), new_row_max(s, 1)};
      float max_scaled[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        max_scaled[r] = row_max[r] == -INFINITY ? 0.f : row_max[r] * scale_log2;
        const float alpha = fast_exp2(m_i[r] * scale_log2 - max_scaled[r]);
        m_i[r] = row_max[r];
        l_i[r] *= alpha;
        rescale_row(acc_o, r, alpha);
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) l_i[r] += exp_row(s, r, max_scaled[r], scale_log2);
    } else {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float row_max = new_row_max(s, r);
        // A row that has seen only masked keys so far keeps max = -inf. Using 0 as
        // the subtrahend then gives exp2(-inf) = 0 everywhere instead of
        // exp2(-inf - -inf) = NaN; the row's first unmasked key resets it.
        const float max_scaled = row_max == -INFINITY ? 0.f : row_max * scale_log2;
        const float alpha = fast_exp2(m_i[r] * scale_log2 - max_scaled);
        m_i[r] = row_max;
        l_i[r] = l_i[r] * alpha + exp_row(s, r, max_scaled, scale_log2);
        rescale_row(acc_o, r, alpha);
      }
    }
  }

  // The same step split in two, for schedules where O is still being written
  // by an asynchronous GEMM while the scores are processed (the Hopper
  // family's overlapped loop): scores_step does everything but the O rescale
  // and returns each row's factor, rescale applies them once O may be touched.
  // kN < kNTilesS: the step over the tile's first kN n8 blocks only (the
  // caller knows the rest hold only masked keys: the Hopper forward's first
  // key step, sm90/fwd_kernel.cuh).
  template <int kN = kNTilesS>
  __device__ __forceinline__ void scores_step(float (&s)[kN][4], float scale_log2,
                                              float (&alpha)[2]) {
    static_assert(kN >= 1 && kN <= kNTilesS, "at most the tile's n8 blocks");
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float row_max = new_row_max(s, r);
      const float max_scaled = row_max == -INFINITY ? 0.f : row_max * scale_log2;
      alpha[r] = fast_exp2(m_i[r] * scale_log2 - max_scaled);
      m_i[r] = row_max;
      l_i[r] = l_i[r] * alpha[r] + exp_row(s, r, max_scaled, scale_log2);
    }
  }

  // The speculative step (FA4's lazy rescale taken one step further): the
  // exponentials are taken against the running maxima, without this tile's
  // maxima at all (no max reduction, no shuffles, no O rescale), and go
  // straight to 16-bit P in the wgmma A layout; s is kept. The check is on
  // what they produced: while every thread's part of every row sum (32 keys
  // at 128-key tiles) is at most 2^kSpecLog2, so is every P, and that is the
  // whole step: the maxima and O stay (alpha 1), l_i takes the sums, returns
  // false. Otherwise (a row grew; or has seen only masked keys, max -inf:
  // inf or NaN) nothing is committed and it returns true: the caller redoes
  // the tile with scores_step and the rescale. Warp-uniform (a vote). The same
  // softmax either way: l, O and lse use the same maxima.
  static constexpr float kSpecLog2 = 8.f;
  static constexpr float kSpecMaxPart = 256.f;  // 2^kSpecLog2
  template <typename Elem>
  __device__ __forceinline__ bool spec_step(const float (&s)[kNTilesS][4], float scale_log2,
                                            uint32_t (&p)[kNTilesS / 2][4]) {
    float max_scaled[2], sum[2];
    float part[2][kNTilesS / 2];
#pragma unroll
    for (int r = 0; r < 2; ++r) max_scaled[r] = m_i[r] * scale_log2;
#pragma unroll
    for (int kk = 0; kk < kNTilesS / 2; ++kk) {
      float e[2][4];
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          e[h][i] = fast_exp2(fmaf(s[2 * kk + h][i], scale_log2, -max_scaled[i / 2]));
        }
      p[kk][0] = Numeric<Elem>::pack2(e[0][0], e[0][1]);
      p[kk][1] = Numeric<Elem>::pack2(e[0][2], e[0][3]);
      p[kk][2] = Numeric<Elem>::pack2(e[1][0], e[1][1]);
      p[kk][3] = Numeric<Elem>::pack2(e[1][2], e[1][3]);
      part[0][kk] = (e[0][0] + e[0][1]) + (e[1][0] + e[1][1]);
      part[1][kk] = (e[0][2] + e[0][3]) + (e[1][2] + e[1][3]);
    }
    sum[0] = tree_reduce(part[0], SumOp{});
    sum[1] = tree_reduce(part[1], SumOp{});
    // NaN fails the comparison too.
    const bool grows = !(sum[0] <= kSpecMaxPart) || !(sum[1] <= kSpecMaxPart);
    if (__any_sync(0xffffffffu, grows)) return true;
    l_i[0] += sum[0];
    l_i[1] += sum[1];
    return false;
  }

  __device__ __forceinline__ static void rescale(float (&acc_o)[kNTilesO][4],
                                                 const float (&alpha)[2]) {
    rescale_row(acc_o, 0, alpha[0]);
    rescale_row(acc_o, 1, alpha[1]);
  }

 private:
  // Running max of row r (0: lane/4, 1: lane/4 + 8) including this tile.
  template <int kN>
  __device__ __forceinline__ float new_row_max(const float (&s)[kN][4], int r) const {
    // Pairwise (tree) reductions: log2 depth instead of a kN-long
    // dependent chain; the warp is latency-bound here, not issue-bound.
    float part[kN];
#pragma unroll
    for (int j = 0; j < kN; ++j) part[j] = fmaxf(s[j][2 * r], s[j][2 * r + 1]);
    return quad_max(fmaxf(m_i[r], tree_reduce(part, MaxOp{})));
  }

  // Row r of s becomes exp2(s * scale_log2 - max_scaled) (scale folded into one
  // FMA: exp(scale*s - scale*m) = exp2(s*c - m*c), c = scale*log2(e)); returns
  // this thread's part of the row's sum.
  template <int kN>
  __device__ __forceinline__ static float exp_row(float (&s)[kN][4], int r, float max_scaled,
                                                  float scale_log2) {
    float part[kN];
#pragma unroll
    for (int j = 0; j < kN; ++j) {
      s[j][2 * r] = fast_exp2(fmaf(s[j][2 * r], scale_log2, -max_scaled));
      s[j][2 * r + 1] = fast_exp2(fmaf(s[j][2 * r + 1], scale_log2, -max_scaled));
      part[j] = s[j][2 * r] + s[j][2 * r + 1];
    }
    return tree_reduce(part, SumOp{});
  }

  __device__ __forceinline__ static void rescale_row(float (&acc_o)[kNTilesO][4], int r,
                                                     float alpha) {
#pragma unroll
    for (int j = 0; j < kNTilesO; ++j) {
      acc_o[j][2 * r] *= alpha;
      acc_o[j][2 * r + 1] *= alpha;
    }
  }
};

}  // namespace flashcore
