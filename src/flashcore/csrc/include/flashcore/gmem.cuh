// Global <-> shared tile movement for the mma.sync kernels: tiles of rows of
// Traits::kHeadDim 2-byte elements, in the shared layout of smem_layout.cuh.
#pragma once

#include <cstdint>

#include "flashcore/smem_layout.cuh"
#include "flashcore/sm80/ptx.cuh"

namespace flashcore {

// Copies rows [row0, row0 + kRows) of a (seqlen, head_dim) matrix into a shared
// tile. Rows at or past `nrows` and chunks at or past `dchunks` (the caller's
// head_dim / 8, when the tile is wider) become zeros: V's zero rows keep P V
// free of garbage, K's tail is masked to -inf anyway, and zero columns add
// nothing to Q K^T and produce O columns that are never stored.
// kThreads threads (tid in [0, kThreads)) share the copy.
template <typename Traits, int kRows, int kThreads>
__device__ __forceinline__ void load_tile(char* smem, const uint16_t* base, int64_t row_stride,
                                          int row0, int nrows, int dchunks, bool aligned16,
                                          int tid) {
  using Layout = TileLayout<Traits>;
  constexpr int kC = Traits::kChunksPerRow;
  static_assert((kRows * kC) % kThreads == 0, "tile chunks must split evenly across threads");
  const int rows_left = nrows - row0;
  const uint16_t* tile = base + row0 * row_stride;
  auto copy_chunk = [&](int r, int c, uint32_t off) {
    const bool valid = r < rows_left && c < dchunks;
    const uint16_t* src = tile + r * row_stride + c * 8;
    if (aligned16) {
      cp_async_16(smem_u32(smem) + off, valid ? src : base, valid ? 16 : 0);
    } else {
      // Rows that are not 16-byte aligned (odd strides or storage offsets):
      // element-wise loads, same zero fill, plain shared stores.
      __align__(16) uint16_t tmp[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) tmp[e] = valid ? src[e] : uint16_t{0};
      *reinterpret_cast<uint4*>(smem + off) = *reinterpret_cast<const uint4*>(tmp);
    }
  };
  if constexpr (kThreads % kC == 0) {
    // Thread tid moves chunk tid % kC of rows tid / kC + i * kRowStep:
    // consecutive threads fetch consecutive chunks of a row (coalesced).
    constexpr int kRowStep = kThreads / kC;
    static_assert(kRows % kRowStep == 0, "tile rows must split evenly across passes");
    const int r = tid / kC;
    const int c = tid % kC;
    // With a row step that is a multiple of 8 (or no swizzle) every pass has
    // the same in-row offset, so only a constant is added per pass.
    constexpr bool kSameOffset = !Traits::kSwizzled || kRowStep % 8 == 0;
    const uint32_t off0 = Layout::offset(r, c);
#pragma unroll
    for (int i = 0; i < kRows / kRowStep; ++i) {
      const int rr = r + i * kRowStep;
      copy_chunk(rr, c, kSameOffset ? off0 + i * kRowStep * Layout::kPitch : Layout::offset(rr, c));
    }
  } else {
    // Rows of 12 or 24 chunks: walk the tile's chunks in order.
#pragma unroll
    for (int i = 0; i < kRows * kC / kThreads; ++i) {
      const int idx = tid + i * kThreads;
      const int r = idx / kC;
      const int c = idx % kC;
      copy_chunk(r, c, Layout::offset(r, c));
    }
  }
}

// Copies a staged shared tile (rows [0, kRows) relative to `row_base`) to
// global memory in 16-byte chunks: rows whose index row0 + r is < nrows, and
// chunks < dchunks. kThreads threads share it.
template <typename Traits, int kRows, int kThreads>
__device__ __forceinline__ void store_tile(uint16_t* out, int64_t row_stride, const char* smem,
                                           int row_base, int row0, int nrows, int dchunks,
                                           int tid) {
  using Layout = TileLayout<Traits>;
  constexpr int kC = Traits::kChunksPerRow;
  static_assert((kRows * kC) % kThreads == 0, "output chunks must split evenly");
#pragma unroll
  for (int i = 0; i < kRows * kC / kThreads; ++i) {
    const int idx = tid + i * kThreads;
    const int r = row_base + idx / kC;
    const int c = idx % kC;
    const int row = row0 + r;
    if (row < nrows && c < dchunks) {
      *reinterpret_cast<uint4*>(out + row * row_stride + c * 8) =
          *reinterpret_cast<const uint4*>(smem + Layout::offset(r, c));
    }
  }
}

}  // namespace flashcore
