// Global <-> shared tile movement for the mma.sync kernels: tiles of rows of
// Traits::kHeadDim 2-byte elements, in the shared layout of smem_layout.cuh.
#pragma once

#include <cstdint>

#include "flashcore/smem_layout.cuh"
#include "flashcore/sm80/ptx.cuh"

namespace flashcore {

// Copies tiles of kRows rows of a (seqlen, head_dim) matrix into shared
// tiles: load(smem, row0, nrows, ...) fetches rows [row0, row0 + kRows). Rows
// at or past `nrows` and chunks at or past `dchunks` (the caller's head_dim /
// 8, when the tile is wider) become zeros: V's zero rows keep P V free of
// garbage, K's tail is masked to -inf anyway, and zero columns add nothing to
// Q K^T and produce O columns that are never stored. kThreads threads (tid in
// [0, kThreads)) share each copy. The per-thread offsets are recomputed per
// load rather than held across the key loop: registers are what the
// small-grid configs run short of.
//
// kAligned16: every row start is 16-byte aligned (FwdParams::aligned16), so
// each chunk is one 16-byte cp.async. Otherwise element-wise loads and plain
// shared stores. A template flag, not a runtime branch: with both paths in one
// kernel ptxas hoisted the element-wise path's 64-bit addresses above the
// branch, about 60 instructions per key tile of the head-dim-64 small-grid
// loop that the aligned path paid for (benchmarks/NOTES.md, v7).
template <typename Traits, int kRows, int kThreads, bool kAligned16>
struct TileLoader {
  using Layout = TileLayout<Traits>;
  static constexpr int kC = Traits::kChunksPerRow;
  static_assert((kRows * kC) % kThreads == 0, "tile chunks must split evenly across threads");
  static constexpr int kPasses = kRows * kC / kThreads;
  // Thread tid moves chunk tid % kC of rows tid / kC + i * kRowStep when kC
  // divides the thread count (consecutive threads fetch consecutive chunks of
  // a row: coalesced), else chunk (tid + i * kThreads) % kC of row
  // (tid + i * kThreads) / kC (rows of 12 or 24 chunks).
  static constexpr bool kRowSteps = kThreads % kC == 0;
  static constexpr int kRowStep = kThreads / kC;
  // With a row step that is a multiple of 8 (or no swizzle) every pass has the
  // same in-row offset, so only a constant is added per pass.
  static constexpr bool kSameOffset = kRowSteps && (!Traits::kSwizzled || kRowStep % 8 == 0);

  const uint16_t* base;
  int64_t row_stride;
  int tid;
  int dchunks;

  __device__ __forceinline__ TileLoader(const uint16_t* base_, int64_t row_stride_, int dchunks_,
                                        int tid_)
      : base(base_), row_stride(row_stride_), tid(tid_), dchunks(dchunks_) {}

  // Rows at or past nrows become zeros.
  __device__ __forceinline__ void load(char* smem, int row0, int nrows) const {
    const int rows_left = nrows - row0;
    const uint16_t* tile = base + row0 * row_stride;
    if constexpr (kAligned16 && kRowSteps) {
      const int row = tid / kC;
      const int c = tid % kC;
      // Pass i copies real data iff i * kRowStep < thread_rows (a chunk past
      // head_dim copies none): one compare against a constant per pass.
      const int thread_rows = c < dchunks ? rows_left - row : 0;
      const uint32_t dst = smem_u32(smem) + Layout::offset(row, c);
      const uint16_t* src = tile + row * row_stride + c * 8;
      const int64_t step = kRowStep * row_stride;
#pragma unroll
      for (int i = 0; i < kPasses; ++i, src += step) {
        const bool valid = i * kRowStep < thread_rows;
        cp_async_16(dst + pass_offset(row, c, i), valid ? src : base, valid ? 16 : 0);
      }
    } else {
      load_chunks(smem, tile, rows_left);
    }
  }

  // The same when every row of the tile exists (row0 + kRows <= nrows: the
  // interior key tiles). No per-pass row test or address select: a chunk past
  // head_dim reads its row's first chunk with a source size of 0 (an address
  // inside the row, nothing read, zeros written).
  __device__ __forceinline__ void load_full(char* smem, int row0) const {
    const uint16_t* tile = base + row0 * row_stride;
    if constexpr (kAligned16 && kRowSteps) {
      const int row = tid / kC;
      const int c = tid % kC;
      const bool col_ok = c < dchunks;
      const uint32_t dst = smem_u32(smem) + Layout::offset(row, c);
      const uint16_t* src = tile + row * row_stride + (col_ok ? c * 8 : 0);
      const int bytes = col_ok ? 16 : 0;
      const int64_t step = kRowStep * row_stride;
#pragma unroll
      for (int i = 0; i < kPasses; ++i) {
        cp_async_16(dst + pass_offset(row, c, i), src + i * step, bytes);
      }
    } else {
      load_chunks(smem, tile, kRows);
    }
  }

 private:
  // Shared offset of pass i's chunk relative to pass 0's (row, c).
  static __device__ __forceinline__ uint32_t pass_offset(int row, int c, int i) {
    return kSameOffset ? i * kRowStep * Layout::kPitch
                       : Layout::offset(row + i * kRowStep, c) - Layout::offset(row, c);
  }

  // Chunk-indexed copy for rows of 12 or 24 chunks (kRowSteps false) and for
  // rows that are not 16-byte aligned.
  __device__ __forceinline__ void load_chunks(char* smem, const uint16_t* tile,
                                              int rows_left) const {
#pragma unroll
    for (int i = 0; i < kPasses; ++i) {
      const int idx = tid + i * kThreads;
      const int r = kRowSteps ? tid / kC + i * kRowStep : idx / kC;
      const int c = kRowSteps ? tid % kC : idx % kC;
      const bool valid = r < rows_left && c < dchunks;
      const uint16_t* src = tile + r * row_stride + c * 8;
      const uint32_t off = Layout::offset(r, c);
      if constexpr (kAligned16) {
        cp_async_16(smem_u32(smem) + off, valid ? src : base, valid ? 16 : 0);
      } else {
        // Rows that are not 16-byte aligned (odd strides or storage offsets):
        // element-wise loads, same zero fill, plain shared stores.
        __align__(16) uint16_t tmp[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) tmp[e] = valid ? src[e] : uint16_t{0};
        *reinterpret_cast<uint4*>(smem + off) = *reinterpret_cast<const uint4*>(tmp);
      }
    }
  }
};

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
