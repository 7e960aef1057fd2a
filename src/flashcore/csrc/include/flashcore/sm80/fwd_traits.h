// Compile-time tile configuration of the mma.sync forward kernel and every
// constant derived from it. Plain C++ (no CUDA types), so the host-side
// heuristic reads the same numbers (shared memory, tile shape) the kernel uses.
// Each divisibility assumption the kernel makes is asserted here.
#pragma once

namespace flashcore {

// Where the warps' Q fragments live during the key loop: loaded from shared
// memory once and kept in registers (kNever), reloaded at every key tile
// (kAlways), which frees their registers during softmax and P V, or reloaded
// only in the masked kernel (kMasked).
enum class QReload : int { kNever = 0, kAlways = 1, kMasked = 2 };

template <int kHeadDim_, int kBlockM_, int kBlockN_, int kNWarps_, int kMinBlocksPerSm_,
          int kKeyGroups_, QReload kQReload_, bool kTwoPassSoftmax_>
struct FwdKernelTraits {
  // Tile width over the head dim: the caller's head_dim is at most this; the
  // columns past it are zero-filled on load and skipped on store.
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;  // query rows per thread block
  static constexpr int kBlockN = kBlockN_;  // key/value rows per inner iteration
  static constexpr int kNWarps = kNWarps_;
  static constexpr int kNThreads = kNWarps * 32;
  // Register budget: ptxas caps registers so this many blocks fit on one SM.
  static constexpr int kMinBlocksPerSm = kMinBlocksPerSm_;

  // Key groups: the warps split into kKeyGroups groups that share the Q tile and
  // walk interleaved key tiles, each with its own K/V buffers and barrier; the
  // groups' softmax states merge in shared memory at the end. More warps per
  // query tile for grids too small to fill the GPU.
  static constexpr int kKeyGroups = kKeyGroups_;
  static constexpr int kGroupWarps = kNWarps / kKeyGroups;
  static constexpr int kGroupThreads = kGroupWarps * 32;
  // Key-group configs load Q, then each group's first K, then its first V in
  // separate cp.async groups, so Q K^T starts while V still lands (per-warp
  // latency bounds the tiny grids they run). One group: Q, K and V together,
  // which measured 2-5% faster at large causal shapes and 8% at (2,8,1024) on
  // H100 than the split (benchmarks/NOTES.md, v3).
  static constexpr bool kSplitPrologue = kKeyGroups > 1;

  static constexpr QReload kQReload = kQReload_;
  // Whether the masked (kHasMask) or unmasked kernel reloads Q per key tile.
  static constexpr bool reload_q(bool has_mask) {
    return kQReload == QReload::kAlways || (kQReload == QReload::kMasked && has_mask);
  }
  // Instruction order of the online softmax in the unmasked kernel
  // (softmax.cuh): both rows' maxima, rescales, then exponentials (true), or
  // row by row. Same arithmetic; only ptxas' schedule differs.
  static constexpr bool kTwoPassSoftmax = kTwoPassSoftmax_;

  // Each warp owns kRowsPerWarp consecutive query rows for the whole kernel, so
  // row max / row sum need only shuffles inside a quad of lanes.
  static constexpr int kRowsPerWarp = kBlockM / kGroupWarps;
  static constexpr int kMTiles = kRowsPerWarp / 16;  // m16 tiles per warp

  // mma.sync.m16n8k16 tiling.
  static constexpr int kNTilesS = kBlockN / 8;     // n8 tiles of S = Q K^T per m16 tile
  static constexpr int kKStepsQK = kHeadDim / 16;  // k16 steps over head_dim for Q K^T
  static constexpr int kNTilesO = kHeadDim / 8;    // n8 tiles of O per m16 tile
  static constexpr int kKStepsPV = kBlockN / 16;   // k16 steps over keys for P V

  // Shared-memory tiles hold rows of kHeadDim 2-byte elements as 16-byte chunks.
  // Rows that are whole 128-byte lines (8 chunks) are XOR-swizzled; rows of 4,
  // 12 or 24 chunks are padded by one chunk instead: an odd row pitch in
  // chunks puts the same chunk of 8 consecutive rows in 8 different 16-byte
  // bank groups, which is all ldmatrix needs (smem_layout.cuh).
  static constexpr int kChunksPerRow = kHeadDim / 8;
  static constexpr bool kSwizzled = kChunksPerRow % 8 == 0;
  static constexpr int kRowPitchChunks = kSwizzled ? kChunksPerRow : kChunksPerRow + 1;
  static constexpr int kRowPitchBytes = kRowPitchChunks * 16;

  // K and V are double-buffered: tile n-1 is fetched while tile n is computed.
  static constexpr int kStages = 2;
  static constexpr int kSmemQBytes = kBlockM * kRowPitchBytes;
  static constexpr int kSmemKBytes = kBlockN * kRowPitchBytes;  // one stage
  static constexpr int kSmemVBytes = kBlockN * kRowPitchBytes;  // one stage
  static constexpr int kSmemGroupKVBytes = kStages * (kSmemKBytes + kSmemVBytes);
  static constexpr int kSmemKVBytes = kKeyGroups * kSmemGroupKVBytes;
  static constexpr int kSmemBytes = kSmemQBytes + kSmemKVBytes;

  static_assert(kHeadDim % 32 == 0 && kHeadDim >= 32 && kHeadDim <= 256,
                "tile widths are multiples of 32 up to 256 (pairs of n8 tiles per ldmatrix.x4)");
  static_assert(kSwizzled || kRowPitchChunks % 2 == 1,
                "padded rows need an odd pitch in 16-byte chunks to avoid bank conflicts");
  static_assert(kNTilesO % kKeyGroups == 0,
                "the key-group merge gives each group whole n8 tiles of O's columns");
  static_assert(kKeyGroups == 1 || kKeyGroups == 2 || kKeyGroups == 4,
                "1, 2 or 4 key groups (named barriers 1..4)");
  static_assert(kNWarps % kKeyGroups == 0, "warps must split evenly into key groups");
  static_assert(kBlockM % kGroupWarps == 0, "kBlockM must split evenly across a group's warps");
  static_assert(kRowsPerWarp % 16 == 0, "each warp must own whole m16 tiles");
  static_assert(kBlockN % 32 == 0, "kBlockN must hold pairs of n8 key tiles and k16 steps");
  // Fragment exchange of the key-group merge: O, m and l of each thread.
  static constexpr int kMergeFloats = kMTiles * (kNTilesO * 4 + 4);
  static_assert(kKeyGroups == 1 || kMergeFloats * kGroupThreads * 4 <= kSmemGroupKVBytes,
                "key-group merge must fit in one group's K/V buffers");
  // Over 48 KB needs the launch-time opt-in. 227 KB is sm_90's per-block limit;
  // configs over an architecture's limit are compiled empty for it and never
  // chosen there (fwd_kernel.cuh, host/heuristics.cpp).
  static_assert(kSmemBytes <= 227 * 1024, "tiles must fit 227 KB of shared memory per block");
};

}  // namespace flashcore
