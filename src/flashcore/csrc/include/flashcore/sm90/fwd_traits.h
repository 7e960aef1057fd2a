// Compile-time shape of a Hopper-family forward config (sm90/fwd_kernel.cuh):
// one producer warpgroup that only issues TMA copies, kConsumerWGs consumer
// warpgroups of 64 query rows each, K/V tiles of kBlockN keys in a ring of
// kStages stages. Every shared tile is stored as column blocks of 64 elements
// (128 bytes per row, 128B-swizzled by the TMA), each block on a 1024-byte
// boundary, which is the layout the wgmma descriptors of sm90/wgmma.cuh read.
#pragma once

#include <cstdint>

namespace flashcore {
namespace sm90 {

// Every config issues tile n's Q K^T right before tile n+1's P V (one GEMM
// batch per turn); the softmax runs after both (ptxas orders it so, and
// measured faster that way: benchmarks/NOTES.md v20).
// kPingPong: the consumer warpgroups take turns issuing their GEMMs (named
// barriers, round robin).
// kPersistent: a grid of at most one block per SM; each block takes its next
// query tile from a global counter (an atomic the launch zeroes), so a block's
// epilogue overlaps its next tile's first K/V loads. Without a mask the tiles
// are handed out in the grid's order as blocks claim them, as the hardware
// scheduler does with one block per tile; under a mask, longest-first across
// groups of heads (sm90/tile_order.h).
// The persistent kernels also merge the tile boundary: two Q buffers, the
// producer loading the next tile's Q while the consumers work on this one, and
// each consumer warpgroup issuing the next tile's first Q K^T together with
// this tile's last P V, then writing this tile's output while the other
// warpgroup's GEMMs run (fwd_kernel.cuh; benchmarks/NOTES.md v27).
template <int kHeadDim_, int kBlockN_, int kStages_, bool kPingPong_, int kConsumerWGs_,
          bool kPersistent_>
struct FwdTraits {
  static constexpr bool kPingPong = kPingPong_;
  static constexpr bool kPersistent = kPersistent_;
  static constexpr bool kMergeTiles = kPersistent;
  static constexpr int kQBufs = kMergeTiles ? 2 : 1;
  // The epilogue writes O from the accumulator registers (4-byte stores, no
  // staging, no warpgroup barrier) at head dim 64, where that measured 2-10%
  // faster than staging it in shared memory for 16-byte stores; at 128 it was
  // 0-5% slower (twice the stores per thread) and keeps the staging
  // (benchmarks/NOTES.md v28).
  static constexpr bool kStoreFromRegisters = kHeadDim_ == 64;
  // Without a mask the persistent kernels that store from registers split the
  // last wave's tiles along keys (sm90/tile_order.h tail_split_plan; v28).
  static constexpr bool kTailSplit = kPersistent && kStoreFromRegisters;
  static constexpr int kHeadDim = kHeadDim_;  // tile width: 64 or 128
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kStages = kStages_;
  static constexpr int kConsumerWGs = kConsumerWGs_;
  static constexpr int kBlockM = 64 * kConsumerWGs;  // wgmma's M is 64 per warpgroup
  static constexpr int kNThreads = 128 * (kConsumerWGs + 1);

  static constexpr int kColBlocks = kHeadDim / 64;  // 128-byte column blocks per row
  static constexpr int kQBlockBytes = kBlockM * 128;
  static constexpr int kKVBlockBytes = kBlockN * 128;
  static constexpr int kQBytes = kColBlocks * kQBlockBytes;
  static constexpr int kKVTileBytes = kColBlocks * kKVBlockBytes;  // one K or one V tile

  // Offsets from the 1024-aligned base: the Q buffers, then K stages, then V
  // stages, then the mbarriers (q_full[Q], q_empty[Q], k_full[S], v_full[S],
  // k_empty[S], v_empty[S]).
  static constexpr int kKOffset = kQBufs * kQBytes;
  static constexpr int kVOffset = kKOffset + kStages * kKVTileBytes;
  static constexpr int kBarOffset = kVOffset + kStages * kKVTileBytes;
  static constexpr int kNumBarriers = 2 * kQBufs + 4 * kStages;
  // The persistent kernels' task index of each Q buffer (fwd_kernel.cuh), one
  // int each after the barriers.
  static constexpr int kQTaskOffset = kBarOffset + 8 * kNumBarriers;
  // Plus up to 1008 bytes to align the dynamic base (only 16 is guaranteed).
  static constexpr int kSmemBytes = kQTaskOffset + 8 * kQBufs + 1008;

  // Register split (setmaxnreg): the producer gives registers back to the
  // pool, the consumers take them; 128 * kProducerRegs + 128 * kConsumerWGs *
  // kConsumerRegs must fit the block's 64K registers at the launch cap.
  static constexpr int kProducerRegs = kConsumerWGs == 2 ? 24 : 32;
  static constexpr int kConsumerRegs = kConsumerWGs == 2 ? 240 : 160;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "tile head dim 64 or 128");
  // Three warpgroups (192 rows) get 160 registers each: at head dim 64 ptxas
  // keeps the key/value loop of the kernels without softcap in registers
  // (0-1 local-memory instructions in it) and spills 224-244 bytes outside it
  // (addresses for the per-tile epilogue); with softcap 10-17 in the loop
  // (benchmarks/NOTES.md v17). Named barrier ids (fwd_kernel.cuh) exist for at
  // most three.
  static_assert(kConsumerWGs == 2 || (kConsumerWGs == 3 && kHeadDim == 64),
                "two consumer warpgroups, or three at head dim 64");
  static_assert(kBlockN % 16 == 0 && kBlockN <= 256, "wgmma N: a multiple of 16, at most 256");
  static_assert(kQBlockBytes % 1024 == 0 && kKVBlockBytes % 1024 == 0,
                "128B-swizzled tiles start on 1024-byte boundaries");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block on sm_90");
  static_assert(128 * kProducerRegs + 128 * kConsumerWGs * kConsumerRegs <= 65536,
                "register split over the block's register file");
};

}  // namespace sm90
}  // namespace flashcore
