// Where 16-byte chunk `chunk` of tile row `row` lives in shared memory, for a
// tile of Traits::kChunksPerRow chunks per row (Traits: sm80/fwd_traits.h).
//
// ldmatrix reads one chunk column from 8 consecutive rows (a row group that
// starts at a multiple of 8); those 8 reads must hit 8 different 16-byte bank
// groups. Rows of whole 128-byte lines XOR the chunk index with (row % 8);
// rows of 4, 12 or 24 chunks get one chunk of padding instead, so the row
// pitch is odd in chunks and consecutive rows land on different bank groups.
// The cp.async writes use the same mapping, so writer and reader agree.
#pragma once

#include <cstdint>

namespace flashcore {

template <typename Traits>
struct TileLayout {
  static constexpr int kPitch = Traits::kRowPitchBytes;

  __device__ __forceinline__ static uint32_t offset(int row, int chunk) {
    if constexpr (Traits::kSwizzled) {
      return static_cast<uint32_t>(row * kPitch + ((chunk ^ (row & 7)) << 4));
    } else {
      return static_cast<uint32_t>(row * kPitch + (chunk << 4));
    }
  }
};

}  // namespace flashcore
