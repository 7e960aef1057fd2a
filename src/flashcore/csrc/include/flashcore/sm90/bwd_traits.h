// Compile-time shape of a Hopper-family backward config (sm90/bwd_kernel.cuh;
// docs/design/backward.md section 7): one thread block per key block of
// kBlockN = 128 keys, a producer warpgroup that only issues TMA copies, and two
// consumer warpgroups of 64 keys each (wgmma's M is 64 per warpgroup). Query
// blocks of kBlockM rows stream through a ring of kStages stages (Q and dO;
// the consumers copy the rows' lse_log2 / dpsum into a ring of their own).
// Plain C++: the host catalog reads the same numbers.
//
// Every 16-bit shared tile is stored as column blocks of 64 elements (128
// bytes per row, 128B-swizzled), each block on a 1024-byte boundary: the
// layout the TMA writes and the wgmma descriptors of sm90/wgmma.cuh read.
//   K, V:  kBlockN key rows x kHeadDim, kHeadDim / 64 column blocks (loaded once)
//   Q, dO: kBlockM query rows x kHeadDim per stage
//   dS:    kBlockN key rows x kBlockM queries (dS transposed, written by the
//          consumers from their dS^T accumulators), kBlockM / 64 column blocks,
//          two buffers (a step's dS store need not wait for the previous
//          step's dQ GEMM in the other warpgroup)
//   statistics: kStatsStages buffers (m-steps in turn) of the rows' lse_log2
//          then dpsum, kBlockM floats each, filled by the consumers' cp.async
#pragma once

namespace flashcore {
namespace sm90 {

template <int kHeadDim_, int kBlockM_>
struct BwdTraits {
  static constexpr int kHeadDim = kHeadDim_;  // tile width: 64 or 128
  static constexpr int kBlockM = kBlockM_;    // query rows per m-step
  static constexpr int kBlockN = 128;         // keys per thread block
  static constexpr int kConsumerWGs = 2;      // 64 keys each
  static constexpr int kNThreads = 128 * (kConsumerWGs + 1);
  static constexpr int kStages = 2;    // Q / dO ring
  static constexpr int kDsStages = 2;  // dS buffers
  static constexpr int kStatsStages = 3;  // statistics buffers: copied two m-steps ahead

  static constexpr int kColBlocks = kHeadDim / 64;  // 128-byte column blocks per row
  static constexpr int kQBlockBytes = kBlockM * 128;
  static constexpr int kQTileBytes = kColBlocks * kQBlockBytes;  // one Q or dO stage
  static constexpr int kKVBlockBytes = kBlockN * 128;
  static constexpr int kKVTileBytes = kColBlocks * kKVBlockBytes;  // K or V
  static constexpr int kDsBlockBytes = kBlockN * 128;              // 64 queries of every key
  static constexpr int kDsTileBytes = (kBlockM / 64) * kDsBlockBytes;
  static constexpr int kStatsBufBytes = 2 * kBlockM * 4;  // lse_log2 and dpsum of one m-step

  // Offsets from the 1024-aligned base.
  static constexpr int kKOffset = 0;
  static constexpr int kVOffset = kKOffset + kKVTileBytes;
  static constexpr int kQOffset = kVOffset + kKVTileBytes;              // [kStages]
  static constexpr int kDoOffset = kQOffset + kStages * kQTileBytes;    // [kStages]
  static constexpr int kDsOffset = kDoOffset + kStages * kQTileBytes;   // [kDsStages]
  static constexpr int kStatsOffset = kDsOffset + kDsStages * kDsTileBytes;  // [kStatsStages]
  static constexpr int kBarOffset = kStatsOffset + kStatsStages * kStatsBufBytes;
  // kv_full, then q_full[kStages], do_full[kStages], qdo_empty[kStages].
  static constexpr int kNumBarriers = 1 + 3 * kStages;
  // Plus up to 1008 bytes to align the dynamic base (only 16 is guaranteed).
  static constexpr int kSmemBytes = kBarOffset + 8 * kNumBarriers + 1008;

  // dQ = dS K of one m-step is kBlockM x kHeadDim; each consumer warpgroup
  // computes one 64 x 64 part of it (one m64n64 accumulator, 32 floats per
  // thread): at kBlockM 64 the two warpgroups split the head dim (columns
  // 64w..), at kBlockM 128 the query rows (rows 64w..).
  static constexpr bool kDqSplitRows = kBlockM == 128;
  static constexpr int kDqAccRegs = 32;

  // Register split (setmaxnreg), as the forward's (fwd_traits.h): with
  // __launch_bounds__(384, 1) the block owns 384 x 168 registers; the
  // producer keeps 24, each consumer thread takes 240.
  static constexpr int kProducerRegs = 24;
  static constexpr int kConsumerRegs = 240;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "tile head dim 64 or 128");
  static_assert(kBlockM == 64 || kBlockM == 128, "query blocks of 64 or 128 rows (wgmma N)");
  static_assert(kBlockM * kHeadDim == kConsumerWGs * 64 * 64,
                "each consumer warpgroup's share of dQ must be one m64n64 tile");
  static_assert(128 % kBlockM == 0,
                "seqlen_q_rounded (a multiple of 128) must hold whole query blocks");
  static_assert(kQBlockBytes % 1024 == 0 && kKVBlockBytes % 1024 == 0 &&
                    kDsBlockBytes % 1024 == 0 && kQOffset % 1024 == 0 &&
                    kDoOffset % 1024 == 0 && kDsOffset % 1024 == 0,
                "128B-swizzled tiles start on 1024-byte boundaries");
  static_assert(kStatsOffset % 16 == 0 && kStatsBufBytes % 16 == 0 && kBarOffset % 8 == 0,
                "16-byte cp.async destinations, 8-byte aligned mbarriers");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block on sm_90");
  static_assert(128 * kProducerRegs + 128 * kConsumerWGs * kConsumerRegs <= 65536,
                "register split over the block's register file");
};

}  // namespace sm90
}  // namespace flashcore
